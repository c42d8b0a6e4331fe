/**
 * The simulator image's five Python wheels, made where PyPI cannot be reached: Debian
 * packages supervisor 4.2, toposort and setuptools, so those are downloaded through
 * this host's own apt configuration (`apt-get download`: whatever mirror the host
 * names, never one written here) and repacked as wheels; supervisor-console and
 * supervisord-dependent-startup are not in Debian, so small stand-ins are built from
 * the sources beside this file. The stand-ins carry the local version label
 * `+ctundemo` so that nobody takes them for the real packages.
 */
import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { CtunError, errnoCode, type Logger } from '../../common/index.js';
import { checkWheels, type BuildPlan } from '../plan.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAKER = join(HERE, 'make_wheels.py');
const STANDIN_SOURCES = join(HERE, 'standins');

/** Debian's packages that carry supervisor, toposort and setuptools (as a wheel). */
export const DEBIAN_WHEEL_PACKAGES = ['supervisor', 'python3-toposort', 'python3-setuptools-whl'] as const;

/** The local version label of every stand-in wheel (PEP 440 `+label`: ignored by `==0.5.*`). */
export const STANDIN_LABEL = 'ctundemo';

/** On an image whose Python packages include stand-ins: which (`supervisor_console 0.5.0+ctundemo, …`). */
export const LABEL_PYTHON_STANDINS = 'io.ctun.python.standins';

/** One wheel made, as its file name says. */
export interface WheelFile {
  file: string;
  name: string;
  version: string;
}

export interface MadeWheels {
  dir: string;
  /** Every wheel file in `dir`, sorted. */
  files: string[];
  /** Repacked from Debian's packages. */
  fromDebian: WheelFile[];
  /** Made locally from ctun's stand-in sources (`+ctundemo`). */
  standins: WheelFile[];
}

export interface MakeWheelsOptions {
  /** Where the wheels go; created when missing, removed again when making them fails. */
  outDir: string;
  logger: Logger;
}

/** `supervisor-4.2.5-py3-none-any.whl` → name and version. */
export function parseWheelFile(file: string): WheelFile {
  const [name, version] = file.split('-');
  return { file, name: name ?? file, version: version ?? '' };
}

/** Says that a stand-in (not the real package) is in a list of wheel files. */
export function isStandinWheel(file: string): boolean {
  return parseWheelFile(file).version.endsWith(`+${STANDIN_LABEL}`);
}

/**
 * The plan with every image that installs stand-in wheels labelled
 * {@link LABEL_PYTHON_STANDINS}, so such an image is never taken for one with the real
 * packages. Pure: returns a new plan.
 */
export function labelStandinImages(plan: BuildPlan): BuildPlan {
  if (plan.python?.source !== 'wheels') return plan;
  const standins = plan.python.files.filter(isStandinWheel).map(parseWheelFile);
  if (!standins.length) return plan;
  const value = standins.map((w) => `${w.name} ${w.version}`).join(', ');
  return {
    ...plan,
    images: plan.images.map((step) => (step.context.some((f) => f.path === 'wheels') ? { ...step, labels: { ...step.labels, [LABEL_PYTHON_STANDINS]: value } } : step)),
  };
}

async function wheelsIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.whl')).sort();
}

/** Runs a host tool; a missing tool or a failure becomes a CtunError saying which and what to do. */
async function host(file: string, args: string[], what: string, hint: string, cwd?: string): Promise<string> {
  const r = await execa(file, args, { reject: false, all: true, ...(cwd ? { cwd } : {}) });
  if (r.exitCode === 0) return r.stdout;
  const missing = errnoCode(r.cause) === 'ENOENT' || (r.exitCode === undefined && /ENOENT/.test(String(r.cause ?? '')));
  if (missing) {
    throw new CtunError('TOOL_MISSING', `making the Python wheels needs ${file}, which this host does not have`, {
      hint: `install it (a Debian or Ubuntu host has it), or give a directory of wheels with --wheels DIR`,
      cause: r.cause,
    });
  }
  const tail = (r.all ?? '').trim().split('\n').slice(-6).join('\n');
  throw new CtunError('WHEELS_MAKE_FAILED', `${what} failed (exit ${r.exitCode}):\n${tail}`, { hint });
}

/** The two stand-ins (supervisor-console, supervisord-dependent-startup), built into `outDir`. */
export async function makeStandinWheels(outDir: string): Promise<WheelFile[]> {
  await mkdir(outDir, { recursive: true });
  const made: string[] = [];
  for (const source of (await readdir(STANDIN_SOURCES)).sort()) {
    const out = await host('python3', [MAKER, 'build', join(STANDIN_SOURCES, source), outDir], `building the stand-in wheel ${source}`, 'this is a bug in ctun: please report it with the output above');
    made.push(...out.split('\n').filter(Boolean));
  }
  return made.map((p) => parseWheelFile(p.split('/').pop()!));
}

/** supervisor, toposort and setuptools from this host's apt mirror, repacked into `outDir`. */
async function makeDebianWheels(outDir: string, work: string): Promise<WheelFile[]> {
  const debs = join(work, 'debs');
  const root = join(work, 'root');
  await mkdir(debs, { recursive: true });
  await host('apt-get', ['download', ...DEBIAN_WHEEL_PACKAGES], `apt-get download ${DEBIAN_WHEEL_PACKAGES.join(' ')}`, "refresh this host's package lists (sudo apt-get update) and check its apt mirror answers, or give a directory of wheels with --wheels DIR", debs);
  for (const deb of (await readdir(debs)).filter((f) => f.endsWith('.deb'))) {
    await host('dpkg-deb', ['-x', join(debs, deb), root], `unpacking ${deb}`, 'the downloaded package is damaged: run the command again');
  }
  const before = new Set(await wheelsIn(outDir));
  await host('python3', [MAKER, 'repack', join(root, 'usr/lib/python3/dist-packages'), outDir], 'repacking Debian\'s Python modules as wheels', 'this is a bug in ctun: please report it with the output above');
  // setuptools: Debian ships it as a wheel already (python3-setuptools-whl).
  const shipped = join(root, 'usr/share/python-wheels');
  for (const w of await readdir(shipped).catch(() => [] as string[])) {
    if (w.startsWith('setuptools-') && w.endsWith('.whl')) await cp(join(shipped, w), join(outDir, w));
  }
  return (await wheelsIn(outDir)).filter((f) => !before.has(f)).map(parseWheelFile);
}

/**
 * Makes the five wheels the simulator image needs (setuptools, supervisor 4.2.*,
 * toposort from the host's Debian mirror; the two stand-ins locally) in `outDir`,
 * and checks that they are exactly what the build asks for.
 */
export async function makeSeedWheels(o: MakeWheelsOptions): Promise<MadeWheels> {
  const existed = await readdir(o.outDir).then(
    () => true,
    () => false,
  );
  const work = await mkdtemp(join(tmpdir(), 'ctun-wheels-'));
  try {
    await mkdir(o.outDir, { recursive: true });
    const fromDebian = await makeDebianWheels(o.outDir, work);
    const standins = await makeStandinWheels(o.outDir);
    const files = await wheelsIn(o.outDir);
    const short = checkWheels(files);
    if (short.length) {
      throw new CtunError('WHEELS_MADE_SHORT', `the wheels made from this host's apt mirror lack: ${short.map((w) => `${w.name} ${w.version}${w.found.length ? ` (found ${w.found.join(', ')})` : ''}`).join('; ')}`, {
        hint: 'the mirror carries other versions than Debian 12 does; give a directory of wheels with --wheels DIR',
      });
    }
    o.logger.info('wheels-made', { dir: o.outDir, debian: fromDebian.map((w) => `${w.name} ${w.version}`).join(', '), standins: standins.map((w) => `${w.name} ${w.version}`).join(', ') });
    return { dir: o.outDir, files, fromDebian, standins };
  } catch (e) {
    // Nothing half-made stays behind: a folder we created goes again.
    if (!existed) await rm(o.outDir, { recursive: true, force: true });
    throw e;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A PEP 503 simple index over the wheels of `wheelsDir`, written to `root` (`root/simple/…`). */
export async function writeSimpleIndex(wheelsDir: string, root: string): Promise<void> {
  await host('python3', [MAKER, 'index', wheelsDir, root], `writing a pip index over ${wheelsDir}`, 'check that the folder holds wheels and the target is writable');
}
