import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { CtunError, type Logger, metadata, silentLogger } from '../common/index.js';
import {
  SIMULATOR_BIN,
  SIMULATOR_INSTALL_DIR,
  SIMULATOR_TARBALL_NAME,
  SIMULATOR_TARBALL_TOP_DIR,
  STANDIN_PRODUCT,
} from './constants.js';
import { standinManifest } from './manifest.js';

/**
 * Every entry gets this mtime so a rebuild is byte-identical (the date means nothing).
 * With sorted entries, explicit modes and `portable` (no uid, gid, user names, atime,
 * ctime), the tarball depends only on the sources.
 */
const FIXED_MTIME = new Date(Date.UTC(2023, 0, 1));

/** Where install.sh and payload/ live: beside this module. */
const SOURCE_DIR = dirname(fileURLToPath(import.meta.url));

export interface BuildStandinTarballOptions {
  /** Directory to write the tarball to; created if missing. */
  outDir: string;
  /** File name; default `dspace-veos-2023a.tar.gz`. */
  fileName?: string;
  /** Folder holding install.sh and payload/; default this module's folder (tools/simulator). */
  sourceDir?: string;
  /** Default: silent. */
  logger?: Logger;
}

export interface BuiltTarball {
  /** Absolute path of the tarball. */
  path: string;
  /** Hex SHA-256 of the tarball. */
  sha256: string;
}

interface StagedFile {
  path: string; // inside the top directory
  content: Buffer;
  mode: number;
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The `VERSION` file: key=value lines, read by inspectSimulatorTarball and the simulator. */
export function versionFileText(): string {
  return `product=${STANDIN_PRODUCT}\nrelease=${metadata.veosRelease}\nversion=${metadata.veosVersion}\n`;
}

async function stagedFiles(sourceDir: string): Promise<StagedFile[]> {
  const read = (rel: string): Promise<Buffer> =>
    readFile(join(sourceDir, rel)).catch((cause: unknown) => {
      throw new CtunError('STANDIN_SOURCE_MISSING', `Cannot read the stand-in source ${join(sourceDir, rel)}`, {
        hint: 'run from a complete ctun checkout (tools/simulator holds install.sh and payload/)',
        cause,
      });
    });
  const template = (await read('install.sh')).toString('utf8');
  const install = template
    .replaceAll('@PRODUCT@', STANDIN_PRODUCT)
    .replaceAll('@RELEASE@', metadata.veosRelease)
    .replaceAll('@INSTALL_DIR@', SIMULATOR_INSTALL_DIR);
  const payload: StagedFile[] = [
    { path: `payload/${SIMULATOR_BIN.simulator}`, content: await read('payload/veos_standin.py'), mode: 0o755 },
    { path: `payload/${SIMULATOR_BIN.licenseStandin}`, content: await read('payload/license_standin.py'), mode: 0o755 },
  ];
  // SHA256SUMS covers the payload, in sha256sum's own format, so `sha256sum -c` works too.
  const sums = [...payload]
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => `${sha256Hex(f.content)}  ${f.path}\n`)
    .join('');
  return [
    { path: 'install.sh', content: Buffer.from(install), mode: 0o755 },
    { path: 'VERSION', content: Buffer.from(versionFileText()), mode: 0o644 },
    { path: 'manifest.json', content: Buffer.from(JSON.stringify(standinManifest(), null, 2) + '\n'), mode: 0o644 },
    { path: 'SHA256SUMS', content: Buffer.from(sums), mode: 0o644 },
    ...payload,
  ];
}

/**
 * Builds the stand-in simulator's product tarball, `dspace-veos-2023a.tar.gz`:
 *
 * ```
 * dspace-veos-2023a/install.sh      POSIX sh; needs DS_ACCEPT_EULA=yes, honours DS_INSTALL_PREFIX
 * dspace-veos-2023a/VERSION         product=, release=, version= lines
 * dspace-veos-2023a/manifest.json   entry points, ports, env, needs (python3, no dotnet)
 * dspace-veos-2023a/SHA256SUMS      over payload/
 * dspace-veos-2023a/payload/bin/veos_standin.py, license_standin.py
 * ```
 * Deterministic: the same sources give the same bytes.
 */
export async function buildStandinTarball(options: BuildStandinTarballOptions): Promise<BuiltTarball> {
  const logger = options.logger ?? silentLogger;
  const outDir = resolve(options.outDir);
  const path = join(outDir, options.fileName ?? SIMULATOR_TARBALL_NAME);
  const files = await stagedFiles(options.sourceDir ?? SOURCE_DIR);

  const stage = await mkdtemp(join(tmpdir(), 'ctun-standin-'));
  try {
    const top = SIMULATOR_TARBALL_TOP_DIR;
    const entries = new Set<string>([top]);
    for (const file of files) {
      const parts = `${top}/${file.path}`.split('/');
      for (let i = 2; i < parts.length; i++) entries.add(parts.slice(0, i).join('/'));
      entries.add(parts.join('/'));
      await mkdir(join(stage, top, dirname(file.path)), { recursive: true });
      await writeFile(join(stage, top, file.path), file.content);
      // Explicit modes: the umask of whoever builds must not show in the tarball.
      await chmod(join(stage, top, file.path), file.mode);
    }
    const sorted = [...entries].sort();
    for (const entry of sorted) {
      if (!files.some((f) => `${top}/${f.path}` === entry)) await chmod(join(stage, entry), 0o755);
    }

    await mkdir(outDir, { recursive: true });
    const partial = `${path}.partial-${process.pid}`;
    try {
      await tar.c(
        { file: partial, cwd: stage, gzip: true, portable: true, mtime: FIXED_MTIME, noDirRecurse: true },
        sorted,
      );
      // Written aside and renamed, so a failed build never leaves a half tarball behind.
      await rename(partial, path);
    } catch (cause) {
      await rm(partial, { force: true });
      throw new CtunError('STANDIN_BUILD_FAILED', `Cannot write the stand-in tarball ${path}`, {
        hint: 'check that the output directory is writable and has space',
        cause,
      });
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }

  const sha256 = sha256Hex(await readFile(path));
  logger.info('standin-tarball-built', { path, sha256 });
  return { path, sha256 };
}
