import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLE_TARGET, CLI_ENTRIES, PREBUILD_DIR, RUNTIME_FILES, releaseName, wrapperScript, ADDON_DIR, BUNDLE_DIR } from './index.js';
import { TUNNEL_NODE_FLAGS } from './node-flags.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  private?: boolean;
  files: string[];
  bin: Record<string, string>;
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const launcher = (await import(join(ROOT, 'bin', 'launch.js') as string)) as { nodeTooOld(version: string, range: string): string | undefined };

describe('the npm package and the release ship the same tree', () => {
  it('package.json files carry the bundles, the runtime files and the prebuilt addon', () => {
    expect(pkg.private).toBeUndefined();
    for (const f of RUNTIME_FILES) expect(pkg.files.some((p) => p === f || p.startsWith(`${f}/`) || p === `${f}/`), f).toBe(true);
    expect(pkg.files).toContain(`${BUNDLE_DIR}/`);
    expect(pkg.files).toContain(`${ADDON_DIR.split('\\').join('/')}/prebuilds/`);
    expect(PREBUILD_DIR).toBe(join('prebuilds', 'linux-x64'));
  });

  it('the bins are the three CLIs, and the package needs nothing at run time but the addon loader', () => {
    expect(Object.keys(pkg.bin).sort()).toEqual(Object.keys(CLI_ENTRIES).sort());
    // Everything else is inside the bundles; node-addon-api only serves a build from source.
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['node-addon-api', 'node-gyp-build']);
    expect(pkg.devDependencies.node, 'the pinned runtime is for development and the images').toBeDefined();
  });

  it('engines and the bundles target the same Node major', () => {
    expect(pkg.engines.node).toMatch(/^>=\d+\.\d+\.\d+$/);
    expect(BUNDLE_TARGET).toBe(`node${pkg.engines.node.slice(2).split('.')[0]}`);
  });

  it('the release is named for its version and platform; its wrappers run the bundles on the carried Node', () => {
    expect(releaseName('1.2.3')).toBe('ctun-1.2.3-linux-x64');
    expect(wrapperScript('ctun')).toContain(`exec "$here/node" ${TUNNEL_NODE_FLAGS.join(' ')} "$here/../lib/ctun.mjs" "$@"`);
    expect(wrapperScript('ctun-build')).toContain(`exec "$here/node" "$here/../lib/ctun-build.mjs" "$@"`);
    expect(wrapperScript('ctun-run').startsWith('#!/bin/sh\n')).toBe(true);
  });
});

describe('the release wrapper of ctun', () => {
  it('starts the carried Node with two heap arenas unless the user chose otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctun-wrapper-'));
    try {
      mkdirSync(join(dir, 'bin'));
      writeFileSync(join(dir, 'bin', 'ctun'), wrapperScript('ctun'));
      // A stand-in for the carried Node: it prints what it was started with.
      writeFileSync(join(dir, 'bin', 'node'), '#!/bin/sh\necho "MALLOC_ARENA_MAX=$MALLOC_ARENA_MAX $*"\n');
      for (const f of ['ctun', 'node']) chmodSync(join(dir, 'bin', f), 0o755);
      const env = { ...process.env };
      delete env.MALLOC_ARENA_MAX;
      const plain = await execa(join(dir, 'bin', 'ctun'), ['status'], { env, extendEnv: false });
      expect(plain.stdout).toBe(`MALLOC_ARENA_MAX=2 ${TUNNEL_NODE_FLAGS.join(' ')} ${dir}/bin/../lib/ctun.mjs status`);
      const own = await execa(join(dir, 'bin', 'ctun'), ['status'], { env: { ...env, MALLOC_ARENA_MAX: '8' }, extendEnv: false });
      expect(own.stdout).toMatch(/^MALLOC_ARENA_MAX=8 /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the bins refuse a Node older than engines, in one line', () => {
  it('compares major, minor and patch', () => {
    expect(launcher.nodeTooOld('18.20.4', '>=20.19.0')).toBe('Node 18.20.4 is too old: ctun needs Node 20.19.0 or newer');
    expect(launcher.nodeTooOld('20.18.9', '>=20.19.0')).toMatch(/too old/);
    expect(launcher.nodeTooOld('20.19.0', '>=20.19.0')).toBeUndefined();
    expect(launcher.nodeTooOld('20.20.2', '>=20.19.0')).toBeUndefined();
    expect(launcher.nodeTooOld('24.1.0', '>=20.19.0')).toBeUndefined();
    expect(launcher.nodeTooOld('20.19.0', pkg.engines.node)).toBeUndefined();
  });

  it('an older Node than engines asks gets the error and the hint, exit 1, and nothing runs', async () => {
    // The Node running this is the "old" one for a package that asks for Node 99.
    const dir = mkdtempSync(join(tmpdir(), 'ctun-engines-'));
    cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', engines: { node: '>=99.0.0' } }));
    const r = await execa(process.execPath, [join(dir, 'bin', 'ctun-build.js'), '--version'], { reject: false });
    rmSync(dir, { recursive: true, force: true });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      `ctun-build: error: Node ${process.versions.node} is too old: ctun needs Node 99.0.0 or newer (${process.execPath})`,
      'ctun-build: hint: put a newer Node first on PATH, or use the release tarball, which carries its own',
    ]);
  });
});
