import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodeGypBuild from 'node-gyp-build';

/**
 * Where the project's own inputs to the images live. The same tree shape serves a
 * checkout, the release tarball and the npm package: they carry dockerfiles/,
 * templates/, metadata.json and tools/tunnel/native/ at the checkout's paths; what
 * differs is whether the tunnel is TypeScript (tools/cli/ctun.ts) or already bundled
 * (lib/ctun.mjs), and where the Node binary the images embed comes from.
 */
export interface ProjectPaths {
  root: string;
  /** The pinned Node runtime the images embed (see pinnedNodeBinary). */
  nodeBinary: string;
  /** The TAP addon: built by node-gyp in a checkout, prebuilt in an install. */
  addon: string;
  /** The entry bundled into the one `ctun` script: the TypeScript, or an install's bundle. */
  ctunEntry: string;
  dockerfiles: string;
  templates: string;
}

/** Where the bundled CLIs sit in an install (the release and the npm package). */
export const BUNDLE_DIR = 'lib';
/** The addon's folder (binding.gyp, sources, build/, prebuilds/), relative to the root. */
export const ADDON_DIR = join('tools', 'tunnel', 'native');
/** The three CLIs: bin name → TypeScript entry. */
export const CLI_ENTRIES = {
  ctun: join('tools', 'cli', 'ctun.ts'),
  'ctun-build': join('tools', 'cli', 'ctun-build.ts'),
  'ctun-run': join('tools', 'cli', 'ctun-run.ts'),
} as const;
export type CliName = keyof typeof CLI_ENTRIES;

/**
 * The Node binary the images embed: the release's own (`bin/node`), else the pinned
 * `node` package (a dev dependency in a checkout; beside a global npm install when
 * the user added it). Returned even when missing: printing a plan needs no binary,
 * and the build context names what to do when it is absent.
 */
export function pinnedNodeBinary(root: string): string {
  const carried = join(root, 'bin', 'node');
  if (existsSync(carried)) return carried;
  try {
    return join(dirname(createRequire(join(root, 'package.json')).resolve('node/package.json')), 'bin', 'node');
  } catch {
    return join(root, 'node_modules', 'node', 'bin', 'node');
  }
}

/** The addon node-gyp-build would load from the tree: compiled (build/Release) first, else the prebuilt one. */
export function addonBinary(root: string): string {
  try {
    return nodeGypBuild.path(join(root, ADDON_DIR));
  } catch {
    return join(root, ADDON_DIR, 'build', 'Release', 'ctun_tap.node');
  }
}

/** The paths of this checkout or install (default root: two folders above this module). */
export function projectPaths(root: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')): ProjectPaths {
  const source = join(root, CLI_ENTRIES.ctun);
  return {
    root,
    nodeBinary: pinnedNodeBinary(root),
    addon: addonBinary(root),
    ctunEntry: existsSync(source) ? source : join(root, BUNDLE_DIR, 'ctun.mjs'),
    dockerfiles: join(root, 'dockerfiles'),
    templates: join(root, 'templates'),
  };
}

/**
 * What to do when an input the images embed (the pinned Node, the addon) is missing:
 * a checkout gets it from `npm ci`; an npm-installed ctun carries no Node runtime
 * (users' own Node runs the tools, and it may not suit an image), so it is added
 * beside ctun, or the release, which carries it, is used instead.
 */
export function missingInputHint(root: string = projectPaths().root): string {
  if (existsSync(join(root, CLI_ENTRIES.ctun))) return 'run `npm ci` in the checkout (it installs the pinned Node runtime and builds the TAP addon)';
  let pinned = '';
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
    pinned = pkg.devDependencies?.node ? `@${pkg.devDependencies.node}` : '';
  } catch {
    // no package.json: not an npm install; the generic advice below holds
  }
  return `this ctun carries no Node runtime for the images: add the pinned one beside it (npm install -g node${pinned}) or build from the release tarball, which carries it`;
}
