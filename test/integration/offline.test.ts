/**
 * Offline and air-gapped builds in a closed world on the real daemon:
 *  - an internal Docker network (no route out) for every build step (--buildNetwork);
 *  - the base image only from a registry on loopback (Debian's docker-registry);
 *  - a partial Debian mirror (real signed indexes, only the packages the images need)
 *    and a signed .NET feed stand-in with a test key, both served on that network's
 *    gateway;
 *  - Python packages only from wheels.
 * Then the images build and run, each missing source fails before anything is built,
 * a step that reaches beyond the given sources fails, and a bundle of the images and
 * the tarball round-trips through `ctun-build load`. Every image here carries the
 * test's own prefix, so other tests' images are never touched.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadata, silentLogger } from '../../tools/common/index.js';
import { makeSeedWheels } from '../../tools/image/index.js';
import { ensureBaseImage } from '../fixtures/build/base.js';
import { connectDocker } from '../../tools/docker/index.js';
import { buildStandinTarball, LICENSE_READY_PATTERN, SIMULATOR_INSTALL_DIR, SIMULATOR_READY_PATTERN } from '../../tools/simulator/index.js';
import { ctunBuild, dockerCli as dockerCliFor, waitForLog } from '../fixtures/build/images.js';
import {
  TEST_LABELS,
  makeDotnetFeed,
  primeMirror,
  serveStatic,
  sha256File,
  startRegistry,
  waitHttp,
  type DotnetFeed,
  type Started,
} from '../fixtures/offline/world.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BASE = 'debian:12';
const PREFIX = 'ctun-it-offline';
const NETWORK = `ctun-it-offline-${process.pid}`;
// A fixed subnet keeps the rendered sources, and so Docker's layer cache, the same from
// run to run; when it is taken, Docker picks one.
const SUBNET = '172.29.213.0/24';
const CACHE = '/var/tmp/ctun-it-offline';
const docker = connectDocker();

const daemon = await docker.ping().then(
  () => true,
  () => false,
);
const tools = ['docker-registry', 'gpg', 'dpkg-scanpackages', 'apt-ftparchive'].filter(
  (t) => !['/usr/bin', '/usr/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, t))),
);

const image = {
  runtime: `${PREFIX}/dspace/ctun/runtime:${metadata.ctunVersion}`,
  localServer: `${PREFIX}/${metadata.images.localServer}`,
  separateServer: `${PREFIX}/${metadata.images.separateServer}`,
  localClient: `${PREFIX}/${metadata.images.localClient}`,
  separateClient: `${PREFIX}/${metadata.images.separateClient}`,
  veos: `${PREFIX}/${metadata.images.veos}`,
  veosCtun: `${PREFIX}/${metadata.images.veosCtun}`,
};

let work: string;
let gateway: string;
let registry: Started;
let mirrorServer: Started;
let feed: DotnetFeed;
let mirrorDir: string;
let veosDir: string; // the seed's <CTUN_INSTALL_DIR>/veos/: tarball, wheels, key
let tarball: string;
let wheelsDir: string;
const timings: Record<string, number> = {};

const dockerCli = (args: string[], timeout = 60_000) => dockerCliFor(args, timeout);

async function timed<T>(name: string, f: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await f();
  } finally {
    timings[name] = (Date.now() - t) / 1000;
  }
}

async function removeTestContainers(): Promise<void> {
  const list = await docker.listContainers(['io.ctun.kind=container/test-offline']);
  await Promise.all(list.map((c) => docker.removeContainer(c.id).catch(() => undefined)));
}

/** Tags under a prefix of this file's (`PREFIX/dspace/ctun/...`). */
async function tagsUnder(prefix: string): Promise<string[]> {
  return (await docker.listImages()).flatMap((i) => i.tags).filter((t) => t.startsWith(`${prefix}/`));
}

/** Images a run tags under the prefixes of failing builds (none, when all goes as it should). */
async function removeStrayImages(): Promise<void> {
  for (const p of [`${PREFIX}-fail`, `${PREFIX}-leak`]) {
    for (const t of await tagsUnder(p)) await docker.removeImage(t).catch(() => undefined);
  }
}

async function removeTestNetworks(): Promise<void> {
  const list = await docker.listNetworks(['io.ctun.kind=network/test-offline']);
  for (const n of list) await docker.removeNetwork(n.id).catch(() => undefined);
}

async function runOnNetwork(args: string[]): Promise<string> {
  const r = await dockerCli(['run', '-d', ...TEST_LABELS, '--network', NETWORK, ...args]);
  expect(r.exitCode, r.all).toBe(0);
  return r.stdout.trim();
}

async function ipOn(id: string): Promise<string> {
  return (await docker.findContainer(id))!.networks[NETWORK]!;
}

/** The tail of a failed command, for assertion messages. */
const tail = (s: string | undefined, n = 40) => (s ?? '').split('\n').slice(-n).join('\n');

/**
 * What a tunnel image's apt sources say, all files together, after whether a one-line
 * sources.list exists (read with the image's Node: a tunnel image has no ls or cat).
 */
async function aptSourcesOf(ref: string): Promise<string> {
  const script = `const fs = require('fs'); const d = '/etc/apt/';
console.log(fs.existsSync(d + 'sources.list') ? 'sources.list present' : 'no sources.list');
for (const f of fs.readdirSync(d + 'sources.list.d')) process.stdout.write(fs.readFileSync(d + 'sources.list.d/' + f, 'utf8'));`;
  const r = await dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', '/opt/ctun/bin/node', ref, '-e', script]);
  return r.stdout;
}

describe.skipIf(!daemon || tools.length > 0)('offline builds in a closed world (real daemon)', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ctun-offline-it-'));
    await removeTestContainers();
    await removeTestNetworks();
    await removeStrayImages();
    // Made once per run, by the first file that needs it (with `ctun-build base`).
    await ensureBaseImage();
    // Everything that needs the way out happens now, before the world is closed.
    const mirror = await timed('prime mirror', () => primeMirror(join(CACHE, 'apt'), BASE));
    mirrorDir = mirror;
    await timed('registry + push base', async () => {
      registry = await startRegistry(join(CACHE, 'registry'), work);
      const ref = `${registry.address}/${BASE}`;
      for (const args of [['tag', BASE, ref], ['push', ref], ['rmi', ref]]) {
        const r = await dockerCli(args, 120_000);
        expect(r.exitCode, r.all).toBe(0);
      }
    });
    veosDir = join(work, 'veos');
    wheelsDir = join(work, 'wheels');
    await mkdir(wheelsDir, { recursive: true });
    await timed('wheels, tarball, .NET feed', async () => {
      tarball = (await buildStandinTarball({ outDir: veosDir })).path;
      for (const w of (await makeSeedWheels({ outDir: wheelsDir, logger: silentLogger })).files) await copyFile(join(wheelsDir, w), join(veosDir, w));
      feed = await makeDotnetFeed(work);
      await copyFile(feed.armoredKey, join(veosDir, 'microsoft.asc'));
    });
    // The closed network, and what it may reach: the mirror and the feed on its gateway.
    let net = await dockerCli(['network', 'create', '--internal', '--subnet', SUBNET, '--gateway', SUBNET.replace(/0\/24$/, '1'), ...TEST_LABELS.map((l) => l.replace('container/', 'network/')), NETWORK]);
    if (net.exitCode !== 0) net = await dockerCli(['network', 'create', '--internal', ...TEST_LABELS.map((l) => l.replace('container/', 'network/')), NETWORK]);
    expect(net.exitCode, net.all).toBe(0);
    gateway = (await docker.findNetwork(NETWORK))!.gateway!;
    const served = join(work, 'served');
    await mkdir(served);
    for (const d of ['debian', 'debian-security']) await execa('ln', ['-s', join(mirror, d), join(served, d)]);
    await execa('ln', ['-s', feed.dir, join(served, 'dotnet')]);
    // Port 80: the seed's form gives mirrors as bare IPs.
    mirrorServer = await serveStatic(served, gateway, 80);
  });

  afterAll(async () => {
    await removeTestContainers();
    await mirrorServer?.stop();
    // The builds pulled the base from the test registry: that tag names a registry
    // that is gone after this file, so remove it (the image stays as debian:12).
    if (registry) await docker.removeImage(`${registry.address}/${BASE}`).catch(() => undefined);
    await registry?.stop();
    await removeTestNetworks();
    await removeStrayImages();
    if (work) await rm(work, { recursive: true, force: true });
    process.stdout.write(`offline.test timings (s): ${JSON.stringify(timings)}\n`);
  });

  it('each missing or wrong source fails before anything is built, naming it', async () => {
    const seed = (archive: string, dotnet: string, key: string, extra: string[] = []) =>
      ctunBuild([
        'veos', 'offline', '--dockerRepository', registry.address, 'acceptDspaceEula', metadata.images.veos, tarball,
        archive, gateway, dotnet, key, '--distro', 'debian', '--buildNetwork', NETWORK, '--tagPrefix', `${PREFIX}-fail`,
        '--dotnetPackages', feed.packageName, '--progress', 'plain', ...extra,
      ]);
    const dotnet = `http://${gateway}/dotnet`;
    const key = join(veosDir, 'microsoft.asc');

    // The archive mirror removed (nothing answers where it was).
    const noMirror = await seed(`http://${gateway}:9/debian`, dotnet, key);
    expect(noMirror.exitCode).toBe(7);
    expect(noMirror.stderr).toContain(`ctun-build: error: the apt archive source "http://${gateway}:9/debian" does not answer: http://${gateway}:9/debian/dists/bookworm/InRelease: `);
    expect(noMirror.stderr).toContain('ctun-build: hint: check --ubuntuArchiveServer');

    // The .NET feed removed.
    const noFeed = await seed(gateway, `http://${gateway}/no-dotnet-here`, key);
    expect(noFeed.exitCode).toBe(7);
    expect(noFeed.stderr).toContain(`the .NET feed source "http://${gateway}/no-dotnet-here" does not answer: http://${gateway}/no-dotnet-here/dists/bookworm/InRelease: HTTP 404`);

    // A key file that is not a key.
    const notKey = join(work, 'not-a-key.asc');
    await writeFile(notKey, 'Microsoft public key: see the website\n');
    const badKey = await seed(gateway, dotnet, notKey);
    expect(badKey.exitCode).toBe(1);
    expect(badKey.stderr).toContain(`ctun-build: error: the key file ${notKey} is neither an ASCII-armored nor a binary OpenPGP public key`);

    // A wheel removed: which one, and the pip download line that fetches it elsewhere.
    const fewer = join(work, 'fewer-wheels');
    await mkdir(fewer);
    for (const w of (await execa('ls', [wheelsDir])).stdout.split('\n').filter((f) => !f.startsWith('toposort'))) await copyFile(join(wheelsDir, w), join(fewer, w));
    const noWheel = await seed(gateway, dotnet, key, ['--wheels', fewer]);
    expect(noWheel.exitCode).toBe(1);
    expect(noWheel.stderr).toContain(`ctun-build: error: ${fewer} lacks wheels for: toposort`);
    expect(noWheel.stderr).toContain(`pip download --no-cache-dir --only-binary=:all: toposort -d ${fewer}`);

    // The registry removed; the build network missing.
    const noRegistry = await ctunBuild(['ctun', 'acceptDspaceEula', '--dockerRepository', '127.0.0.1:9', '--distro', 'debian', '--tagPrefix', `${PREFIX}-fail`, '--progress', 'plain']);
    expect(noRegistry.exitCode).toBe(7);
    expect(noRegistry.stderr).toContain('the registry source "127.0.0.1:9" does not answer: https://127.0.0.1:9/v2/: connect ECONNREFUSED 127.0.0.1:9; http://127.0.0.1:9/v2/: connect ECONNREFUSED 127.0.0.1:9');
    const noNet = await ctunBuild(['ctun', 'acceptDspaceEula', '--distro', 'debian', '--buildNetwork', 'ctun-it-no-such-network', '--tagPrefix', `${PREFIX}-fail`, '--progress', 'plain']);
    expect(noNet.exitCode).toBe(1);
    expect(noNet.stderr).toContain('the build network ctun-it-no-such-network does not exist');

    // Nothing was built by any of them.
    const built = await tagsUnder(`${PREFIX}-fail`);
    expect(built).toEqual([]);
  });

  it('the ctun images build offline (seed form) and run; their apt sources name only the given mirror', async () => {
    const r = await timed('build ctun images', () =>
      ctunBuild([
        'ctun', 'acceptDspaceEula', '--dockerRepository', registry.address, '--ubuntuArchiveServer', gateway, '--ubuntuSecurityServer', `http://${gateway}/debian-security`,
        '--distro', 'debian', '--buildNetwork', NETWORK, '--tagPrefix', PREFIX, '--progress', 'plain',
      ]),
    );
    expect(r.exitCode, tail(r.all)).toBe(0);
    const v = await dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', 'ctun', image.localServer, '--version']);
    expect(v.stdout.trim()).toBe(metadata.ctunVersion);
    const info = await docker.inspectImage(image.separateServer);
    expect(info?.labels['io.ctun.base']).toBe(`${registry.address}/${BASE}`);
    const sources = await aptSourcesOf(image.localClient);
    expect(sources).toContain('no sources.list\n'); // only the deb822 file
    expect(sources).toContain(`URIs: http://${gateway}/debian\n`);
    expect(sources).toContain(`URIs: http://${gateway}/debian-security\n`);
    expect(sources.match(/^URIs: .*/gm)).toEqual([`URIs: http://${gateway}/debian`, `URIs: http://${gateway}/debian-security`]);
  });

  it('the simulator image builds offline (seed positional form, armored key, wheels beside the tarball) and runs in the closed network', async () => {
    const r = await timed('build veos image', () =>
      ctunBuild([
        'veos', 'offline', '--dockerRepository', registry.address, 'acceptDspaceEula', metadata.images.veos, tarball,
        gateway, gateway, `http://${gateway}/dotnet`, join(veosDir, 'microsoft.asc'),
        '--distro', 'debian', '--buildNetwork', NETWORK, '--tagPrefix', PREFIX, '--dotnetPackages', feed.packageName, '--progress', 'plain',
      ]),
    );
    expect(r.exitCode, tail(r.all)).toBe(0);
    expect(r.stdout).toContain('--no-index --find-links /tmp/wheels');
    // The package from the signed feed is installed, trusted through the given key only.
    const check = await dockerCli([
      'run', '--rm', '--network', 'none', '--entrypoint', 'sh', image.veos, '-c',
      `dpkg-query -W -f '\${Status} \${Version}\\n' ${feed.packageName}; cat /usr/share/${feed.packageName}/FROM-THE-TEST-FEED; cat /etc/apt/sources.list.d/microsoft-dotnet.list; ls /etc/apt/trusted.gpg.d/ /etc/apt/trusted.gpg 2>&1; head -c 1 /usr/share/keyrings/ctun-dotnet.gpg | od -An -tx1`,
    ]);
    expect(check.stdout).toContain('install ok installed 6.0.0-1');
    expect(check.stdout).toContain(feed.fingerprint);
    expect(check.stdout).toContain(`deb [signed-by=/usr/share/keyrings/ctun-dotnet.gpg] http://${gateway}/dotnet bookworm main`);
    expect(check.stdout).not.toMatch(/trusted=yes/);
    expect(check.stdout).toMatch(/cannot access '\/etc\/apt\/trusted\.gpg'/); // no global trust added
    expect(check.stdout).toMatch(/^ 98$/m); // a binary (dearmored) keyring: old-format public-key packet
    const pip = await dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', '/opt/supervisor/bin/pip', image.veos, 'list', '--format=freeze']);
    expect(pip.stdout).toMatch(/^supervisor==4\.2\./m);
    expect(pip.stdout).toMatch(/^supervisor-console==0\.5\./m);
    expect(pip.stdout).toMatch(/^supervisord-dependent-startup==1\.4\./m);
    expect(pip.stdout).toMatch(/^toposort==/m);

    // It runs, in the closed network, against the license stand-in.
    const lic = await runOnNetwork(['--entrypoint', 'python3', image.veos, '-u', `${SIMULATOR_INSTALL_DIR}/bin/license_standin.py`]);
    await waitForLog(lic, LICENSE_READY_PATTERN, 'the license stand-in ready line');
    const sim = await runOnNetwork(['-e', `DS_CMU_SERVER=${await ipOn(lic)}`, image.veos]);
    const logs = await waitForLog(sim, SIMULATOR_READY_PATTERN, 'the simulator ready line');
    expect(logs).toContain('license ok');
  });

  it('the image with the tunnel builds offline (flag form, binary key, --wheels) and both run', async () => {
    const r = await timed('build veos-ctun image', () =>
      ctunBuild([
        'veos', '--offline', 'acceptDspaceEula', metadata.images.veosCtun, tarball, '--installCtun', 'yes',
        '--dockerRepository', registry.address, '--archiveServer', `http://${gateway}/debian`, '--securityServer', `http://${gateway}/debian-security`,
        '--dotnetServer', `http://${gateway}/dotnet`, '--dotnetKey', feed.binaryKey, '--dotnetPackages', feed.packageName, '--wheels', wheelsDir,
        '--distro', 'debian', '--buildNetwork', NETWORK, '--tagPrefix', PREFIX, '--progress', 'plain',
      ]),
    );
    expect(r.exitCode, tail(r.all)).toBe(0);
    const v = await dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', 'ctun', image.veosCtun, '--version']);
    expect(v.stdout.trim()).toBe(metadata.ctunVersion);
    const d = await dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', 'dpkg-query', image.veosCtun, '-W', feed.packageName]);
    expect(d.stdout).toContain(`${feed.packageName}\t6.0.0-1`);
    const lic = await runOnNetwork(['--entrypoint', 'python3', image.veos, '-u', `${SIMULATOR_INSTALL_DIR}/bin/license_standin.py`]);
    await waitForLog(lic, LICENSE_READY_PATTERN, 'the license stand-in ready line');
    const sim = await runOnNetwork(['--cap-add', 'NET_ADMIN', '--device', '/dev/net/tun', '-e', 'CTUN_START=yes', '-e', `DS_CMU_SERVER=${await ipOn(lic)}`, image.veosCtun]);
    await waitForLog(sim, SIMULATOR_READY_PATTERN, 'the simulator ready line');
    await waitForLog(sim, /server-listening .*port=1723/, 'the tunnel server listening');
  });

  it('a build step that reaches beyond the given sources fails: the network is closed', async () => {
    // The same mirror, served by a container on Docker's default bridge: outside the
    // closed network. The preflight, asked from the host, gets its answer; the build
    // steps on the closed network cannot reach it, and the build fails. (--no-cache:
    // the step must really run.)
    const outside = await dockerCli([
      'run', '-d', ...TEST_LABELS, '-v', `${mirrorDir}:/srv:ro`, '--entrypoint', 'python3', image.veos, '-m', 'http.server', '8080', '--directory', '/srv',
    ]);
    expect(outside.exitCode, outside.all).toBe(0);
    const ip = (await docker.findContainer(outside.stdout.trim()))!.networks['bridge']!;
    await waitHttp(`http://${ip}:8080/debian/dists/bookworm/InRelease`, 'the mirror outside the closed network');
    const r = await timed('leak attempt', () =>
      ctunBuild([
        'ctun', 'acceptDspaceEula', '--dockerRepository', registry.address,
        '--ubuntuArchiveServer', `http://${ip}:8080/debian`, '--ubuntuSecurityServer', `http://${ip}:8080/debian-security`,
        '--distro', 'debian', '--buildNetwork', NETWORK, '--tagPrefix', `${PREFIX}-leak`, '--no-cache', '--progress', 'plain',
      ]),
    );
    expect(r.exitCode, tail(r.all)).toBe(7);
    expect(r.stderr).toMatch(/ctun-build: error: build of ctun-it-offline-leak\/dspace\/ctun\/local-server:23\.1\.0 failed at step \d+\/\d+ `RUN apt-get update/);
    expect(r.stderr).toContain(`Could not connect to ${ip}:8080`);
    expect(r.stderr).toContain('E: Unable to locate package iproute2');
  });

  it('a bundle of the images and the tarball loads on a daemon without them; a damaged one is refused', async () => {
    const images = [image.localServer, image.separateServer, image.localClient, image.separateClient, image.veos, image.veosCtun];
    const bundle = join(work, 'site', `ctun-${metadata.ctunVersion}.bundle.tar`);
    const b = await timed('bundle', () => ctunBuild(['bundle', '--out', bundle, ...images.flatMap((i) => ['--image', i]), '--file', tarball]));
    expect(b.exitCode, tail(b.all)).toBe(0);
    expect(b.stdout).toMatch(/^[0-9a-f]{64} {2}\d+ {2}images\.tar$/m);
    expect(b.stdout).toMatch(new RegExp(`^[0-9a-f]{64}  \\d+  files/dspace-veos-2023a\\.tar\\.gz$`, 'm'));
    const ids = Object.fromEntries(await Promise.all(images.map(async (i) => [i, (await docker.inspectImage(i))!.id] as const)));

    // The air-gapped daemon: none of the images there.
    await removeTestContainers();
    for (const i of images) expect((await dockerCli(['rmi', i])).exitCode).toBe(0);

    // One flipped byte in the middle: refused as a whole, nothing loaded.
    const damaged = join(work, 'damaged.bundle.tar');
    const bytes = await readFile(bundle);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0x01;
    await writeFile(damaged, bytes);
    const bad = await ctunBuild(['load', damaged, '--filesOut', join(work, 'unpacked-bad')]);
    expect(bad.exitCode).toBe(7);
    expect(bad.stderr).toMatch(/ctun-build: error: the bundle .*damaged\.bundle\.tar is damaged: images\.tar has sha256 [0-9a-f]{16}…, the manifest says [0-9a-f]{16}…/);
    expect(bad.stderr).toContain('hint: copy it again');
    for (const i of images) expect(await docker.imageExists(i)).toBe(false);

    const good = await timed('load', () => ctunBuild(['load', bundle, '--filesOut', join(work, 'unpacked')]));
    expect(good.exitCode, tail(good.all)).toBe(0);
    for (const i of images) {
      expect(good.stdout).toContain(`loaded ${i} ${ids[i]}`);
      expect((await docker.inspectImage(i))?.id).toBe(ids[i]);
    }
    expect(await sha256File(join(work, 'unpacked', 'dspace-veos-2023a.tar.gz'))).toBe(await sha256File(tarball));
    const v = await dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', 'ctun', image.separateServer, '--version']);
    expect(v.stdout.trim()).toBe(metadata.ctunVersion);
  });
});

if (!daemon) it.skip('offline builds: no Docker daemon reachable (start dockerd)', () => {});
else if (tools.length) it.skip(`offline builds: missing host tools ${tools.join(', ')} (apt-get install docker-registry gnupg dpkg-dev apt-utils)`, () => {});
