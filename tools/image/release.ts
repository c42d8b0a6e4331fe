import { chmod, cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import * as tar from 'tar';
import { CtunError, metadata, silentLogger, type Logger } from '../common/index.js';
import { bundleScript } from './bundle.js';
import { TUNNEL_NODE_FLAGS, tunnelEnvExports } from './node-flags.js';
import { ADDON_DIR, BUNDLE_DIR, CLI_ENTRIES, pinnedNodeBinary, type CliName } from './paths.js';

/**
 * The files an install reads at run time, at their checkout paths (the bundles find
 * them from their modules' mirrored locations, see bundleScript `layout`). package.json
 * `files` lists the same; a unit test keeps the two in step.
 */
export const RUNTIME_FILES = [
  'metadata.json',
  'dockerfiles',
  'templates',
  'k8s',
  'tools/simulator/install.sh',
  'tools/simulator/payload',
] as const;

/** Where the prebuilt addon goes inside ADDON_DIR: node-gyp-build's layout. */
export const PREBUILD_DIR = join('prebuilds', `linux-x64`);
/** Its file name: N-API (one binary for every Node), glibc (musl hosts compile). */
export const PREBUILD_FILE = 'ctun_tap.glibc.node';

/** The release archive's name and its top folder. */
export function releaseName(version: string = metadata.ctunVersion): string {
  return `ctun-${version}-linux-x64`;
}

/**
 * Builds the N-API addon ahead of time with prebuildify, in a copy of its sources
 * under `work` (so the checkout's own build/Release stays as npm ci made it). Uses
 * the Node headers node-gyp is configured with (npm's `nodedir`), like npm ci does.
 * Returns the prebuilt file.
 */
export async function prebuildAddon(root: string, work: string, logger: Logger = silentLogger): Promise<string> {
  const dir = join(work, 'addon');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const f of await readdir(join(root, ADDON_DIR))) {
    if (f === 'binding.gyp' || /\.(cc|h)$/.test(f)) await cp(join(root, ADDON_DIR, f), join(dir, f));
  }
  logger.info('addon-prebuild', { dir });
  try {
    await execa(
      join(root, 'node_modules', '.bin', 'prebuildify'),
      // --target: the running Node, whose headers node-gyp has; with --napi the binary serves every Node.
      // --cache: its header folder inside `work`, removed with it (default: a folder left in /tmp).
      ['--napi', '--strip', '--tag-libc', '--name', 'ctun_tap', '--target', process.versions.node, '--cache', join(work, 'prebuildify-cache')],
      // NODE_PATH: binding.gyp asks `node -p require('node-addon-api')` from the copy.
      { cwd: dir, all: true, env: { NODE_PATH: join(root, 'node_modules') } },
    );
  } catch (e) {
    const all = (e as { all?: string }).all ?? '';
    throw new CtunError('ADDON_PREBUILD_FAILED', `prebuildify failed to build the TAP addon: ${all.split('\n').filter((l) => /ERR|error/.test(l)).slice(-3).join(' | ')}`, {
      hint: 'it needs what npm ci needs (a C++ compiler and the Node headers npm is configured with); run `npm ci` first',
      cause: e,
    });
  }
  return join(dir, PREBUILD_DIR, PREBUILD_FILE);
}

/**
 * Writes the tree an install runs from into `dir`: the three CLIs bundled into
 * lib/, the prebuilt addon, the runtime files. Shared by the release and the npm
 * package (prepack), so both run the same scripts the images embed.
 */
export async function stageInstallTree(options: { root: string; dir: string; addon: string; logger?: Logger }): Promise<void> {
  const { root, dir } = options;
  for (const name of Object.keys(CLI_ENTRIES) as CliName[]) {
    const at = join(BUNDLE_DIR, `${name}.mjs`);
    const r = await bundleScript({ entry: join(root, CLI_ENTRIES[name]), outFile: join(dir, at), layout: { root, at } });
    options.logger?.info('bundled', { name, bytes: r.bytes });
  }
  await mkdir(join(dir, ADDON_DIR, PREBUILD_DIR), { recursive: true });
  await cp(options.addon, join(dir, ADDON_DIR, PREBUILD_DIR, PREBUILD_FILE));
  if (dir !== root) for (const f of RUNTIME_FILES) await cp(join(root, f), join(dir, f), { recursive: true });
}

/**
 * The shell wrapper bin/NAME of the release: the carried Node runs the bundle. ctun
 * gets the tunnel's Node flags and environment, as in the images; readlink -f so a symlink on PATH
 * (/usr/local/bin/ctun → …/bin/ctun) still finds the tree.
 */
export function wrapperScript(name: CliName): string {
  const flags = name === 'ctun' ? `${TUNNEL_NODE_FLAGS.join(' ')} ` : '';
  return [
    '#!/bin/sh',
    `# ${name} ${metadata.ctunVersion}: the bundled tool on the Node this release carries.`,
    'here=$(dirname "$(readlink -f "$0")")',
    ...(name === 'ctun' ? tunnelEnvExports() : []),
    `exec "$here/node" ${flags}"$here/../${BUNDLE_DIR}/${name}.mjs" "$@"`,
    '',
  ].join('\n');
}

export interface ReleaseOptions {
  /** The checkout. */
  root: string;
  /** Where the archive goes; default `<root>/dist`. */
  outDir?: string;
  /** A prebuilt addon to use; default: prebuildify it now. */
  addon?: string;
  logger?: Logger;
}

/**
 * `npm run release`: dist/ctun-<version>-linux-x64.tar.gz, one top folder holding
 * bin/{node,ctun,ctun-build,ctun-run}, lib/*.mjs, the prebuilt addon and the runtime
 * files. Needs nothing on the target but a Linux x64 kernel and glibc (and Docker for
 * builds and deployments).
 */
export async function buildRelease(options: ReleaseOptions): Promise<{ file: string; name: string }> {
  const logger = options.logger ?? silentLogger;
  const outDir = options.outDir ?? join(options.root, 'dist');
  const name = releaseName();
  const work = await mkdtemp(join(tmpdir(), 'ctun-release-'));
  try {
    const addon = options.addon ?? (await prebuildAddon(options.root, work, logger));
    const top = join(work, name);
    await stageInstallTree({ root: options.root, dir: top, addon, logger });
    const node = pinnedNodeBinary(options.root);
    await cp(node, join(top, 'bin', 'node')).catch((e: unknown) => {
      throw new CtunError('RELEASE_NODE_MISSING', `the pinned Node runtime ${node} is missing`, { hint: 'run `npm ci` in the checkout (it installs the `node` dev dependency)', cause: e });
    });
    await chmod(join(top, 'bin', 'node'), 0o755);
    for (const cli of Object.keys(CLI_ENTRIES) as CliName[]) {
      await writeFile(join(top, 'bin', cli), wrapperScript(cli), { mode: 0o755 });
    }
    await mkdir(outDir, { recursive: true });
    const file = join(outDir, `${name}.tar.gz`);
    await tar.create({ gzip: true, file, cwd: work, portable: true }, [name]);
    logger.info('release-written', { file: basename(file) });
    return { file, name };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
