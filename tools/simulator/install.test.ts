import { access, appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadata } from '../common/index.js';
import { buildStandinTarball, INSTALL_ENV, InstallExitCode, SIMULATOR_TARBALL_TOP_DIR } from './index.js';

let work: string;
let tarball: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ctun-sim-install-'));
  tarball = (await buildStandinTarball({ outDir: work })).path;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Extracts the tarball afresh and returns its top directory. */
async function extracted(): Promise<string> {
  const dir = await mkdtemp(join(work, 'x-'));
  await tar.x({ file: tarball, cwd: dir });
  return join(dir, SIMULATOR_TARBALL_TOP_DIR);
}

/** Runs ./install.sh as a user would, with only the given variables (no inherited DS_*). */
function install(top: string, env: Record<string, string>) {
  return execa(join(top, 'install.sh'), [], {
    cwd: top,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    extendEnv: false,
    reject: false,
    timeout: 10_000,
  });
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

describe('install.sh', () => {
  it('refuses to install unless the EULA is accepted', async () => {
    const top = await extracted();
    const prefix = join(work, 'no-eula');
    const refused: Array<Record<string, string>> = [{}, { [INSTALL_ENV.acceptEula]: 'no' }, { [INSTALL_ENV.acceptEula]: 'YES please' }];
    for (const env of refused) {
      const r = await install(top, { ...env, [INSTALL_ENV.prefix]: prefix });
      expect(r.exitCode).toBe(InstallExitCode.EulaNotAccepted);
      expect(r.stderr).toContain('set DS_ACCEPT_EULA=yes');
    }
    expect(await exists(prefix)).toBe(false);
  });

  it('installs the payload, VERSION and manifest under DS_INSTALL_PREFIX', async () => {
    const top = await extracted();
    const prefix = join(work, 'opt', 'dspace', `veos${metadata.veosRelease}`);
    const r = await install(top, { [INSTALL_ENV.acceptEula]: 'yes', [INSTALL_ENV.prefix]: prefix });
    expect(r.exitCode, r.stderr).toBe(InstallExitCode.Ok);
    expect(r.stdout).toContain(`installed VEOS stand-in ${metadata.veosRelease} to ${prefix}`);

    for (const bin of ['veos_standin.py', 'license_standin.py']) {
      const installed = join(prefix, 'bin', bin);
      expect((await stat(installed)).mode & 0o777).toBe(0o755);
      expect(await readFile(installed, 'utf8')).toBe(await readFile(new URL(`./payload/${bin}`, import.meta.url), 'utf8'));
    }
    expect(await readFile(join(prefix, 'VERSION'), 'utf8')).toContain(`release=${metadata.veosRelease}`);
    expect(JSON.parse(await readFile(join(prefix, 'manifest.json'), 'utf8')).needs).toEqual({ python3: true, dotnet: false });
  });

  it('defaults to the product install directory', async () => {
    const script = await readFile(join(await extracted(), 'install.sh'), 'utf8');
    expect(script).toContain(`prefix=\${DS_INSTALL_PREFIX:-/opt/dspace/veos${metadata.veosRelease}}`);
    expect(script).not.toMatch(/@[A-Z_]+@/);
  });

  it('refuses a damaged payload before copying anything', async () => {
    const top = await extracted();
    await appendFile(join(top, 'payload/bin/license_standin.py'), 'import os\n');
    const prefix = join(work, 'damaged');
    const r = await install(top, { [INSTALL_ENV.acceptEula]: 'yes', [INSTALL_ENV.prefix]: prefix });
    expect(r.exitCode).toBe(InstallExitCode.ChecksumMismatch);
    expect(r.stderr).toContain('checksum mismatch for payload/bin/license_standin.py');
    expect(await exists(prefix)).toBe(false);
  });

  it('runs from any working directory', async () => {
    const top = await extracted();
    const prefix = join(work, 'elsewhere');
    const r = await execa('sh', [join(top, 'install.sh')], {
      cwd: work,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', [INSTALL_ENV.acceptEula]: 'yes', [INSTALL_ENV.prefix]: prefix },
      extendEnv: false,
      reject: false,
      timeout: 10_000,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await exists(join(prefix, 'bin', 'veos_standin.py'))).toBe(true);
  });
});
