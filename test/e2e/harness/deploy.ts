/**
 * What the deployment end-to-end tests share: the images (made through the build
 * library when missing, with the same tags the build tests make), the license
 * stand-in, the real ctun-run CLI, and a look for labelled leftovers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import Dockerode from 'dockerode';
import { createLogger } from '../../../tools/common/index.js';
import { connectDocker } from '../../../tools/docker/index.js';
import { DEFAULT_IMAGES, ensureImages } from '../../../tools/demo/images.js';
import { LABEL_DEPLOYMENT } from '../../../tools/run/index.js';
import { ROOT, NODE } from '../../integration/harness/netns.js';
import { makeSeedWheels } from '../../../tools/build/index.js';

export { ROOT, NODE };
export const CTUN_RUN = `${ROOT}bin/ctun-run.js`;
export const CTUN = `${ROOT}bin/ctun.js`;
export const SESSION = `${ROOT}tools/demo/session.ts`;
export const docker = new Dockerode();

/** Why these tests cannot run here, or undefined. */
export async function deployUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces, TAP devices and Docker';
  const info = await execa('docker', ['info'], { reject: false });
  if (info.exitCode !== 0) return 'needs a running Docker daemon';
  return undefined;
}

/** Builds whatever image is missing (nothing when the build tests or an earlier run made them). */
export async function prepareImages(): Promise<{ built: string[]; seconds: number }> {
  const d = connectDocker();
  const missing = [];
  for (const i of Object.values(DEFAULT_IMAGES)) if (!(await d.imageExists(i))) missing.push(i);
  let wheels: string | undefined = process.env.CTUN_WHEELS;
  let tmp: string | undefined;
  if (missing.some((m) => m.startsWith('dspace/veos')) && !wheels) {
    tmp = await mkdtemp(join(tmpdir(), 'ctun-e2e-'));
    wheels = join(tmp, 'wheels');
    await makeSeedWheels({ outDir: wheels, logger: createLogger({ level: 'warn' }) });
  }
  try {
    const r = await ensureImages({ docker: d, logger: createLogger({ level: 'warn' }), ...(wheels ? { wheels } : {}) });
    return { built: r.built, seconds: r.seconds };
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

/** Labelled containers and networks of a deployment that are still there. */
export async function leftovers(deployment: string): Promise<string[]> {
  const filters = { label: [`${LABEL_DEPLOYMENT}=${deployment}`] };
  const cs = await docker.listContainers({ all: true, filters });
  const ns = await docker.listNetworks({ filters });
  return [...cs.map((c) => `container ${c.Names[0]}`), ...ns.map((n) => `network ${n.Name}`)];
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
