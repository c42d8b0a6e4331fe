import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createMemoryDocker } from '../docker/index.js';
import { createMemoryLogger } from '../common/index.js';
import { preflight } from './execute.js';
import { projectPaths } from './paths.js';
import { SEED_WHEEL_FILES, STANDIN_TARBALL } from './testing.js';
import { planCtun, planVeos } from './plan.js';
import { checkSources, httpProber, registryProbe, sourceProbes, type Prober } from './sources.js';

const paths = projectPaths();
const tarball = STANDIN_TARBALL;
const WHEELS = SEED_WHEEL_FILES;

/** A prober answering from a table; everything else is refused. */
function table(answers: Record<string, number>): Prober & { asked: Array<[string, string | undefined]> } {
  const asked: Array<[string, string | undefined]> = [];
  const p = (async (url: string, connectTo: string | undefined) => {
    asked.push([url, connectTo]);
    const s = answers[url];
    return s === undefined ? { error: 'ECONNREFUSED connect' } : { status: s };
  }) as Prober & { asked: typeof asked };
  p.asked = asked;
  return p;
}

describe('source preflight', () => {
  it('asks each apt mirror for its suite and the .NET feed for its Release, in the form the user gave', () => {
    const plan = planVeos(
      {
        eula: 'acceptDspaceEula',
        mode: 'offline',
        image: 'x:1',
        tarball,
        installCtun: false,
        baseImage: 'debian:12',
        archiveServer: '10.0.0.5',
        securityServer: 'http://sec.example/debian-security/',
        dotnetServer: 'http://10.0.0.9:8080/dotnet',
        dotnetKey: '/k.asc',
        dotnetPackages: ['p'],
        wheels: { dir: '/w', files: WHEELS },
      },
      paths,
    );
    expect(sourceProbes(plan).map((p) => [p.role, p.urls[0]])).toEqual([
      ['apt archive', 'http://10.0.0.5/debian/dists/bookworm/InRelease'],
      ['apt security', 'http://sec.example/debian-security/dists/bookworm-security/InRelease'],
      ['.NET feed', 'http://10.0.0.9:8080/dotnet/dists/bookworm/InRelease'],
    ]);
    // without mirrors and without .NET there is nothing to ask
    expect(sourceProbes(planCtun({ eula: 'acceptDspaceEula' }, paths))).toEqual([]);
  });

  it("Ubuntu's IP form asks the IP under the canonical name, as the build's /etc/hosts maps it", async () => {
    const plan = planCtun({ eula: 'acceptDspaceEula', archiveServer: '10.1.2.3', securityServer: '10.1.2.4' }, paths);
    const p = table({ 'http://archive.ubuntu.com/ubuntu/dists/jammy/InRelease': 200, 'http://security.ubuntu.com/ubuntu/dists/jammy-security/InRelease': 200 });
    await checkSources(sourceProbes(plan), p);
    expect(p.asked).toEqual([
      ['http://archive.ubuntu.com/ubuntu/dists/jammy/InRelease', '10.1.2.3'],
      ['http://security.ubuntu.com/ubuntu/dists/jammy-security/InRelease', '10.1.2.4'],
    ]);
  });

  it('names the source that does not answer, every address tried and what came back', async () => {
    const plan = planCtun({ eula: 'acceptDspaceEula', baseImage: 'debian:12', archiveServer: 'http://m/debian', securityServer: 'http://m/debian-security' }, paths);
    const p = table({ 'http://m/debian/dists/bookworm/InRelease': 200, 'http://m/debian-security/dists/bookworm-security/Release': 404 });
    const err = await checkSources(sourceProbes(plan), p).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'APT_SECURITY_UNREACHABLE',
      message:
        'the apt security source "http://m/debian-security" does not answer: http://m/debian-security/dists/bookworm-security/InRelease: ECONNREFUSED connect; http://m/debian-security/dists/bookworm-security/Release: HTTP 404',
      hint: expect.stringContaining('--ubuntuSecurityServer'),
    });
  });

  it('a registry counts as reachable on any HTTP answer (401 without credentials), https first', async () => {
    const probe = registryProbe('127.0.0.1:5000/');
    expect(probe.urls).toEqual(['https://127.0.0.1:5000/v2/', 'http://127.0.0.1:5000/v2/']);
    await checkSources([probe], table({ 'http://127.0.0.1:5000/v2/': 401 }));
    await expect(checkSources([probe], table({}))).rejects.toMatchObject({ code: 'REGISTRY_UNREACHABLE' });
  });

  it('the HTTP prober reads a status from a real server, and a refused port as an error', async () => {
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/debian/dists/bookworm/InRelease' && req.headers.host === 'mirror.invalid' ? 200 : 404;
      res.end('x');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const probe = httpProber(2000);
      expect(await probe(`http://127.0.0.1:${port}/nothing`, undefined)).toEqual({ status: 404 });
      expect(await probe(`http://mirror.invalid/debian/dists/bookworm/InRelease`, '127.0.0.1').then((r) => r)).toEqual({ error: expect.stringContaining('ECONNREFUSED') });
      expect(await probe(`http://mirror.invalid:${port}/debian/dists/bookworm/InRelease`, '127.0.0.1')).toEqual({ status: 404 }); // host header carries the port
    } finally {
      server.close();
    }
  });

  it('the executor preflight stops on a missing build network and an unreachable mirror, before any build', async () => {
    const plan = planCtun({ eula: 'acceptDspaceEula', baseImage: 'debian:12', archiveServer: 'http://m/debian', network: 'ctun-closed' }, paths);
    const logger = createMemoryLogger();
    const noNetwork = createMemoryDocker({ images: ['debian:12'] });
    await expect(preflight(plan, { docker: noNetwork, logger, prober: table({}) })).rejects.toMatchObject({ code: 'BUILD_NETWORK_MISSING' });
    const docker = createMemoryDocker({ images: ['debian:12'], existingNetworks: [{ name: 'ctun-closed', internal: true }] });
    await expect(preflight(plan, { docker, logger, prober: table({}) })).rejects.toMatchObject({
      code: 'APT_ARCHIVE_UNREACHABLE',
    });
    expect(docker.builds).toHaveLength(0);
  });

  it('the executor preflight refuses a key file that is not a key before asking any server', async () => {
    const docker = createMemoryDocker({ images: ['debian:12'] });
    const plan = planVeos(
      { eula: 'acceptDspaceEula', mode: 'offline', archiveServer: '10.0.0.5', image: 'x:1', tarball, installCtun: false, baseImage: 'debian:12', dotnetServer: 'http://d', dotnetKey: import.meta.filename, dotnetPackages: ['p'], wheels: { dir: '/w', files: WHEELS } },
      paths,
    );
    const p = table({});
    await expect(preflight(plan, { docker, logger: createMemoryLogger(), prober: p })).rejects.toMatchObject({ code: 'DOTNET_KEY_INVALID' });
    expect(p.asked).toEqual([]);
    // also when the tarball needs no .NET: a key file given is a key file checked
    const noDotnet = planVeos(
      { eula: 'acceptDspaceEula', mode: 'offline', archiveServer: '10.0.0.5', image: 'x:1', tarball, installCtun: false, baseImage: 'debian:12', dotnetServer: 'http://d', dotnetKey: import.meta.filename, wheels: { dir: '/w', files: WHEELS } },
      paths,
    );
    expect(noDotnet.dotnet?.needed).toBe(false);
    await expect(preflight(noDotnet, { docker, logger: createMemoryLogger(), prober: p })).rejects.toMatchObject({ code: 'DOTNET_KEY_INVALID' });
  });
});
