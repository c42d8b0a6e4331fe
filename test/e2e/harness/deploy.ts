/**
 * What the deployment end-to-end tests share: the images (made through the build
 * library when missing, with the same tags the build tests make), the license
 * stand-in, the real ctun-run CLI, and a look for labelled leftovers.
 */
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, expect, inject } from 'vitest';
import { createLogger, TUNNEL_DEFAULTS } from '../../../tools/common/index.js';
import { connectDocker } from '../../../tools/docker/index.js';
import { DEMO_BASE_IMAGE, demoImages, ensureImages } from '../../../tools/demo/images.js';
import { startLicenseStandin, type LicenseStandin } from '../../../tools/demo/license.js';
import type { Pc } from '../../../tools/demo/pc.js';
import type { Proc } from '../../../tools/lab/index.js';
import { LABEL_DEPLOYMENT } from '../../../tools/run/index.js';
import { CTUN, ROOT, NODE } from '../../integration/harness/netns.js';

export { CTUN, ROOT, NODE };
/** The ctun-run CLI: this run's bundle of the sources (test/fixtures/ctun-cli.ts), else the checkout's bin. */
export const CTUN_RUN = inject('ctunRunCli') ?? `${ROOT}bin/ctun-run.js`;
export const SESSION = `${ROOT}tools/demo/session.ts`;
export const docker = connectDocker();

/** Why these tests cannot run here, or undefined. */
export async function deployUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces, TAP devices and Docker';
  const info = await execa('docker', ['info'], { reject: false });
  if (info.exitCode !== 0) return 'needs a running Docker daemon';
  return undefined;
}

/**
 * The images the deployment tests run: metadata's names, or with
 * CTUN_E2E_IMAGE_PREFIX=P the set `P/dspace/…` (built from this checkout on the
 * host's debian:12 when missing), so a host whose default images predate the code
 * can test the code without replacing them.
 */
const IMAGE_PREFIX = process.env.CTUN_E2E_IMAGE_PREFIX || undefined;
export const E2E_IMAGES = demoImages(IMAGE_PREFIX);

/**
 * Builds whatever image is missing (nothing when the build tests or an earlier run
 * made them), as the demo does; the Python packages from the host's Debian mirror
 * (PyPI is never contacted from the tests).
 */
export async function prepareImages(): Promise<{ built: string[]; seconds: number }> {
  const r = await ensureImages({ docker, logger: createLogger({ level: 'warn' }), python: 'debian', ...(IMAGE_PREFIX ? { imagePrefix: IMAGE_PREFIX, baseImage: DEMO_BASE_IMAGE } : {}) });
  return { built: r.built, seconds: r.seconds };
}

/** Labelled containers and networks of a deployment that are still there. */
export async function leftovers(deployment: string): Promise<string[]> {
  const labels = [`${LABEL_DEPLOYMENT}=${deployment}`];
  const cs = await docker.listContainers(labels);
  const ns = await docker.listNetworks(labels);
  return [...cs.map((c) => `container /${c.name}`), ...ns.map((n) => `network ${n.name}`)];
}

/** Removes a deployment's labelled resources (test cleanup). */
export async function removeDeployment(deployment: string): Promise<void> {
  await execa(NODE, [CTUN_RUN, 'clean', '--deployment', deployment], { reject: false });
}

/** Runs the PC session (tools/demo/session.ts) in a namespace and returns its JSON lines. */
export async function pcSession(exec: (file: string, args: string[], o?: { timeout?: number }) => Promise<{ stdout: string }>, request: object): Promise<Array<Record<string, any>>> {
  const r = await exec(NODE, ['--import', 'tsx', SESSION, JSON.stringify(request)], { timeout: 60_000 });
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/**
 * Does on the PC what ctun-run printed for it: configures the client TAP, then starts
 * the printed `ctun client …` line as it stands. The caller stops it (through `cleanups`).
 */
export async function startPrintedClient(pc: Pc, command: string, cleanups: Array<() => Promise<unknown>>): Promise<Proc> {
  expect((await pc.exec(NODE, [CTUN, 'configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive'])).exitCode).toBe(0);
  const client = pc.spawn(NODE, [CTUN, ...command.split(' ').slice(1)], { label: command });
  cleanups.push(() => client.stop());
  return client;
}

/**
 * The PC's tool session over the tunnel toward `target` (port mapper 27027, XCP 5555,
 * services named `NAME-tcp`/`NAME-udp`, `extra` for more of the request): every step
 * ok and both echoes back. Returns the steps by name for the test's own checks.
 */
export async function sessionOverTunnel(pc: Pc, target: string, name: string, extra: object = {}): Promise<Record<string, any>> {
  const steps = await pcSession((f, a, o) => pc.exec(f, a, o), {
    mode: 'session',
    target,
    portMapper: 27027,
    xcp: 5555,
    ...extra,
    dockerHost: pc.hostAddress,
    names: { tcp: `${name}-tcp`, udp: `${name}-udp` },
  });
  const by = Object.fromEntries(steps.map((s) => [s.step, s]));
  expect(steps.every((s) => s.ok), JSON.stringify(steps)).toBe(true);
  expect(by.tcp).toMatchObject({ greeting: `HELLO ${name}-tcp`, answer: `${name}-tcp: ping over the tunnel` });
  expect(by.udp).toMatchObject({ answer: `${name}-udp: datagram over the tunnel` });
  return by;
}

/** What a deployment e2e file shares: cleanups run after each test (newest first) and the license stand-in. */
export interface DeploymentWorld {
  cleanups: Array<() => Promise<unknown>>;
  license(): LicenseStandin;
}

/**
 * Registers, inside a describe, the frame every deployment e2e file has: the images
 * prepared (rebuilt when they carry another tunnel than this checkout's), a license
 * stand-in on its own port and container name, and each test's cleanups run after it.
 */
export function deploymentWorld(o: { licensePort: number; licenseName: string }): DeploymentWorld {
  const cleanups: Array<() => Promise<unknown>> = [];
  let license: LicenseStandin | undefined;
  beforeAll(async () => {
    const images = await prepareImages();
    if (images.built.length) console.log(`built ${images.built.join(', ')} in ${images.seconds.toFixed(0)} s`);
    license = await startLicenseStandin(docker, { image: E2E_IMAGES.veos, port: o.licensePort, name: o.licenseName });
  }, 1_200_000);
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  afterAll(async () => {
    await license?.remove();
  });
  return { cleanups, license: () => license! };
}
