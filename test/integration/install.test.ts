/**
 * ctun installed on a site, from its two artifacts, as a user would install it:
 * - the release tarball (`npm run release`), unpacked in a container of the bare base
 *   image (no npm, no compiler, no network) and on this host, where a tunnel between
 *   two namespaces runs from the unpacked copy;
 * - the npm package (`npm pack`), installed with `npm install -g` into a temporary
 *   prefix with no compiler on PATH, run by the Node that is there.
 * The release and the package are made once for the file; the addon is prebuilt once
 * and shipped in both.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildRelease, prebuildAddon, releaseName, PREBUILD_DIR, PREBUILD_FILE } from '../../tools/image/index.js';
import { ensureBaseImage } from '../fixtures/build/base.js';
import { metadata, TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { link, netnsUnavailable, ROOT, Scope, type Netns } from './harness/netns.js';

const BASE_IMAGE = 'debian:12';
const LABEL = 'ctun.test=install';
const skip = netnsUnavailable() ?? (existsSync('/var/run/docker.sock') ? undefined : 'needs the Docker daemon');
const NAME = releaseName();
/** Images built from the release carry this prefix, so only they are removed afterwards. */
const TAG_PREFIX = `ctun-install-${process.pid}/`;

let work: string;
let release: string; // the .tar.gz
let unpacked: string; // its top folder, unpacked on this host
let tgz: string; // npm pack's tarball
let pinnedNode: string; // `node --version` of the Node the release carries

beforeAll(async () => {
  if (skip) return;
  work = await mkdtemp(join(tmpdir(), 'ctun-install-'));
  // A fresh machine has no base image: made from the host's mirror once per run, by the
  // first file that needs it (with `ctun-build base`).
  await ensureBaseImage();
  const addon = await prebuildAddon(ROOT, work);
  release = (await buildRelease({ root: ROOT, outDir: join(work, 'dist'), addon })).file;
  await mkdir(join(work, 'site'));
  await execa('tar', ['xzf', release, '-C', join(work, 'site')]);
  unpacked = join(work, 'site', NAME);
  pinnedNode = (await execa(join(unpacked, 'bin', 'node'), ['--version'])).stdout;
  const packed = await execa('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: ROOT, env: { CTUN_PREBUILT_ADDON: addon } });
  tgz = join(work, packed.stdout.trim().split('\n').pop()!);
}, 300_000);

afterAll(async () => {
  if (skip) return;
  const ours = (await execa('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n').filter((t) => t.startsWith(TAG_PREFIX));
  if (ours.length) await execa('docker', ['rmi', ...ours], { reject: false });
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(skip)('the release tarball', () => {
  it(`unpacked in a bare ${BASE_IMAGE} container (no npm, no compiler, network none), the three tools run`, async () => {
    const script = [
      'set -e',
      // What the host lacks is part of the claim.
      'for t in npm node gcc cc g++ make python3; do if command -v $t >/dev/null; then echo "the image has $t"; exit 9; fi; done',
      'mkdir -p /opt/site && tar xzf /in/release.tar.gz -C /opt/site',
      `R=/opt/site/${NAME}/bin`,
      '$R/ctun --version --verbose',
      '$R/ctun-run --version',
      '$R/ctun-run k8s render --validate --out /tmp/k8s 2>&1',
      'echo ---plan---',
      '$R/ctun-build ctun acceptDspaceEula --print-plan',
    ].join('\n');
    const r = await execa(
      'docker',
      ['run', '--rm', '--name', `ctun-install-${process.pid}`, '--label', LABEL, '--network', 'none', '-v', `${release}:/in/release.tar.gz:ro`, BASE_IMAGE, 'sh', '-c', script],
      { reject: false, all: true, timeout: 120_000 },
    );
    expect(r.exitCode, r.all).toBe(0);
    const [head, planText] = r.stdout.split('---plan---\n') as [string, string];
    const lines = head.split('\n');
    expect(lines[0]).toBe(metadata.ctunVersion);
    expect(lines[1]).toBe(`addon: /opt/site/${NAME}/tools/tunnel/native/${PREBUILD_DIR}/${PREBUILD_FILE}`);
    expect(lines[2]).toBe(`node: ${pinnedNode} /opt/site/${NAME}/bin/node`);
    expect(lines[3]).toBe('aead: the addon (agrees with node:crypto)');
    expect(lines[4]).toBe(metadata.ctunVersion);
    expect(head).toMatch(/k8s-valid/);
    expect(head).toContain('wrote /tmp/k8s/veos.23.1.ctun.yaml');
    // The runtime image is made from the install itself: its Node, its bundle, its addon.
    const plan = JSON.parse(planText) as { runtime: { nodeBinary: string; entry: string; addon: string } };
    expect(plan.runtime).toMatchObject({
      nodeBinary: `/opt/site/${NAME}/bin/node`,
      entry: `/opt/site/${NAME}/lib/ctun.mjs`,
      addon: `/opt/site/${NAME}/tools/tunnel/native/${PREBUILD_DIR}/${PREBUILD_FILE}`,
    });
  });

  it('ctun-build ctun from the unpacked copy builds the images from the install itself, and their ctun runs', async () => {
    const r = await execa(join(unpacked, 'bin', 'ctun-build'), ['ctun', 'acceptDspaceEula', '--baseImage', BASE_IMAGE, '--tagPrefix', TAG_PREFIX, '--progress', 'plain'], {
      reject: false,
      all: true,
      timeout: 600_000,
    });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toContain(`${TAG_PREFIX}${metadata.images.localServer} sha256:`);
    const v = await execa('docker', ['run', '--rm', '--label', LABEL, '--network', 'none', '--entrypoint', '/opt/ctun/bin/ctun', `${TAG_PREFIX}${metadata.images.localServer}`, '--version', '--verbose'], { reject: false, all: true });
    expect(v.exitCode, v.all).toBe(0);
    expect(v.stdout.split('\n')).toEqual([metadata.ctunVersion, 'addon: /opt/ctun/native/ctun_tap.node', `node: ${pinnedNode} /opt/ctun/bin/node`, 'aead: the addon (agrees with node:crypto)']);
  }, 600_000);

  describe('a tunnel run from the unpacked copy', () => {
    const scope = new Scope();
    afterEach(() => scope.dispose());
    const ctun = (ns: Netns, args: string[]) => ns.spawn(join(unpacked, 'bin', 'ctun'), args, { label: `${ns.name}: ctun ${args.join(' ')}` });

    it('carries ping and TCP between two namespaces', async () => {
      const sim = await scope.ns('rsim');
      const pc = await scope.ns('rpc');
      await link(pc, '10.78.0.1/24', sim, '10.78.0.2/24');
      const configured = await pc.exec(join(unpacked, 'bin', 'ctun'), ['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
      expect(configured.stdout).toContain('dstap0 has 192.168.100.100/24');
      const server = scope.track(ctun(sim, ['server']));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(ctun(pc, ['client', '10.78.0.2']));
      await client.waitFor(/client-connected/, 15_000);
      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
      const tcp = await sim.startProbe('tcp-server');
      scope.track(tcp.daemon);
      expect(await pc.probe('tcp-send', TUNNEL_DEFAULTS.serverAddress, String(tcp.first.port), 'from-the-release')).toMatchObject({ ok: true, reply: 'tcp-echo:from-the-release' });
    });
  });
});

describe.skipIf(skip)('the npm package', () => {
  let prefix: string;
  let pathBin: string; // node and sh only: no compiler, no python, no make
  const installed = () => join(prefix, 'lib', 'node_modules', 'ctun');
  const run = (bin: string, args: string[], path = pathBin) => execa(join(prefix, 'bin', bin), args, { reject: false, all: true, env: { PATH: path }, extendEnv: true });

  beforeAll(async () => {
    if (skip) return;
    prefix = join(work, 'prefix');
    pathBin = join(work, 'path-bin');
    await mkdir(pathBin, { recursive: true });
    await symlink(process.execPath, join(pathBin, 'node'));
    await symlink('/bin/sh', join(pathBin, 'sh'));
    const npmCli = (await execa('sh', ['-c', 'readlink -f "$(command -v npm)"'])).stdout;
    // --prefix moves npm's global config too: keep the one this host has (its CA file).
    const globalconfig = (await execa('npm', ['config', 'get', 'globalconfig'])).stdout;
    const r = await execa(process.execPath, [npmCli, 'install', '-g', '--prefix', prefix, tgz, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], {
      env: { PATH: pathBin, npm_config_globalconfig: globalconfig },
      reject: false,
      all: true,
      timeout: 240_000,
    });
    expect(r.exitCode, r.all).toBe(0);
  }, 300_000);

  it('installs with no compiler: the prebuilt addon is used, nothing was compiled', async () => {
    const which = await execa('sh', ['-c', 'for t in cc gcc g++ c++ make python3; do command -v $t && exit 1; done; exit 0'], { env: { PATH: pathBin }, reject: false });
    expect(which.exitCode, `found ${which.stdout}`).toBe(0);
    expect(await readdir(join(installed(), 'tools', 'tunnel', 'native'))).not.toContain('build');
    const r = await run('ctun', ['--version', '--verbose']);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      metadata.ctunVersion,
      `addon: ${join(installed(), 'tools', 'tunnel', 'native', PREBUILD_DIR, PREBUILD_FILE)}`,
      `node: ${process.version} ${process.execPath}`,
      'aead: the addon (agrees with node:crypto)',
    ]);
    // No TypeScript at run time: the installed tree has the bundles, not the sources.
    expect(existsSync(join(installed(), 'tools', 'cli'))).toBe(false);
    expect(existsSync(join(installed(), 'node_modules', 'tsx'))).toBe(false);
  });

  it('the three bins run, and ctun-run k8s render --validate works from it', async () => {
    for (const bin of ['ctun', 'ctun-build', 'ctun-run']) {
      const r = await run(bin, ['--version']);
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stdout).toBe(metadata.ctunVersion);
    }
    const out = join(work, 'k8s-from-npm');
    const r = await run('ctun-run', ['k8s', 'render', '--validate', '--out', out]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/k8s-valid/);
    expect((await readdir(out)).sort()).toEqual(['ctun-network-policy.yaml', 'ctun-separate-server.yaml', 'ctun-service.yaml', 'veos.23.1.ctun.yaml', 'veos.23.1.yaml']);
    const plan = await run('ctun-build', ['ctun', 'acceptDspaceEula', '--print-plan']);
    expect(plan.exitCode, plan.all).toBe(0);
    expect(JSON.parse(plan.stdout).runtime.entry).toBe(join(installed(), 'lib', 'ctun.mjs'));
  });

  // The host's own Node, when it is another major than the pinned one (Debian 12's is 20):
  // the same install, the same prebuilt N-API addon, its OpenSSL calls through that Node.
  const systemNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p));
  it.skipIf(!systemNode)('runs under the system Node too, addon included', async () => {
    const bin = join(work, 'path-system-node');
    await mkdir(bin, { recursive: true });
    await symlink(systemNode!, join(bin, 'node'));
    const version = (await execa(systemNode!, ['-p', 'process.version'])).stdout;
    const r = await run('ctun', ['--version', '--verbose'], bin);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toContain(`node: ${version} ${systemNode}`);
    expect(r.stdout).toContain(`addon: ${join(installed(), 'tools', 'tunnel', 'native', PREBUILD_DIR, PREBUILD_FILE)}`);
    expect(r.stdout).toContain('aead: the addon (agrees with node:crypto)');
    const render = await run('ctun-run', ['k8s', 'render', '--validate', '--out', join(work, 'k8s-node-system')], bin);
    expect(render.exitCode, render.all).toBe(0);
  });
});
