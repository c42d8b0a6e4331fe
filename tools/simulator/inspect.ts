import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as tar from 'tar';
import { CtunError, errnoCode, ExitCode } from '../common/index.js';
import { TARBALL_HINT } from './constants.js';
import { manifestProblem, type SimulatorManifest } from './manifest.js';

/** What inspectSimulatorTarball found in a valid simulator tarball. */
export interface SimulatorTarballInfo {
  /** Absolute path of the tarball. */
  path: string;
  /** Hex SHA-256 of the tarball. */
  sha256: string;
  /** The release from VERSION, e.g. `2023a`. */
  release: string;
  /** The version from VERSION (`version=`), when it has one, e.g. `23.1`. */
  version: string | undefined;
  /** The product from VERSION (`product=`), when it has one. */
  product: string | undefined;
  /** The single top-level directory, e.g. `dspace-veos-2023a`; '' when entries sit at the root. */
  topDir: string;
  /** Path of the install script inside the archive, e.g. `dspace-veos-2023a/install.sh`. */
  installScript: string;
  /** Path of the VERSION file inside the archive. */
  versionFile: string;
  /** manifest.json beside VERSION, when there is one (the stand-in has one; dSPACE's may not). */
  manifest: SimulatorManifest | undefined;
  /** SHA256SUMS beside VERSION and how many files it verified; undefined when there is none. */
  checksums: { file: string; verified: number } | undefined;
  /** Number of entries in the archive. */
  entries: number;
}

export interface InspectSimulatorTarballOptions {
  /** Fail unless VERSION names this release (e.g. metadata.veosRelease); default: any release. */
  expectedRelease?: string;
}

/** Files read into memory are small text files; anything larger is not what we expect. */
const SMALL_FILE_LIMIT = 1024 * 1024;
const SMALL_FILES = new Set(['VERSION', 'SHA256SUMS', 'manifest.json']);
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

interface Scan {
  entries: number;
  paths: string[];
  hashes: Map<string, Hash>;
  small: Map<string, Buffer[]>;
  tooLarge: Set<string>;
  unsafe: string | undefined;
}

function normalise(path: string): string {
  return path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

async function scan(path: string): Promise<Scan> {
  const result: Scan = { entries: 0, paths: [], hashes: new Map(), small: new Map(), tooLarge: new Set(), unsafe: undefined };
  await tar.t({
    file: path,
    strict: true,
    onReadEntry: (entry) => {
      const name = normalise(entry.path);
      result.entries++;
      result.paths.push(name);
      if (name.startsWith('/') || name.split('/').includes('..')) result.unsafe ??= entry.path;
      if (!FILE_TYPES.has(entry.type)) return;
      const hash = createHash('sha256');
      result.hashes.set(name, hash);
      const keep = SMALL_FILES.has(name.split('/').pop() ?? '') && name.split('/').length <= 2;
      const chunks: Buffer[] = [];
      let size = 0;
      if (keep) result.small.set(name, chunks);
      entry.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        if (!keep) return;
        size += chunk.length;
        if (size <= SMALL_FILE_LIMIT) chunks.push(chunk);
        else result.tooLarge.add(name);
      });
    },
  });
  return result;
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function topDirOf(paths: string[]): string {
  const first = new Set(paths.map((p) => p.split('/')[0]));
  const [only] = [...first];
  return first.size === 1 && only !== undefined && paths.some((p) => p.includes('/')) ? only : '';
}

function parseVersion(text: string): { release?: string; version?: string; product?: string } {
  const fields: Record<string, string> = {};
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq).trim().toLowerCase()] = line.slice(eq + 1).trim();
  }
  // A bare first line ("2023a") is accepted too: we do not know every vendor's format.
  const bare = lines[0] !== undefined && !lines[0].includes('=') ? lines[0].split(/\s+/)[0] : undefined;
  return { release: fields['release'] || bare, version: fields['version'], product: fields['product'] };
}

/**
 * Validates a simulator tarball before a build starts, so a wrong file fails in a
 * second with a reason rather than deep inside an image build. Checks: it exists, is
 * a gzip-compressed tar, has only relative paths, an install.sh and a VERSION (in its
 * single top directory, or at the root), a release in VERSION, every SHA256SUMS entry
 * (if present) matching, and manifest.json (if present) being well-formed.
 *
 * @throws CtunError `TARBALL_MISSING` when there is no such file, `TARBALL_INVALID`
 *   naming what is wrong otherwise; both hint at where a valid tarball comes from.
 */
export async function inspectSimulatorTarball(
  path: string,
  options: InspectSimulatorTarballOptions = {},
): Promise<SimulatorTarballInfo> {
  const abs = resolve(path);
  const invalid = (what: string, cause?: unknown): CtunError =>
    new CtunError('TARBALL_INVALID', `Simulator tarball ${abs} ${what}`, { hint: TARBALL_HINT, exitCode: ExitCode.Usage, cause });

  try {
    const stats = await stat(abs);
    if (!stats.isFile()) throw invalid('is not a regular file');
  } catch (cause) {
    if (cause instanceof CtunError) throw cause;
    const code = errnoCode(cause);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CtunError('TARBALL_MISSING', `Simulator tarball ${abs} does not exist`, {
        hint: TARBALL_HINT,
        exitCode: ExitCode.Usage,
        cause,
      });
    }
    throw invalid(`cannot be read (${code ?? String(cause)})`, cause);
  }

  const head = Buffer.alloc(2);
  const handle = await open(abs, 'r');
  try {
    await handle.read(head, 0, 2, 0);
  } finally {
    await handle.close();
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b) throw invalid('is not gzip-compressed (no gzip signature at its start)');

  let found: Scan;
  try {
    found = await scan(abs);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw invalid(`is not a readable gzip-compressed tar archive (${reason})`, cause);
  }
  if (found.entries === 0) throw invalid('is an empty archive');
  if (found.unsafe !== undefined) throw invalid(`has an entry outside its directory: ${found.unsafe}`);

  const topDir = topDirOf(found.paths);
  const at = (name: string): string => (topDir === '' ? name : `${topDir}/${name}`);
  const text = (name: string): string | undefined => {
    const chunks = found.small.get(name);
    if (chunks === undefined) return undefined;
    if (found.tooLarge.has(name)) throw invalid(`has a ${name} larger than ${SMALL_FILE_LIMIT} bytes`);
    return Buffer.concat(chunks).toString('utf8');
  };

  const installScript = at('install.sh');
  if (!found.hashes.has(installScript)) throw invalid(`has no install script (expected ${installScript})`);
  const versionFile = at('VERSION');
  const versionText = text(versionFile);
  if (versionText === undefined) throw invalid(`has no VERSION file (expected ${versionFile})`);
  const { release, version, product } = parseVersion(versionText);
  if (!release) throw invalid(`has a VERSION file without a release (expected a line like release=2023a)`);
  if (options.expectedRelease !== undefined && release !== options.expectedRelease) {
    throw invalid(`is release ${release}, not the expected ${options.expectedRelease}`);
  }

  let checksums: SimulatorTarballInfo['checksums'];
  const sumsFile = at('SHA256SUMS');
  const sumsText = text(sumsFile);
  if (sumsText !== undefined) {
    const bad: string[] = [];
    let verified = 0;
    const lines = sumsText.split(/\r?\n/).filter((l) => l.trim() !== '');
    if (lines.length === 0) throw invalid(`has an empty ${sumsFile}`);
    for (const [index, line] of lines.entries()) {
      const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
      if (!m || m[1] === undefined || m[2] === undefined) {
        throw invalid(`has a malformed ${sumsFile} (line ${index + 1} is not "<sha256>  <path>")`);
      }
      const listed = normalise(m[2]);
      const hash = found.hashes.get(at(listed));
      if (hash === undefined) throw invalid(`lists ${listed} in ${sumsFile}, but has no such file`);
      if (hash.copy().digest('hex') !== m[1].toLowerCase()) bad.push(listed);
      else verified++;
    }
    if (bad.length > 0) {
      const names = bad.slice(0, 5).join(', ') + (bad.length > 5 ? ` and ${bad.length - 5} more` : '');
      throw invalid(`fails its checksums: ${names} ${bad.length === 1 ? 'does' : 'do'} not match ${sumsFile}; the tarball is damaged or was altered`);
    }
    checksums = { file: sumsFile, verified };
  }

  let manifest: SimulatorManifest | undefined;
  const manifestText = text(at('manifest.json'));
  if (manifestText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(manifestText);
    } catch (cause) {
      throw invalid(`has a manifest.json that is not JSON (${(cause as Error).message})`, cause);
    }
    const problem = manifestProblem(parsed);
    if (problem !== undefined) throw invalid(`has a manifest.json that ${problem}`);
    manifest = parsed as SimulatorManifest;
    if (manifest.release !== release) {
      throw invalid(`says release ${release} in VERSION but ${manifest.release} in manifest.json`);
    }
  }

  return {
    path: abs,
    sha256: await fileSha256(abs),
    release,
    version,
    product,
    topDir,
    installScript,
    versionFile,
    manifest,
    checksums,
    entries: found.entries,
  };
}
