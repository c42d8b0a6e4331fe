import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CtunError, metadata } from '../common/index.js';
import {
  buildStandinTarball,
  inspectSimulatorTarball,
  SIMULATOR_TARBALL_NAME,
  SIMULATOR_TARBALL_TOP_DIR,
  type BuiltTarball,
} from './index.js';

const TOP = SIMULATOR_TARBALL_TOP_DIR;
let work: string;
let built: BuiltTarball;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ctun-sim-tarball-'));
  built = await buildStandinTarball({ outDir: join(work, 'out') });
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function rejection(path: string, options = {}): Promise<CtunError> {
  const error = await inspectSimulatorTarball(path, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CtunError);
  return error as CtunError;
}

/** Extracts the built tarball, lets `change` alter the tree, packs it again. */
async function altered(name: string, change: (top: string) => Promise<void>): Promise<string> {
  const dir = await mkdtemp(join(work, 'alter-'));
  await tar.x({ file: built.path, cwd: dir });
  await change(join(dir, TOP));
  const out = join(work, `${name}.tar.gz`);
  await tar.c({ file: out, cwd: dir, gzip: true }, [TOP]);
  return out;
}

describe('buildStandinTarball', () => {
  it('writes dspace-veos-<release>.tar.gz and reports its real sha256', async () => {
    expect(built.path).toBe(join(work, 'out', SIMULATOR_TARBALL_NAME));
    expect(SIMULATOR_TARBALL_NAME).toBe(`dspace-veos-${metadata.veosRelease}.tar.gz`);
    const bytes = await readFile(built.path);
    expect(built.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('is deterministic: a second build gives the same bytes', async () => {
    const again = await buildStandinTarball({ outDir: join(work, 'again') });
    expect(again.sha256).toBe(built.sha256);
  });

  it('has the shape of a product tarball, in sorted order, with portable modes', async () => {
    const entries: Array<{ path: string; mode: number; owner: string }> = [];
    await tar.t({ file: built.path, onReadEntry: (e) => void entries.push({ path: e.path, mode: e.mode ?? 0, owner: `${e.uid ?? ''}${e.uname ?? ''}` }) });
    const paths = entries.map((e) => e.path.replace(/\/$/, ''));
    expect(paths).toEqual([
      TOP,
      `${TOP}/SHA256SUMS`,
      `${TOP}/VERSION`,
      `${TOP}/install.sh`,
      `${TOP}/manifest.json`,
      `${TOP}/payload`,
      `${TOP}/payload/bin`,
      `${TOP}/payload/bin/license_standin.py`,
      `${TOP}/payload/bin/veos_standin.py`,
    ]);
    const mode = (p: string): number => (entries.find((e) => e.path.replace(/\/$/, '') === p)?.mode ?? 0) & 0o777;
    expect(mode(`${TOP}/install.sh`)).toBe(0o755);
    expect(mode(`${TOP}/payload/bin/veos_standin.py`)).toBe(0o755);
    expect(mode(`${TOP}/VERSION`)).toBe(0o644);
    // Nothing of the builder's account in the archive.
    expect(entries.map((e) => e.owner).filter((o) => o !== '' && o !== '0')).toEqual([]);
  });

  it('carries the release and version of metadata.json in VERSION and the manifest', async () => {
    const info = await inspectSimulatorTarball(built.path);
    expect(info.release).toBe(metadata.veosRelease);
    expect(info.version).toBe(metadata.veosVersion);
    expect(info.manifest?.needs).toEqual({ python3: true, dotnet: false });
    expect(info.manifest?.installDir).toBe(`/opt/dspace/veos${metadata.veosRelease}`);
    expect(info.manifest?.entryPoints.simulator.argv).toEqual(['python3', '-u', `/opt/dspace/veos${metadata.veosRelease}/bin/veos_standin.py`]);
    expect(info.manifest?.entryPoints.licenseStandin.argv).toEqual([
      'python3', '-u', `/opt/dspace/veos${metadata.veosRelease}/bin/license_standin.py`, '--port', '22350',
    ]);
  });
});

describe('inspectSimulatorTarball', () => {
  it('accepts the stand-in tarball and says what it found', async () => {
    const info = await inspectSimulatorTarball(built.path, { expectedRelease: metadata.veosRelease });
    expect(info).toMatchObject({
      path: built.path,
      sha256: built.sha256,
      topDir: TOP,
      installScript: `${TOP}/install.sh`,
      versionFile: `${TOP}/VERSION`,
      product: 'VEOS stand-in',
      checksums: { file: `${TOP}/SHA256SUMS`, verified: 2 },
      entries: 9,
    });
  });

  it('rejects a missing file with TARBALL_MISSING and a hint', async () => {
    const e = await rejection(join(work, 'nope', SIMULATOR_TARBALL_NAME));
    expect(e.code).toBe('TARBALL_MISSING');
    expect(e.message).toContain('does not exist');
    expect(e.hint).toContain('ctun-build standin');
  });

  it('rejects a directory', async () => {
    const e = await rejection(work);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain('not a regular file');
  });

  it('rejects a file that is not gzip', async () => {
    const path = join(work, 'plain.tar.gz');
    await writeFile(path, 'this is a README, not a tarball\n');
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain('not gzip-compressed');
    expect(e.hint).toContain(SIMULATOR_TARBALL_NAME);
  });

  it('rejects gzip that holds no tar archive', async () => {
    const path = join(work, 'text.gz');
    await writeFile(path, gzipSync(Buffer.from('hello\n'.repeat(200))));
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toMatch(/not a readable gzip-compressed tar archive|empty archive/);
  });

  it('rejects a truncated tarball', async () => {
    const path = join(work, 'truncated.tar.gz');
    const bytes = await readFile(built.path);
    await writeFile(path, bytes);
    await truncate(path, Math.floor(bytes.length / 2));
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain('not a readable gzip-compressed tar archive');
  });

  it('rejects a tampered payload file by its checksum, naming the file', async () => {
    const path = await altered('tampered', (top) => appendFile(join(top, 'payload/bin/veos_standin.py'), '# changed\n'));
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain('fails its checksums: payload/bin/veos_standin.py does not match');
  });

  it('rejects a tarball whose SHA256SUMS lists a file it lacks', async () => {
    const path = await altered('lacking', (top) => unlink(join(top, 'payload/bin/license_standin.py')));
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain('lists payload/bin/license_standin.py in');
  });

  it('rejects a tarball without install script', async () => {
    const path = await altered('no-install', (top) => unlink(join(top, 'install.sh')));
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain(`has no install script (expected ${TOP}/install.sh)`);
  });

  it('rejects a tarball without VERSION', async () => {
    const path = await altered('no-version', (top) => unlink(join(top, 'VERSION')));
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain('has no VERSION file');
  });

  it('rejects a manifest that is not JSON', async () => {
    const path = await altered('bad-manifest', (top) => writeFile(join(top, 'manifest.json'), '{ product: '));
    const e = await rejection(path);
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain('manifest.json that is not JSON');
  });

  it('rejects another release when one is expected', async () => {
    const e = await rejection(built.path, { expectedRelease: '2099z' });
    expect(e.code).toBe('TARBALL_INVALID');
    expect(e.message).toContain(`is release ${metadata.veosRelease}, not the expected 2099z`);
  });

  it('accepts a vendor-style tarball with a bare VERSION and neither manifest nor checksums', async () => {
    const path = await altered('vendor', async (top) => {
      await writeFile(join(top, 'VERSION'), '2023a\n');
      await unlink(join(top, 'manifest.json'));
      await unlink(join(top, 'SHA256SUMS'));
    });
    const info = await inspectSimulatorTarball(path);
    expect(info.release).toBe('2023a');
    expect(info.manifest).toBeUndefined();
    expect(info.checksums).toBeUndefined();
  });
});
