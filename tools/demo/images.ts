/**
 * The images the deployments need, made through the build library when missing: a
 * base image bootstrapped from the host's apt mirror (no registry needed), the
 * stand-in simulator tarball, the simulator image, the one with the tunnel inside,
 * and the separate-mode tunnel server. Images that exist are reused (the same tags
 * the build's own tests make), so only the first run builds.
 */
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { metadata, type Logger } from '../common/index.js';
import {
  EULA_LITERAL,
  executeBase,
  executeBuildPlan,
  parseVeosArgs,
  planBaseImage,
  planCtun,
  planVeos,
  projectPaths,
  readAptSources,
  resolveVeosOptions,
  type ProgressMode,
} from '../build/index.js';
import type { DockerEngine } from '../docker/index.js';
import { buildStandinTarball } from '../simulator/index.js';

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

export interface EnsureImagesOptions {
  docker: DockerEngine;
  logger: Logger;
  /** Base image of the builds; default `debian:12`, bootstrapped from the host's apt mirror when missing. */
  baseImage?: string;
  /** Directory of Python wheels for the simulator image (sites without PyPI); default `$CTUN_WHEELS`, else PyPI. */
  wheels?: string;
  /** Where the stand-in tarball goes; default ~/.cache/ctun. */
  cacheDir?: string;
  /** Rebuild even when the images exist; default false. */
  rebuild?: boolean;
  /** Progress of the builds themselves; default silent. */
  progress?: ProgressMode;
  images?: ImageSet;
  /** Called with what is being done, for progress lines. */
  onPhase?: (text: string) => void;
}

export interface EnsuredImages {
  images: ImageSet;
  /** Which were built now (the rest were there). */
  built: string[];
  seconds: number;
}

/** Makes every missing image; returns which it built. */
export async function ensureImages(o: EnsureImagesOptions): Promise<EnsuredImages> {
  const started = Date.now();
  const images = o.images ?? DEFAULT_IMAGES;
  const base = o.baseImage ?? 'debian:12';
  const paths = projectPaths();
  const built: string[] = [];
  const phase = (t: string): void => o.onPhase?.(t);
  const missing = async (ref: string): Promise<boolean> => o.rebuild === true || !(await o.docker.imageExists(ref));
  const need = {
    veos: await missing(images.veos),
    veosCtun: await missing(images.veosCtun),
    separateServer: await missing(images.separateServer),
  };
  if (!need.veos && !need.veosCtun && !need.separateServer) return { images, built, seconds: (Date.now() - started) / 1000 };

  await o.docker.ping();
  if (!(await o.docker.imageExists(base))) {
    const [distro, version] = base.split(':') as [string, string | undefined];
    phase(`bootstrapping the base image ${base} from this host's apt mirror`);
    const plan = planBaseImage(
      { distro: distro === 'ubuntu' ? 'ubuntu' : 'debian', ...(version ? { suite: version } : {}), tags: [base] },
      await readAptSources(),
    );
    await executeBase(plan, { docker: o.docker, logger: o.logger, progress: o.progress ?? 'silent' });
    built.push(base);
  }
  const common = { baseImage: base };
  const exec = { docker: o.docker, logger: o.logger, paths, progress: o.progress ?? ('silent' as const) };
  if (need.separateServer) {
    phase(`building ${images.separateServer}`);
    const plan = planCtun({ eula: EULA_LITERAL, ...common }, paths, ['separate-server']);
    await executeBuildPlan(plan, exec);
    if (images.separateServer !== metadata.images.separateServer) await o.docker.tagImage(metadata.images.separateServer, images.separateServer);
    built.push(images.separateServer);
  }
  if (need.veos || need.veosCtun) {
    const cacheDir = o.cacheDir ?? join(homedir(), '.cache', 'ctun');
    await mkdir(cacheDir, { recursive: true });
    phase('writing the stand-in simulator tarball');
    const tarball = await buildStandinTarball({ outDir: cacheDir });
    const wheels = o.wheels ?? process.env.CTUN_WHEELS;
    for (const [ref, installCtun] of [
      [images.veos, false],
      [images.veosCtun, true],
    ] as const) {
      if (!(installCtun ? need.veosCtun : need.veos)) continue;
      phase(`building ${ref}`);
      const options = await resolveVeosOptions(parseVeosArgs(['online', EULA_LITERAL, ref, tarball.path]), {
        installCtun,
        ...common,
        ...(wheels ? { wheels } : {}),
      });
      await executeBuildPlan(planVeos(options, paths), exec);
      built.push(ref);
    }
  }
  return { images, built, seconds: (Date.now() - started) / 1000 };
}
