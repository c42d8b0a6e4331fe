/**
 * Image builds against the real daemon: a Debian 12 base bootstrapped from the host's
 * own apt mirror (kept between runs), the four ctun images, the simulator image with
 * Python packages from a local pip index, the image with the tunnel inside with
 * packages from a wheels directory, and the errors a user meets before and during a
 * build. PyPI is not reachable here: the wheels come from the product's maker
 * (makeSeedWheels: Debian's supervisor/toposort/setuptools plus local stand-ins).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadata, silentLogger } from '../../tools/common/index.js';
import { makeSeedWheels, writeSimpleIndex } from '../../tools/image/index.js';
import { connectDocker } from '../../tools/docker/index.js';
import { buildStandinTarball, LICENSE_READY_PATTERN, SIMULATOR_INSTALL_DIR, SIMULATOR_READY_PATTERN } from '../../tools/simulator/index.js';
import { ctunBuild, dockerCli, waitForLog } from '../fixtures/build/images.js';
import { BASE_IMAGE as BASE, baseBootstrapOfThisRun, ensureBaseImage } from '../fixtures/build/base.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TEST_LABEL = 'io.ctun.kind=container/test-build';
// The simulator images are built under tags of this run: under the usual tags the
// context digest of a warm host would find them up to date and build nothing.
const VEOS_TAG = `ctun-test/veos-it:${process.pid}`;
const VEOS_CTUN_TAG = `ctun-test/veos-ctun-it:${process.pid}`;
const docker = connectDocker();

const daemon = await docker.ping().then(
  () => true,
  () => false,
);

let work: string;
let tarball: string;
let wheelsDir: string;
let indexUrl: string;
let indexServer: ResultPromise | undefined;


/** Starts a labelled test container; returns its id. */
async function runContainer(args: string[]): Promise<string> {
  const r = await dockerCli(['run', '-d', '--label', 'io.ctun.managed=true', '--label', TEST_LABEL, ...args]);
  expect(r.exitCode, r.all).toBe(0);
  return r.stdout.trim();
}

async function ipOf(id: string): Promise<string> {
  return (await dockerCli(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', id])).stdout.trim();
}

async function supervisorStatus(id: string): Promise<Record<string, string>> {
  const r = await dockerCli(['exec', id, 'supervisorctl', 'status']);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const [name, state] = line.trim().split(/\s+/);
    if (name && state) out[name] = state;
  }
  return out;
}

async function waitForState(id: string, program: string, state: string, timeoutMs = 20_000): Promise<Record<string, string>> {
  const started = Date.now();
  let status: Record<string, string> = {};
  while (Date.now() - started < timeoutMs) {
    status = await supervisorStatus(id);
    if (status[program] === state) return status;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`waited ${timeoutMs} ms for supervisord program ${program} to be ${state}; status: ${JSON.stringify(status)}`);
}

async function removeTestContainers(): Promise<void> {
  const list = await docker.listContainers([TEST_LABEL]);
  await Promise.all(list.map((c) => docker.removeContainer(c.id).catch(() => undefined)));
}


/** A PEP 503 index over the wheels, served on the docker bridge so build containers reach it. */
async function serveIndex(): Promise<string> {
  const net = await docker.findNetwork('bridge');
  // The default bridge often lists no gateway; then it is the bridge device's address.
  const bridgeName = net?.bridge ?? 'docker0';
  // (read with ip: Node lists no address of a bridge that is down for want of containers)
  const ipAddr = async (): Promise<string | undefined> => {
    const r = await execa('ip', ['-j', '-4', 'addr', 'show', 'dev', bridgeName], { reject: false });
    const parsed = JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ local?: string }> }>;
    return parsed[0]?.addr_info?.[0]?.local;
  };
  const gateway = net?.gateway ?? (await ipAddr());
  if (!gateway) throw new Error('the docker bridge network has no gateway address');
  const root = join(work, 'index');
  await writeSimpleIndex(wheelsDir, root);
  // Beside the index, a "mirror" whose release files answer but are not signed.
  for (const [dir, suite] of [['debian', 'bookworm'], ['debian', 'bookworm-updates'], ['debian-security', 'bookworm-security']] as const) {
    await mkdir(join(root, 'not-a-mirror', dir, 'dists', suite), { recursive: true });
    await writeFile(join(root, 'not-a-mirror', dir, 'dists', suite, 'InRelease'), 'Origin: nobody\nSuite: ' + suite + '\n');
  }
  indexServer = execa('python3', ['-u', '-m', 'http.server', '0', '--bind', gateway, '--directory', root], { reject: false, buffer: false });
  const port = await new Promise<number>((res, rej) => {
    const t = setTimeout(() => rej(new Error('the pip index server did not start within 10 s')), 10_000);
    indexServer!.stdout!.on('data', (c: Buffer) => {
      const m = /port (\d+)/.exec(c.toString());
      if (m) {
        clearTimeout(t);
        res(Number(m[1]));
      }
    });
  });
  return `http://${gateway}:${port}/simple`;
}

describe.skipIf(!daemon)('image builds (real daemon)', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ctun-build-it-'));
    await removeTestContainers();
    // The base image is the slow part (a minute and a half): made once per run, then reused.
    await ensureBaseImage();
    tarball = (await buildStandinTarball({ outDir: join(work, 'in') })).path;
    wheelsDir = join(work, 'wheels');
    await makeSeedWheels({ outDir: wheelsDir, logger: silentLogger });
    indexUrl = await serveIndex();
  });

  afterAll(async () => {
    await removeTestContainers();
    for (const tag of [VEOS_TAG, VEOS_CTUN_TAG]) await docker.removeImage(tag).catch(() => undefined);
    indexServer?.kill('SIGTERM');
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('`ctun-build base` bootstraps a NEW image from the host mirror, labelled, with deb822 sources', async () => {
    // The bootstrap must really run: an image that was there before proves nothing about
    // `ctun-build base`. When this run found no debian:12, the first file that needed one
    // made it with this very command (test/fixtures/build/base.ts): that bootstrap, its
    // output and its image are checked here. Otherwise a tag of this run only is
    // bootstrapped now, and exactly this image is removed after.
    const earlier = await baseBootstrapOfThisRun();
    const ownTag = `ctun-test/base-it:${process.pid}`;
    const before = new Set(earlier ? earlier.imagesBefore : (await docker.listImages()).map((i) => i.id));
    const r = earlier ?? (await ctunBuild(['base', '--distro', 'debian', '--suite', 'bookworm', '--tag', ownTag, '--progress', 'plain']));
    const tags = earlier ? [BASE, 'debian:bookworm'] : [ownTag];
    const tag = tags[0]!;
    try {
      expect(r.exitCode, (r.all ?? '').split('\n').slice(-20).join('\n')).toBe(0);
      // Its last word: the tags and the image id.
      const imageId = new RegExp(`^${tags.join(' ').replace(/[.:/]/g, '\\$&')} (sha256:[0-9a-f]{64})$`, 'm').exec(r.stdout)?.[1];
      expect(imageId, r.stdout).toBeDefined();
      expect(before.has(imageId!)).toBe(false); // built now, not found
      const info = await docker.inspectImage(tag);
      expect(info?.id).toBe(imageId);
      expect(info?.labels).toMatchObject({ 'io.ctun.managed': 'true', 'io.ctun.kind': 'image/base', 'io.ctun.base.suite': 'bookworm' });
      const c = await dockerCli(['run', '--rm', tag, 'sh', '-c', 'cat /etc/os-release /etc/apt/sources.list.d/debian.sources; ls /etc/apt/sources.list 2>&1; ls -l /usr/bin/su']);
      expect(c.stdout).toContain('VERSION_CODENAME=bookworm');
      expect(c.stdout).toContain('Suites: bookworm-security');
      expect(c.stdout).toContain('No such file'); // only the deb822 file
      expect(c.stdout).toMatch(/^-rwsr-xr-x .* \/usr\/bin\/su$/m); // set-uid bits survived the import
    } finally {
      if (!earlier) await docker.removeImage(ownTag).catch(() => undefined); // the tag; the image goes with it, being only ours
    }
  }, 400_000);

  it('errors before building: no EULA, missing or wrong tarball, missing base image', async () => {
    const noEula = await ctunBuild(['ctun', '--distro', 'debian']);
    expect(noEula.exitCode).toBe(1);
    expect(noEula.stderr).toContain('ctun-build: error: the dSPACE EULA is not accepted');
    expect(noEula.stderr).toContain('hint: give the literal acceptDspaceEula');

    const missing = await ctunBuild(['veos', 'online', 'acceptDspaceEula', 'x:1', join(work, 'nope.tar.gz'), '--distro', 'debian']);
    expect(missing.exitCode).not.toBe(0);
    expect(missing.stderr).toMatch(/nope\.tar\.gz/);
    expect(missing.stderr).toContain('hint:');

    const notSim = join(work, 'not-a-simulator.tar.gz');
    await execa('tar', ['-czf', notSim, '-C', ROOT, 'metadata.json']);
    const wrong = await ctunBuild(['veos', 'online', 'acceptDspaceEula', 'x:1', notSim, '--distro', 'debian']);
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toMatch(/not-a-simulator\.tar\.gz/);

    const noBase = await ctunBuild(['ctun', 'acceptDspaceEula', '--baseImage', 'debian:11', '--progress', 'plain']);
    expect(noBase.exitCode).not.toBe(0);
    expect(noBase.stderr).toContain('the base image debian:11 does not exist locally');
    expect(noBase.stderr).toContain('hint: make it from an apt mirror: ctun-build base --distro debian --suite bullseye --tag debian:11');
  });

  it('builds the four ctun images; `ctun --version` runs inside', async () => {
    // This case must build: on a warm host the context digest would find every image
    // up to date and build nothing. So the five tags go first (the runtime's and the
    // four images'; an image a container still runs stays for it), and the build runs
    // as a user's does, with the layer cache: the four images share every layer up to
    // their last lines by design (dockerfiles/ctun.Dockerfile), which --no-cache would
    // build four times over. The cache is content-addressed: a change to the
    // Dockerfile, tunnel-root.sh or the runtime builds anew.
    const ctunImages = Object.entries(metadata.images).filter(([key]) => !key.startsWith('veos')).map(([, image]) => image);
    const runtimeImage = `dspace/ctun/runtime:${metadata.ctunVersion}`;
    for (const image of [...ctunImages, runtimeImage]) {
      if (await docker.imageExists(image)) expect((await dockerCli(['image', 'rm', '--force', '--no-prune', image])).exitCode, `untag ${image}`).toBe(0);
    }
    const r = await ctunBuild(['ctun', 'acceptDspaceEula', '--distro', 'debian', '--progress', 'json']);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).not.toContain('up to date');
    for (const image of [...ctunImages, runtimeImage]) expect(await docker.imageExists(image), `${image} was built`).toBe(true);
    const events = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { task?: string; event: string; state?: string; ok?: boolean });
    const completed = events.filter((e) => e.event === 'state' && e.state === 'COMPLETED').map((e) => e.task);
    expect(completed.filter((t) => t?.startsWith('build '))).toHaveLength(5);
    expect(events.at(-1)).toMatchObject({ event: 'end', ok: true });

    const entrypoints: Record<string, string[]> = {};
    for (const [key, image] of Object.entries(metadata.images)) {
      if (key.startsWith('veos')) continue;
      const info = await docker.inspectImage(image);
      expect(info?.labels['io.ctun.managed']).toBe('true');
      expect(info?.labels['io.ctun.kind']).toMatch(/^image\/(local|separate)-(server|client)$/);
      entrypoints[key] = JSON.parse((await dockerCli(['image', 'inspect', '-f', '{{json .Config.Entrypoint}}', image])).stdout) as string[];
    }
    expect(entrypoints).toEqual({
      localServer: ['ctun', 'server', '--mode', 'local'],
      separateServer: ['ctun', 'server', '--mode', 'separate'],
      localClient: ['ctun', 'client'],
      separateClient: ['ctun', 'client'],
    });
    const v = await dockerCli(['run', '--rm', '--entrypoint', 'ctun', metadata.images.localServer, '--version']);
    expect(v.stdout.trim()).toBe(metadata.ctunVersion);
    // No npm and no compiler in the image: only the runtime, the bundle and the addon
    // (and no ls either: the image is only what the tunnel runs, the shell's glob lists).
    const files = await dockerCli(['run', '--rm', '--entrypoint', 'sh', metadata.images.separateServer, '-c', 'echo /opt/ctun/* /opt/ctun/native/*; command -v npm gcc || true']);
    expect(files.stdout.trim()).toBe('/opt/ctun/bin /opt/ctun/ctun.mjs /opt/ctun/native /opt/ctun/native/ctun_tap.node');
  }, 600_000);

  it('a failing step exits non-zero, naming the step and its log tail', async () => {
    // A "mirror" that passes the preflight (its InRelease answers) but is no apt
    // repository: apt refuses the unsigned index and the RUN step fails.
    const mirror = indexUrl.replace(/\/simple$/, '/not-a-mirror');
    const r = await ctunBuild(['ctun', 'acceptDspaceEula', '--distro', 'debian', '--ubuntuArchiveServer', `${mirror}/debian`, '--ubuntuSecurityServer', `${mirror}/debian-security`, '--progress', 'plain']);
    expect(r.exitCode, r.all.split('\n').slice(-20).join('\n')).toBe(7);
    expect(r.stderr).toMatch(/ctun-build: error: build of dspace\/ctun\/local-server:23\.1\.0 failed at step \d+\/\d+ `RUN apt-get update/);
    expect(r.stderr).toContain('returned a non-zero code: 100');
    expect(r.stderr).toMatch(/\| E: .*(is not signed|Clearsigned file isn't valid)/);
    expect(r.stderr).toContain('hint: fix the failing step');
  });

  it('a mirror that does not answer is named before anything is built', async () => {
    const r = await ctunBuild(['ctun', 'acceptDspaceEula', '--distro', 'debian', '--ubuntuArchiveServer', 'http://127.0.0.1:9/debian', '--progress', 'plain']);
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toContain('ctun-build: error: the apt archive source "http://127.0.0.1:9/debian" does not answer: http://127.0.0.1:9/debian/dists/bookworm/InRelease: connect ECONNREFUSED 127.0.0.1:9');
    expect(r.stderr).toContain('ctun-build: hint: check --ubuntuArchiveServer');
    expect(r.stdout).not.toContain('Step 1/');
  });

  it('builds the simulator image with pip from a local index; supervisord runs it; license error and license OK', async () => {
    const r = await ctunBuild(['veos', 'online', 'acceptDspaceEula', VEOS_TAG, tarball, '--distro', 'debian', '--pipIndexUrl', indexUrl, '--pipTrustedHost', '--progress', 'plain']);
    expect(r.exitCode, r.all.split('\n').slice(-30).join('\n')).toBe(0);
    expect(r.stdout).toContain(`Looking in indexes: ${indexUrl}`);
    expect(r.stdout).toContain('Step 1/'); // a build ran: an up-to-date image prints no steps
    const info = await docker.inspectImage(VEOS_TAG);
    expect(info?.labels).toMatchObject({ 'io.ctun.kind': 'image/veos', 'io.ctun.veos.release': metadata.veosRelease });

    // Unreachable license server: the simulator says so, supervisord keeps retrying it.
    const bad = await runContainer(['-e', 'DS_CMU_SERVER=127.0.0.1', '-e', 'VEOS_STANDIN_LICENSE_ATTEMPTS=2', '-e', 'VEOS_STANDIN_LICENSE_RETRY_DELAY_MS=100', VEOS_TAG]);
    await waitForLog(bad, /license server 127\.0\.0\.1:22350 .*unreachable/, 'the license error');
    await waitForLog(bad, /exited: veos \(exit status 3; not expected\)/, 'supervisord reporting the exit');

    // The license stand-in in another container: the simulator gets ready.
    const lic = await runContainer(['--entrypoint', 'python3', VEOS_TAG, '-u', `${SIMULATOR_INSTALL_DIR}/bin/license_standin.py`]);
    await waitForLog(lic, LICENSE_READY_PATTERN, 'the license stand-in ready line');
    const good = await runContainer(['-e', `DS_CMU_SERVER=${await ipOf(lic)}`, VEOS_TAG]);
    const logs = await waitForLog(good, SIMULATOR_READY_PATTERN, 'the simulator ready line');
    expect(logs).toContain('license ok');
    const status = await waitForState(good, 'veos', 'RUNNING');
    expect(status).toEqual({ dependentstartup: 'RUNNING', veos: 'RUNNING' });
  });

  it('builds the image with the tunnel inside (wheels dir); CTUN_START=yes runs the server under supervision', async () => {
    const r = await ctunBuild([
      'veos', 'online', 'acceptDspaceEula', VEOS_CTUN_TAG, tarball, '--installCtun', 'yes', '--distro', 'debian', '--wheels', wheelsDir, '--progress', 'plain',
    ]);
    expect(r.exitCode, r.all.split('\n').slice(-30).join('\n')).toBe(0);
    expect(r.stdout).toContain('Step 1/'); // a build ran: an up-to-date image prints no steps
    const v = await dockerCli(['run', '--rm', '--entrypoint', 'ctun', VEOS_CTUN_TAG, '--version']);
    expect(v.stdout.trim()).toBe(metadata.ctunVersion);

    const lic = await runContainer(['--entrypoint', 'python3', VEOS_CTUN_TAG, '-u', `${SIMULATOR_INSTALL_DIR}/bin/license_standin.py`]);
    await waitForLog(lic, LICENSE_READY_PATTERN, 'the license stand-in ready line');
    const licIp = await ipOf(lic);
    const caps = ['--cap-add', 'NET_ADMIN', '--device', '/dev/net/tun'];

    // Without CTUN_START the tunnel server is installed but not started.
    const off = await runContainer([...caps, '-e', `DS_CMU_SERVER=${licIp}`, VEOS_CTUN_TAG]);
    await waitForLog(off, SIMULATOR_READY_PATTERN, 'the simulator ready line');
    await waitForState(off, 'veos', 'RUNNING');
    await new Promise((res) => setTimeout(res, 1500));
    expect((await supervisorStatus(off))['ctun']).toBe('STOPPED');

    // With CTUN_START=yes (what `ctun-run veos --startCtun yes` sets) it runs, supervised.
    const on = await runContainer([...caps, '-e', 'CTUN_START=yes', '-e', `DS_CMU_SERVER=${licIp}`, VEOS_CTUN_TAG]);
    await waitForLog(on, SIMULATOR_READY_PATTERN, 'the simulator ready line');
    const status = await waitForState(on, 'ctun', 'RUNNING');
    expect(status).toMatchObject({ veos: 'RUNNING', ctun: 'RUNNING' });
    await waitForLog(on, /server-listening .*port=1723/, 'the tunnel server listening');
  });
});

if (!daemon) {
  it.skip('image builds: no Docker daemon reachable (start dockerd)', () => {});
}
