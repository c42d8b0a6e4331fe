/**
 * The images the deployments need, made through the build library when missing: a
 * base image bootstrapped from the host's apt mirror (no registry needed), the
 * stand-in simulator tarball, the simulator image, the one with the tunnel inside,
 * and the separate-mode tunnel server. Images that exist are reused (the same tags
 * the build's own tests make), so only the first run builds — unless an image that
 * carries the tunnel carries another one than this checkout's or install's (an older
 * ctun built it): then it is rebuilt, or the demo would show the old tunnel. The simulator image's
 * Python packages come from PyPI when it answers, else from wheels made for this run
 * from the host's Debian mirror (see python.ts).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CtunError, ExitCode, metadata, type Logger } from '../common/index.js';
import {
  checkoutTunnelDigest,
  EULA_LITERAL,
  executeBasePlan,
  executeBuildPlan,
  isStandinWheel,
  labelStandinImages,
  LABEL_TUNNEL_DIGEST,
  makeSeedWheels,
  parseVeosArgs,
  planBaseImage,
  planCtun,
  planVeos,
  prefixed,
  projectPaths,
  readAptSources,
  resolveVeosOptions,
  type BuildPlan,
  type MadeWheels,
  type ProjectPaths,
} from '../image/index.js';
import type { DockerEngine } from '../docker/index.js';
import { buildStandinTarball } from '../simulator/index.js';
import { choosePythonSource, pythonSourceFrom, type PythonDecision, type PythonSource } from './python.js';

export interface ImageSet {
  veos: string;
  veosCtun: string;
  separateServer: string;
}

/** The images of metadata.json. */
export const DEFAULT_IMAGES: ImageSet = {
  veos: metadata.images.veos,
  veosCtun: metadata.images.veosCtun,
  separateServer: metadata.images.separateServer,
};

/** The base image of the demo's builds (without a prefix). */
export const DEMO_BASE_IMAGE = 'debian:12';

/** Image name components: lower-case letters and digits, joined by `.`, `_`, `-`, and `/` between them. */
const PREFIX_PATTERN = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** A prefix Docker accepts in an image name, or a usage error saying what is wrong. */
export function checkImagePrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new CtunError('DEMO_BAD_IMAGE_PREFIX', `--imagePrefix "${prefix}" cannot start a Docker image name`, {
      hint: 'use lower-case letters, digits, and . _ - between them, / between parts, e.g. --imagePrefix ctun-fresh',
      exitCode: ExitCode.Usage,
    });
  }
}

/** The demo's images, each named `PREFIX/<name>` when a prefix is given. */
export function demoImages(imagePrefix?: string): ImageSet {
  const p = imagePrefix ? { tagPrefix: imagePrefix } : {};
  return { veos: prefixed(DEFAULT_IMAGES.veos, p), veosCtun: prefixed(DEFAULT_IMAGES.veosCtun, p), separateServer: prefixed(DEFAULT_IMAGES.separateServer, p) };
}

export interface EnsureImagesOptions {
  docker: DockerEngine;
  logger: Logger;
  /** Base image of the builds; default `debian:12` (with the prefix), bootstrapped from the host's apt mirror when missing. */
  baseImage?: string;
  /**
   * Names every image `PREFIX/<name>`, the base included: a set of its own that no
   * other run's images can stand in for (a cold run from nothing). Default none.
   */
  imagePrefix?: string;
  /** Directory of Python wheels for the simulator image; default `$CTUN_WHEELS`, else see `python`. */
  wheels?: string;
  /** Where the Python packages come from when no wheels are given; default `$CTUN_DEMO_PYTHON`, else `auto`. */
  python?: PythonSource;
  /** Answers whether PyPI answers (only asked for `auto`); default a bounded HTTPS probe. */
  probePypi?: () => Promise<boolean>;
  /** Where the stand-in tarball goes; default ~/.cache/ctun. */
  cacheDir?: string;
  /** The checkout or install whose tunnel and files go into the images; default this one. */
  paths?: ProjectPaths;
  /** Rebuild even when the images exist; default false. */
  rebuild?: boolean;
  /** Lines to keep: what is being done and each image built with its time. */
  onPhase?: (text: string) => void;
  /** Lines of progress inside a build (its current step); transient, for a live view. */
  onProgress?: (text: string) => void;
  /** Aborting it (Ctrl-C) stops the image build in progress and the ones after it. */
  signal?: AbortSignal;
}

export interface EnsuredImages {
  images: ImageSet;
  /** Which were built now (the rest were there), in order. */
  built: string[];
  /** Where the simulator image's Python packages came from, when it was built without given wheels. */
  python?: PythonDecision;
  seconds: number;
}

const seconds = (since: number): string => `${((Date.now() - since) / 1000).toFixed(0)} s`;

/** One line for where the Python packages came from. */
function pythonLine(d: PythonDecision, made?: MadeWheels): string {
  if (!made) return `Python packages: from PyPI (${d.reason})`;
  const list = (ws: MadeWheels['fromDebian']): string => ws.map((w) => `${w.name} ${w.version}`).join(', ');
  return `Python packages: ${d.reason}, so wheels made from this host's Debian mirror (${list(made.fromDebian)}) and the demo's own stand-ins (${list(made.standins)})`;
}

/** Makes every missing image, and every one whose tunnel is not this ctun's; returns which it built. */
export async function ensureImages(o: EnsureImagesOptions): Promise<EnsuredImages> {
  const started = Date.now();
  if (o.imagePrefix !== undefined) checkImagePrefix(o.imagePrefix);
  const images = demoImages(o.imagePrefix);
  const tagPrefix = o.imagePrefix ? { tagPrefix: o.imagePrefix } : {};
  const base = o.baseImage ?? prefixed(DEMO_BASE_IMAGE, tagPrefix);
  const paths = o.paths ?? projectPaths();
  const built: string[] = [];
  const phase = (t: string): void => o.onPhase?.(t);
  // Why an image that exists is built again (another tunnel), by tag; the rest are missing.
  const stale = new Map<string, string>();
  let ours: string | undefined;
  const needed = async (ref: string, carriesTunnel: boolean): Promise<boolean> => {
    if (o.rebuild === true) return true;
    const info = await o.docker.inspectImage(ref);
    if (!info) return true;
    if (!carriesTunnel) return false;
    ours ??= await checkoutTunnelDigest(paths);
    const theirs = info.labels[LABEL_TUNNEL_DIGEST];
    if (theirs === ours) return false;
    stale.set(ref, `rebuilding ${ref}: it carries another tunnel than this ctun (${theirs ? `${LABEL_TUNNEL_DIGEST} ${theirs.slice(0, 12)}, this ctun's ${ours.slice(0, 12)}` : 'no tunnel digest: built by an older ctun'})`);
    return true;
  };
  const need = {
    veos: await needed(images.veos, false),
    veosCtun: await needed(images.veosCtun, true),
    separateServer: await needed(images.separateServer, true),
  };
  const building = (ref: string): void => phase(stale.get(ref) ?? `building ${ref}`);
  const result: EnsuredImages = { images, built, seconds: 0 };
  if (!need.veos && !need.veosCtun && !need.separateServer) return { ...result, seconds: (Date.now() - started) / 1000 };

  await o.docker.ping();
  if (!(await o.docker.imageExists(base))) {
    const [name, version] = base.split('/').pop()!.split(':') as [string, string | undefined];
    phase(`bootstrapping ${base} from this host's apt mirror`);
    const t = Date.now();
    const plan = planBaseImage({ distro: name === 'ubuntu' ? 'ubuntu' : 'debian', ...(version ? { suite: version } : {}), tags: [base] }, await readAptSources());
    await executeBasePlan(plan, { docker: o.docker, logger: o.logger, onPhase: (p) => o.onProgress?.(`${base}: ${p}`), onOutput: (l) => o.onProgress?.(`${base}: ${l}`) });
    built.push(base);
    phase(`built ${base} (${seconds(t)})`);
  }
  const build = async (plan: BuildPlan): Promise<void> => {
    const done = await executeBuildPlan(plan, { docker: o.docker, logger: o.logger, paths, progress: 'json', progressWrite: (l) => forwardProgress(l, o.onProgress), ...(o.signal ? { signal: o.signal } : {}) });
    for (const b of done) {
      if (b.upToDate) continue;
      built.push(b.tags[0]!);
      phase(`built ${b.tags[0]} (${b.seconds.toFixed(0)} s)`);
    }
  };
  const common = { baseImage: base, ...tagPrefix };
  if (need.separateServer) {
    building(images.separateServer);
    await build(planCtun({ eula: EULA_LITERAL, ...common }, paths, ['separate-server']));
  }
  if (need.veos || need.veosCtun) {
    const cacheDir = o.cacheDir ?? join(homedir(), '.cache', 'ctun');
    await mkdir(cacheDir, { recursive: true });
    const tarball = await buildStandinTarball({ outDir: cacheDir });
    let wheels = o.wheels ?? process.env.CTUN_WHEELS;
    // Wheels made here live in a folder of this run only: nothing a later `ctun-build veos` reads.
    let scratch: string | undefined;
    try {
      if (!wheels) {
        const decision = await choosePythonSource(o.python ?? pythonSourceFrom(undefined), o.probePypi);
        result.python = decision;
        let made: MadeWheels | undefined;
        if (decision.source === 'debian') {
          scratch = await mkdtemp(join(tmpdir(), 'ctun-demo-wheels-'));
          made = await makeSeedWheels({ outDir: join(scratch, 'wheels'), logger: o.logger });
          wheels = made.dir;
        }
        phase(pythonLine(decision, made));
      }
      for (const [ref, installCtun] of [
        [DEFAULT_IMAGES.veos, false],
        [DEFAULT_IMAGES.veosCtun, true],
      ] as const) {
        const tagged = prefixed(ref, tagPrefix);
        if (!(installCtun ? need.veosCtun : need.veos)) continue;
        building(tagged);
        const options = await resolveVeosOptions(parseVeosArgs(['online', EULA_LITERAL, ref, tarball.path]), { installCtun, ...common, ...(wheels ? { wheels } : {}) });
        const plan = planVeos(options, paths);
        await build(options.wheels?.files.some(isStandinWheel) ? labelStandinImages(plan) : plan);
      }
    } finally {
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }
  }
  return { ...result, seconds: (Date.now() - started) / 1000 };
}

/** JSON progress of a build → its output lines (`build X: Step 3/11 : RUN …`) for a live view. */
function forwardProgress(line: string, onProgress: ((t: string) => void) | undefined): void {
  if (!onProgress) return;
  try {
    const e = JSON.parse(line) as { task?: string; event?: string; line?: string };
    if (e.event === 'output' && e.line) onProgress(`${e.task?.replace(/^build /, '') ?? ''}: ${e.line}`);
  } catch {
    // not a progress record: nothing to show
  }
}
