/**
 * The seed manual's command lines typed as they are (§2.2.2, §2.3), through the real
 * CLIs: exit codes and what a user reads. `--print-plan` stops before Docker, so these
 * need no daemon; the files live in a temp CTun folder with ./veos/ as §1.2 has it.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildStandinTarball } from '../simulator/index.js';
import { SEED_WHEEL_FILES } from '../image/testing.js';

// Each test starts the real CLIs (tsx compiling them first): seconds each on a loaded
// 2-core machine, more than the unit project's 10 s default.
vi.setConfig({ testTimeout: 60_000 });

const ROOT = resolve(import.meta.dirname, '..', '..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const cli = (name: string, args: string[], cwd: string) =>
  execa(TSX, [join(ROOT, 'tools/cli', `${name}.ts`), ...args], { cwd, reject: false, env: { NO_COLOR: '1' }, timeout: 60_000 });
const WHEELS = SEED_WHEEL_FILES;
const KEY = (await readFile(join(ROOT, 'tools/image/keys.test.ts'), 'utf8')).match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/)![0];

let ctunDir: string;
beforeAll(async () => {
  ctunDir = await mkdtemp(join(tmpdir(), 'ctun-seed-cli-'));
  // §1.2: the supplementary files in <CTUN_INSTALL_DIR>/veos/; §2.2.2: `cp dspace-veos-2023a.tar.gz ./veos/`.
  await mkdir(join(ctunDir, 'veos'));
  await buildStandinTarball({ outDir: join(ctunDir, 'veos') });
  await writeFile(join(ctunDir, 'veos', 'microsoft.asc'), KEY);
  for (const w of WHEELS) await writeFile(join(ctunDir, 'veos', w), '');
});
afterAll(async () => {
  await rm(ctunDir, { recursive: true, force: true });
});

describe('ctun-build veos, §2.2.2 as typed from the CTun folder', () => {
  it('online: the tarball named without ./veos/ is taken from there, and stderr says so', async () => {
    const r = await cli('ctun-build', ['veos', 'online', 'acceptDspaceEula', 'dspace/veos/simulator:23.1', 'dspace-veos-2023a.tar.gz', '--print-plan'], ctunDir);
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { tarball: { path: string } };
    expect(plan.tarball.path).toBe(join(ctunDir, 'veos', 'dspace-veos-2023a.tar.gz'));
    expect(r.stderr).toMatch(/input-from-veos-folder input="the simulator tarball" given=dspace-veos-2023a\.tar\.gz taken=\.\/veos\/dspace-veos-2023a\.tar\.gz/);
  });

  it('offline: servers as IPs, microsoft.asc and the wheels from ./veos/, the .NET server as an IP', async () => {
    const r = await cli(
      'ctun-build',
      ['veos', 'offline', '--dockerRepository', '127.0.0.1:5000', 'acceptDspaceEula', 'dspace/veos/simulator:23.1', 'dspace-veos-2023a.tar.gz', '10.0.0.5', '10.0.0.6', '10.0.0.9', 'microsoft.asc', '--dotnetPackages', 'dotnet-runtime-6.0', '--print-plan'],
      ctunDir,
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { mode: string; dotnet: { server: string; key: string }; python: { source: string; dir: string }; apt: { rewrite: boolean } };
    expect(plan).toMatchObject({
      mode: 'offline',
      apt: { rewrite: true },
      dotnet: { server: 'http://10.0.0.9/ubuntu/22.04/prod', key: join(ctunDir, 'veos', 'microsoft.asc') },
      python: { source: 'wheels', dir: join(ctunDir, 'veos') },
    });
    expect(r.stderr).toContain('taken=./veos/microsoft.asc');
  });
});

describe('refusals at the command line', () => {
  it('`ctun-build veos --offline` alone answers with the offline form (exit 1)', async () => {
    const r = await cli('ctun-build', ['veos', '--offline'], ctunDir);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('ctun-build: error: veos offline needs the EULA literal, the image name and the tarball, and the sources to install from');
    expect(r.stderr).toContain('ctun-build: hint: ctun-build veos offline acceptDspaceEula IMAGE TARBALL ARCHIVE SECURITY DOTNET_SERVER KEY_FILE');
  });

  it('--offline (flag form) without its sources refuses before anything is built (exit 1)', async () => {
    const r = await cli('ctun-build', ['veos', '--offline', 'acceptDspaceEula', 'x:1', 'dspace-veos-2023a.tar.gz', '--print-plan'], ctunDir);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('ctun-build: error: an offline build needs every source it installs from, and lacks the apt archive server');
  });

  it('several bad inputs are listed in one run (exit 1)', async () => {
    const bad = join(ctunDir, 'bad');
    await mkdir(join(bad, 'veos'), { recursive: true });
    await writeFile(join(bad, 'veos', 'dspace-veos-2023a.tar.gz'), 'junk');
    for (const w of WHEELS.slice(1)) await writeFile(join(bad, 'veos', w), '');
    const r = await cli('ctun-build', ['veos', 'offline', 'acceptDspaceEula', 'x:1', 'dspace-veos-2023a.tar.gz', '10.0.0.5', '10.0.0.5', '10.0.0.9', 'microsoft.asc', '--print-plan'], bad);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^ctun-build: error: 3 problems with the build inputs, nothing was built:$/m);
    expect(r.stderr).toMatch(/^ {2}1\. \[TARBALL_INVALID\]/m);
    expect(r.stderr).toMatch(/^ {2}2\. \[WHEELS_MISSING\] .*lacks wheels for: setuptools$/m);
    expect(r.stderr).toMatch(/^ {2}3\. \[DOTNET_KEY_MISSING\]/m);
  });
});

describe('ctun-run readiness options', () => {
  it('--readyPort/--readyLog reach the plan; udp is refused with what to do instead (exit 1)', async () => {
    const ok = await cli('ctun-run', ['separate', 'any/sim:1', '22350@lic', '--readyPort', 'tcp:8080', '--readyLog', 'simulation started', '--print-plan'], ctunDir);
    expect(ok.exitCode, ok.stderr).toBe(0);
    const plan = JSON.parse(ok.stdout) as { containers: Array<{ role: string; ready: unknown[] }> };
    expect(plan.containers.find((c) => c.role === 'veos')!.ready).toEqual([
      { kind: 'port', what: 'the simulator', protocol: 'tcp', port: 8080, target: { container: 'dspace-veos', network: 'dspace-ctun' }, probe: { from: 'container', container: 'dspace-ctun-server' } },
      { kind: 'log', what: 'the simulator', pattern: 'simulation started' },
    ]);
    const udp = await cli('ctun-run', ['veos', 'any/sim:1', '22350@lic', '--readyPort', 'udp:5555', '--print-plan'], ctunDir);
    expect(udp.exitCode).toBe(1);
    expect(udp.stderr).toContain('ctun-run: error: --readyPort udp:5555: a UDP port cannot be probed');
    expect(udp.stderr).toContain('ctun-run: hint: probe a TCP port the simulator opens with --readyPort tcp:N, or wait for a line of its log with --readyLog REGEX');
  });
});
