/**
 * Build inputs against injection, through the real ctun-build CLI: every hostile value
 * (a `$(…)` base image or pip index, a newline in a mirror, a `;` in the .NET feed,
 * backquotes in a tag prefix ...) is refused with one line naming it and what is
 * allowed, and nothing reaches a Docker daemon, so no build container can run it: the
 * refused runs talk to a recording stand-in socket, which must see no request (a valid
 * run, as control, is seen). And against the real daemon: the simulator image built
 * from a tarball and wheels holds neither in any layer (multi-stage build), proven on
 * `docker save` output, byte for byte.
 */
import { createServer, type Server } from 'node:http';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadata, silentLogger } from '../../tools/common/index.js';
import { makeSeedWheels } from '../../tools/image/index.js';
import { ensureBaseImage } from '../fixtures/build/base.js';
import { connectDocker } from '../../tools/docker/index.js';
import { buildStandinTarball } from '../../tools/simulator/index.js';
import { dockerCli } from '../fixtures/build/images.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BASE = 'debian:12';
const PREFIX = 'ctun-it-harden';
const daemon = await connectDocker().ping().then(
  () => true,
  () => false,
);

let work = '';
let tarball = '';
let wheelsDir = '';
/** A stand-in Docker socket that records every request it gets. */
let recorder: { server: Server; socket: string; requests: string[] } | undefined;

/** ctun-build as a user runs it; `dockerHost` points it at another daemon socket. */
function ctunBuild(args: string[], dockerHost?: string) {
  return execa(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'tools/cli/ctun-build.ts'), ...args], {
    cwd: ROOT,
    reject: false,
    all: true,
    timeout: 120_000,
    env: { NO_COLOR: '1', ...(dockerHost ? { DOCKER_HOST: dockerHost } : {}) },
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ctun-inputs-it-'));
  tarball = (await buildStandinTarball({ outDir: join(work, 'in') })).path;
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** `ctun-build veos online …` of the stand-in tarball on Debian 12, plus `extra`. */
const veos = (extra: string[]) => ['veos', 'online', 'acceptDspaceEula', metadata.images.veos, tarball, '--distro', 'debian', '--progress', 'plain', ...extra];

describe('hostile build inputs never reach a daemon', () => {
  beforeAll(async () => {
    const socket = join(work, 'docker.sock');
    const requests: string[] = [];
    const server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"message":"recording stand-in: no daemon here"}');
    });
    await new Promise<void>((r) => server.listen(socket, r));
    recorder = { server, socket, requests };
  });
  afterAll(async () => {
    await new Promise((r) => recorder?.server.close(r));
  });

  const marker = () => join(work, 'pwned');
  const cases = (m: string): Array<{ what: string; args: string[]; error: RegExp }> => [
    { what: 'base image with $(…)', args: ['ctun', 'acceptDspaceEula', '--baseImage', `$(touch ${m})`], error: /^ctun-build: error: --baseImage "\$\(touch .*pwned\)" contains `\$`, which no image name may hold$/m },
    { what: 'pip index with $(…)', args: veos(['--pipIndexUrl', `https://pypi.lab/simple/$(touch ${m})`]), error: /^ctun-build: error: --pipIndexUrl "https:\/\/pypi\.lab\/simple\/\$\(touch .*\)" contains `\$`, which no server URL may hold$/m },
    { what: 'archive mirror with a newline', args: ['ctun', 'acceptDspaceEula', '--distro', 'debian', '--ubuntuArchiveServer', 'http://mirror.lab/debian\ndeb http://evil.lab/debian bookworm main'], error: /^ctun-build: error: --ubuntuArchiveServer "http:\/\/mirror\.lab\/debian\\ndeb .*" contains a newline, which no server URL may hold$/m },
    { what: 'security mirror host with a space', args: ['ctun', 'acceptDspaceEula', '--distro', 'debian', '--ubuntuSecurityServer', `mirror.lab touch ${m}`], error: /^ctun-build: error: --ubuntuSecurityServer .* contains a space, which no host name or address may hold$/m },
    { what: '.NET feed with ;', args: veos(['--dotnetServer', `https://dotnet.lab/prod;touch ${m}`, '--dotnetPackages', 'dotnet-runtime-6.0']), error: /^ctun-build: error: --dotnetServer ".*" contains `;`, which no server URL may hold$/m },
    { what: '.NET key URL with $(…)', args: veos(['--dotnetServer', 'https://dotnet.lab/prod', '--dotnetKey', `https://dotnet.lab/key.asc$(touch ${m})`, '--dotnetPackages', 'dotnet-runtime-6.0']), error: /^ctun-build: error: --dotnetKey ".*" contains `\$`/m },
    { what: '.NET package with a space', args: veos(['--dotnetServer', 'https://dotnet.lab/prod', '--dotnetPackages', `x,rm -rf ${m}`]), error: /^ctun-build: error: --dotnetPackages "rm -rf .*" is not a Debian package name$/m },
    { what: 'tag prefix with backquotes', args: ['ctun', 'acceptDspaceEula', '--distro', 'debian', '--tagPrefix', `\`touch ${m}\``], error: /^ctun-build: error: --tagPrefix "`touch .*`" contains `\``/m },
    { what: 'image name with $(…)', args: ['veos', 'online', 'acceptDspaceEula', `dspace/veos:23.1$(touch ${m})`, tarball, '--distro', 'debian'], error: /^ctun-build: error: IMAGE "dspace\/veos:23\.1\$\(touch .*\)" contains `\$`/m },
    { what: 'http pip index without --pipTrustedHost', args: veos(['--pipIndexUrl', 'http://10.0.0.5:8080/simple']), error: /^ctun-build: error: --pipIndexUrl "http:\/\/10\.0\.0\.5:8080\/simple" is plain http: .*\nctun-build: hint: .*--pipTrustedHost/m },
    { what: 'base mirror with a newline', args: ['base', '--mirror', 'http://mirror.lab/debian\nx'], error: /^ctun-build: error: --mirror ".*\\nx" contains a newline/m },
  ];

  it('each is refused in one line naming the option, the value and what is allowed (exit 1); no request reaches the daemon socket', async () => {
    for (const c of cases(marker())) {
      const before = recorder!.requests.length;
      const r = await ctunBuild(c.args, `unix://${recorder!.socket}`);
      expect({ what: c.what, exit: r.exitCode }, r.all).toEqual({ what: c.what, exit: 1 });
      expect(r.stderr, c.what).toMatch(c.error);
      expect(r.stderr, c.what).toMatch(/^ctun-build: hint: \S.*$/m);
      expect(r.stdout, c.what).not.toMatch(/Step \d|check .* the daemon/);
      expect(recorder!.requests.slice(before), c.what).toEqual([]);
    }
    expect(existsSync(marker())).toBe(false);
  }, 300_000);

  it('several bad values in one run are all reported at once', async () => {
    const r = await ctunBuild(veos(['--baseImage', 'Debian 12', '--tagPrefix', '$(id)', '--pipIndexUrl', 'http://x.lab/simple']), `unix://${recorder!.socket}`);
    expect(r.exitCode).toBe(1);
    // One report with every problem, each with its code and what to do (tools/image/commands.ts inputProblems).
    expect(r.stderr).toMatch(
      /^ctun-build: error: 3 problems with the build inputs, nothing was built:\n {2}1\. \[BAD_BASE_IMAGE\] --baseImage "Debian 12" contains a space.*\n.*→.*\n {2}2\. \[BAD_TAG_PREFIX\] --tagPrefix "\$\(id\)" contains `\$`.*\n.*→.*\n {2}3\. \[PIP_INDEX_INSECURE\] --pipIndexUrl "http:\/\/x\.lab\/simple" is plain http/m,
    );
  });

  it('control: a valid run does reach the socket (so the empty record above means something)', async () => {
    const before = recorder!.requests.length;
    const r = await ctunBuild(['ctun', 'acceptDspaceEula', '--distro', 'debian', '--tagPrefix', PREFIX, '--progress', 'plain'], `unix://${recorder!.socket}`);
    expect(r.exitCode).not.toBe(0);
    expect(recorder!.requests.length).toBeGreaterThan(before);
  });
});

/** Every file path of every layer of an image, and the raw layer archives, from `docker save`. */
async function imageLayers(image: string, dir: string): Promise<{ paths: string[]; layers: Buffer[] }> {
  const archive = join(dir, 'image.tar');
  const saved = await dockerCli(['save', '-o', archive, image], 180_000);
  expect(saved.exitCode, saved.all).toBe(0);
  const out = join(dir, 'image');
  await execa('mkdir', ['-p', out]);
  await execa('tar', ['-xf', archive, '-C', out]);
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const paths: string[] = [];
  const layers: Buffer[] = [];
  for (const l of manifest[0]!.Layers) {
    layers.push(await readFile(join(out, l)));
    paths.push(...(await execa('tar', ['-tf', join(out, l)])).stdout.split('\n').filter(Boolean));
  }
  return { paths, layers };
}

describe.skipIf(!daemon)('the simulator image keeps no tarball or wheel (real daemon)', () => {
  const image = `${PREFIX}/${metadata.images.veos}`;
  beforeAll(async () => {
    // Made once per run, by the first file that needs it (with `ctun-build base`).
    await ensureBaseImage();
    wheelsDir = join(work, 'wheels');
    await makeSeedWheels({ outDir: wheelsDir, logger: silentLogger });
  }, 600_000);
  afterAll(async () => {
    await dockerCli(['rmi', image]);
  });

  it('built from the tarball and wheels, the final image has the installed simulator and supervisord, and neither the tarball bytes nor a wheel in any layer', async () => {
    const r = await ctunBuild(veos(['--wheels', wheelsDir, '--tagPrefix', PREFIX]));
    expect(r.exitCode, r.all.split('\n').slice(-30).join('\n')).toBe(0);

    // The history names no layer that copied them in.
    const history = (await dockerCli(['history', '--no-trunc', '--format', '{{.CreatedBy}}', image])).stdout;
    expect(history).not.toMatch(/\/tmp\/veos|\/tmp\/wheels/);

    const { paths, layers } = await imageLayers(image, work);
    expect(paths).toContain('opt/dspace/veos2023a/bin/veos_standin.py');
    expect(paths).toContain('opt/supervisor/bin/supervisord');
    // Debian's python3-venv brings its own pip and setuptools wheels: those are the
    // distribution's files, not ours (our setuptools wheel is a copy of Debian's).
    const debianWheels = paths.filter((p) => p.startsWith('usr/share/python-wheels/')).map((p) => p.slice('usr/share/python-wheels/'.length));
    expect(paths.filter((p) => !p.startsWith('usr/share/python-wheels/') && /(^|\/)tmp\/(veos|wheels)\b|\.whl$|\.tar\.gz$/.test(p))).toEqual([]);
    // Byte for byte: no layer holds a 4 KiB piece of the tarball or of any wheel of ours.
    const ours = (await readdir(wheelsDir)).filter((w) => !debianWheels.includes(w));
    expect(ours.length).toBeGreaterThanOrEqual(4);
    const pieces = [await readFile(tarball), ...(await Promise.all(ours.map((w) => readFile(join(wheelsDir, w)))))].map((b) => b.subarray(0, Math.min(4096, b.length)));
    for (const layer of layers) for (const piece of pieces) expect(layer.indexOf(piece)).toBe(-1);

    // And it runs: supervisord from the copied virtual environment.
    const v = await dockerCli(['run', '--rm', '--entrypoint', '/opt/supervisor/bin/supervisord', image, '--version']);
    expect(v.exitCode, v.all).toBe(0);
    expect(v.stdout).toMatch(/^4\.2\./);
  }, 900_000);
});
