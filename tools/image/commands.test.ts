/**
 * The seed manual's command lines as typed (§1.2, §2.2): inputs found in ./veos/, the
 * offline form's refusals, every input problem in one run, tarballs of another layout.
 * Real files in a temp folder; no daemon.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, metadata } from '../common/index.js';
import { buildStandinTarball } from '../simulator/index.js';
import { findSeedInput, parseVeosArgs, resolveVeosOptions } from './commands.js';
import { SEED_WHEEL_FILES } from './testing.js';

const WHEELS = SEED_WHEEL_FILES;
const KEY = (await readFile(join(import.meta.dirname, 'keys.test.ts'), 'utf8')).match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/)![0];

let root: string;
let standin: Buffer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ctun-seedlines-'));
  standin = await readFile((await buildStandinTarball({ outDir: join(root, 'made') })).path);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A CTun folder as §1.2 leaves it: ./veos/ with the tarball, microsoft.asc and the wheels. */
async function ctunFolder(name: string, o: { wheels?: string[]; key?: string | false; tarball?: Buffer | false } = {}): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'veos'), { recursive: true });
  if (o.tarball !== false) await writeFile(join(dir, 'veos', 'dspace-veos-2023a.tar.gz'), o.tarball ?? standin);
  if (o.key !== false) await writeFile(join(dir, 'veos', 'microsoft.asc'), o.key ?? KEY);
  for (const w of o.wheels ?? WHEELS) await writeFile(join(dir, 'veos', w), '');
  return dir;
}

const problem = async (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as { code: string; message: string; hint: string; exitCode: number });

describe('the manual\'s lines as typed (§2.2.2)', () => {
  it('the tarball, microsoft.asc and the wheels are found in ./veos/, and the log says which came from there', async () => {
    const cwd = await ctunFolder('found');
    const logger = createMemoryLogger();
    const args = parseVeosArgs(['offline', 'acceptDspaceEula', metadata.images.veos, 'dspace-veos-2023a.tar.gz', '10.0.0.5', '10.0.0.5', '10.0.0.9', 'microsoft.asc']);
    const o = await resolveVeosOptions(args, { cwd, logger });
    expect(o.tarball.path).toBe(join(cwd, 'veos', 'dspace-veos-2023a.tar.gz'));
    expect(o.dotnetKey).toBe(join(cwd, 'veos', 'microsoft.asc'));
    expect(o.wheels).toEqual({ dir: join(cwd, 'veos'), files: WHEELS });
    expect(logger.lines.filter((l) => l.event === 'input-from-veos-folder').map((l) => [l.fields.input, l.fields.taken])).toEqual([
      ['the simulator tarball', './veos/dspace-veos-2023a.tar.gz'],
      ['the .NET key file', './veos/microsoft.asc'],
    ]);
  });

  it('a file in the current folder wins over ./veos/, silently', async () => {
    const cwd = await ctunFolder('here');
    await writeFile(join(cwd, 'dspace-veos-2023a.tar.gz'), standin);
    const logger = createMemoryLogger();
    expect((await findSeedInput('dspace-veos-2023a.tar.gz', 'the simulator tarball', { cwd, logger })).path).toBe(join(cwd, 'dspace-veos-2023a.tar.gz'));
    expect(logger.lines).toEqual([]);
  });

  it('a tarball in neither place says where it looked', async () => {
    const cwd = await ctunFolder('none', { tarball: false });
    const e = await problem(resolveVeosOptions(parseVeosArgs(['online', 'acceptDspaceEula', 'x:1', 'dspace-veos-2023a.tar.gz']), { cwd }));
    expect(e).toMatchObject({ code: 'TARBALL_MISSING', exitCode: 1 });
    expect(e!.message).toBe(
      `simulator tarball dspace-veos-2023a.tar.gz is neither in the current folder nor in ./veos/ (looked at ${join(cwd, 'dspace-veos-2023a.tar.gz')} and ${join(cwd, 'veos', 'dspace-veos-2023a.tar.gz')})`,
    );
  });
});

describe('refusals', () => {
  it('every input problem is listed in one run: junk tarball, missing key file, missing wheel', async () => {
    const cwd = await ctunFolder('bad', { tarball: Buffer.from('this is not a tarball'), key: false, wheels: WHEELS.filter((w) => !w.startsWith('toposort')) });
    const args = parseVeosArgs(['offline', 'acceptDspaceEula', 'x:1', 'dspace-veos-2023a.tar.gz', '10.0.0.5', '10.0.0.5', '10.0.0.9', 'microsoft.asc']);
    const e = await problem(resolveVeosOptions(args, { cwd }));
    expect(e).toMatchObject({ code: 'BUILD_INPUTS_INVALID', exitCode: 1, hint: 'fix them all, then run the same command again' });
    expect(e!.message).toMatch(/^3 problems with the build inputs, nothing was built:\n {2}1\. \[TARBALL_INVALID\] .*not gzip-compressed/);
    expect(e!.message).toMatch(/\n {2}2\. \[WHEELS_MISSING\] .*lacks wheels for: toposort\n {5}→ on a machine with Internet access: pip download/);
    expect(e!.message).toMatch(/\n {2}3\. \[DOTNET_KEY_MISSING\] .*microsoft\.asc/);
  });

  it('offline (flag form) without archive/security servers refuses before building, naming what is missing', async () => {
    const cwd = await ctunFolder('flags');
    const args = parseVeosArgs(['acceptDspaceEula', 'x:1', 'dspace-veos-2023a.tar.gz'], { offline: true });
    const e = await problem(resolveVeosOptions(args, { cwd }));
    expect(e).toMatchObject({ code: 'OFFLINE_SOURCES_MISSING', exitCode: 1 });
    expect(e!.message).toContain('lacks the apt archive server (UBUNTU_ARCHIVE_SERVER, --archiveServer)');
  });

  it('`ctun-build veos --offline` with nothing else answers with the offline form', () => {
    expect(() => parseVeosArgs([], { offline: true })).toThrowError(
      expect.objectContaining({ message: expect.stringMatching(/^veos offline needs/), hint: expect.stringMatching(/^ctun-build veos offline acceptDspaceEula IMAGE TARBALL ARCHIVE SECURITY DOTNET_SERVER KEY_FILE/) }),
    );
    expect(() => parseVeosArgs([])).toThrowError(expect.objectContaining({ hint: expect.stringMatching(/^ctun-build veos online/) }));
  });
});

describe('the tarball contract', () => {
  async function foreignTarball(name: string): Promise<string> {
    const src = join(root, `${name}-src`);
    await mkdir(join(src, 'acme-sim-1.0'), { recursive: true });
    await writeFile(join(src, 'acme-sim-1.0', 'setup.sh'), '#!/bin/sh\ncp sim.py "$DS_INSTALL_PREFIX"\n');
    await writeFile(join(src, 'acme-sim-1.0', 'sim.py'), 'print("hi")\n');
    const path = join(root, `${name}.tar.gz`);
    await tar.c({ gzip: true, file: path, cwd: src }, ['acme-sim-1.0']);
    return path;
  }

  it('a tarball of another layout is refused naming what was expected and what it holds', async () => {
    const path = await foreignTarball('acme');
    const e = await problem(resolveVeosOptions(parseVeosArgs(['online', 'acceptDspaceEula', 'x:1', path]), {}));
    expect(e).toMatchObject({ code: 'TARBALL_LAYOUT_UNKNOWN', exitCode: 1 });
    expect(e!.message).toBe(
      `simulator tarball ${path} is not in dSPACE's layout: expected acme-sim-1.0/install.sh and acme-sim-1.0/VERSION (release=2023a), missing acme-sim-1.0/install.sh and acme-sim-1.0/VERSION; it holds acme-sim-1.0, acme-sim-1.0/setup.sh, acme-sim-1.0/sim.py`,
    );
    expect(e!.hint).toContain('--installCommand');
    expect(e!.hint).toContain('--entryPoint');
  });

  it('with --installCommand and --entryPoint it is accepted as a custom layout', async () => {
    const path = await foreignTarball('acme2');
    const o = await resolveVeosOptions(parseVeosArgs(['online', 'acceptDspaceEula', 'x:1', path]), {
      layout: { installCommand: 'sh ./setup.sh', entryPoint: 'python3 -u sim.py', installDir: '/opt/acme' },
    });
    expect(o.tarball).toMatchObject({
      layout: 'custom',
      topDir: 'acme-sim-1.0',
      installCommand: 'sh ./setup.sh',
      installDir: '/opt/acme',
      simulatorArgv: ['/bin/sh', '-c', 'exec python3 -u sim.py'],
      ports: ['27027/tcp'],
    });
  });

  it('dSPACE\'s layout damaged is still its own error, not "unknown layout"', async () => {
    const cwd = await ctunFolder('damaged', { tarball: Buffer.concat([standin.subarray(0, 2), Buffer.alloc(64)]) });
    const e = await problem(resolveVeosOptions(parseVeosArgs(['online', 'acceptDspaceEula', 'x:1', 'dspace-veos-2023a.tar.gz']), { cwd }));
    expect(e).toMatchObject({ code: 'TARBALL_INVALID' });
  });
});
