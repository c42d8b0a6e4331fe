import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CtunError, ExitCode, type Logger } from '../../common/index.js';
import { createContextTar, type DockerEngine, type ImageFileReader } from '../../docker/index.js';
import type { ProjectPaths } from '../paths.js';
import type { BuildPlan, ImageStep } from '../plan.js';
import { readImageInventory } from './inventory.js';
import { makeSbom, summarizeSbom, SBOM_EXTENSION, type SbomInputs, type SbomSummary } from './sbom.js';
import { makeSpdx, summarizeSpdx } from './spdx.js';

/**
 * Where an image's SBOM lives. It is made at build time, as the step after each image
 * (only then are the build's inputs known: the tarball's digest, the wheels, the
 * pinned Node), from the built image's own files; it is written INTO the image as one
 * small last layer, and two labels point at it and pin its digest. So the SBOM
 * travels with the image wherever it goes (docker save, a registry, a bundle), and
 * whoever has the image can check that file against the label.
 */
export const LABEL_SBOM = 'io.ctun.sbom';
export const LABEL_SBOM_SHA256 = 'io.ctun.sbom.sha256';
export const IMAGE_SBOM_DIR = '/usr/share/ctun/sbom';

/** The SBOM file of a plan step inside its image (one per step: an image FROM another keeps the other's). */
export function imageSbomPath(stepId: string): string {
  return `${IMAGE_SBOM_DIR}/${stepId}${SBOM_EXTENSION}`;
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** `node_modules/x` → version, from the lock file the bundle was made from (absent in an install). */
async function lockVersions(root: string): Promise<Record<string, string> | undefined> {
  try {
    const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as { packages?: Record<string, { version?: string }> };
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(lock.packages ?? {})) if (k && v.version) out[k] = v.version;
    return out;
  } catch {
    return undefined;
  }
}

/** What the plan knows about a step's inputs that its image's files do not say. */
export async function sbomInputsOf(plan: BuildPlan, step: ImageStep, paths: ProjectPaths): Promise<SbomInputs> {
  const inputs: SbomInputs = {};
  const isVeos = plan.command === 'veos' && step.context.some((f) => f.path === 'veos/simulator.tar.gz');
  if (isVeos && plan.tarball) inputs.tarball = { name: basename(plan.tarball.path), sha256: await fileSha256(plan.tarball.path) };
  const python = plan.python;
  if (isVeos && python) {
    inputs.python = python.source === 'index' ? { indexUrl: python.indexUrl } : { wheels: python.files.map((f) => pathToFileURL(join(python.dir, basename(f))).href) };
  }
  const carriesRuntime = plan.command === 'ctun' || plan.runtime !== undefined;
  if (carriesRuntime) {
    const v = await promisify(execFile)(paths.nodeBinary, ['--version']).then((r) => r.stdout.trim(), () => undefined);
    if (v) inputs.nodeVersion = v;
    const versions = await lockVersions(paths.root);
    if (versions) inputs.npmVersions = versions;
  }
  return inputs;
}

export interface ImageSbom {
  json: string;
  sha256: string;
  summary: SbomSummary;
  /** Where it came from: the file the image's label points at, or made from the image now. */
  origin: 'label' | 'made-now';
}

/**
 * Adds the SBOM of a built image to it (same tags). Nothing is done when the image
 * already carries its step's SBOM (a warm rebuild found it up to date).
 */
export async function stampSbom(options: {
  docker: DockerEngine;
  files: ImageFileReader;
  logger: Logger;
  image: string;
  tags: string[];
  stepId: string;
  inputs: SbomInputs;
  tmpDir?: string;
}): Promise<ImageSbom & { imageId: string; stamped: boolean }> {
  const { docker, image } = options;
  const info = await docker.inspectImage(image);
  if (!info) throw new CtunError('IMAGE_MISSING', `the image ${image} does not exist`, { exitCode: ExitCode.Usage });
  const path = imageSbomPath(options.stepId);
  if (info.labels[LABEL_SBOM] === path && info.labels[LABEL_SBOM_SHA256]) {
    const existing = await readImageSbom(docker, options.files, image);
    return { ...existing, imageId: info.id, stamped: false };
  }
  const json = makeSbom(image, await readImageInventory(options.files, image), options.inputs);
  const sha256 = sha256Hex(json);
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'ctun-sbom-'));
  try {
    await writeFile(join(dir, 'sbom.json'), json);
    await writeFile(join(dir, 'Dockerfile'), `FROM ${info.id}\nCOPY sbom.json ${path}\nLABEL ${LABEL_SBOM}="${path}" ${LABEL_SBOM_SHA256}="${sha256}"\n`);
    const built = await docker.build({ context: await createContextTar(dir), tags: options.tags });
    const summary = summarizeSbom(json);
    options.logger.info('sbom-added', { image, sha256: sha256.slice(0, 16), deb: summary.deb, python: summary.python, npm: summary.npm });
    return { json, sha256, summary, origin: 'label', imageId: built.imageId, stamped: true };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The SBOM of an image: the file its label points at (checked against the label's
 * digest), or — for an image ctun-build did not make — one made from its files now.
 */
export async function readImageSbom(docker: DockerEngine, files: ImageFileReader, image: string): Promise<ImageSbom> {
  const info = await docker.inspectImage(image);
  if (!info) throw new CtunError('IMAGE_MISSING', `the image ${image} does not exist`, { hint: 'docker images lists what there is; build or load it first', exitCode: ExitCode.Usage });
  const path = info.labels[LABEL_SBOM];
  const want = info.labels[LABEL_SBOM_SHA256];
  if (path && want) {
    const got = (await files.read(image, [path])).get(path);
    if (!got) throw new CtunError('SBOM_MISSING', `${image} names its SBOM ${path} (label ${LABEL_SBOM}), but the image has no such file`, { hint: 'build the image again with ctun-build', exitCode: ExitCode.Failure });
    const sha256 = sha256Hex(got);
    if (sha256 !== want) {
      throw new CtunError('SBOM_MISMATCH', `the SBOM ${path} in ${image} has sha256 ${sha256.slice(0, 16)}…, its label ${LABEL_SBOM_SHA256} says ${want.slice(0, 16)}…`, { hint: 'the image was changed after it was built; build it again with ctun-build', exitCode: ExitCode.Failure });
    }
    const json = got.toString('utf8');
    return { json, sha256, summary: summarizeSbom(json), origin: 'label' };
  }
  const json = makeSbom(image, await readImageInventory(files, image));
  return { json, sha256: sha256Hex(json), summary: summarizeSbom(json), origin: 'made-now' };
}

/** The formats `ctun-build sbom` prints; the one stored in images and bundles is CycloneDX. */
export const SBOM_FORMATS = ['cyclonedx', 'spdx'] as const;
export type SbomFormat = (typeof SBOM_FORMATS)[number];

/**
 * The SBOM of an image in the format asked for. SPDX is converted from the CycloneDX
 * one readImageSbom returns (the stored file, checked against its label, or one made
 * now), dated by the image's creation time: the same image gives the same bytes.
 */
export async function readImageSbomAs(docker: DockerEngine, files: ImageFileReader, image: string, format: SbomFormat): Promise<ImageSbom> {
  const cdx = await readImageSbom(docker, files, image);
  if (format === 'cyclonedx') return cdx;
  const info = await docker.inspectImage(image);
  if (!info) throw new CtunError('IMAGE_MISSING', `the image ${image} does not exist`, { hint: 'docker images lists what there is; build or load it first', exitCode: ExitCode.Usage });
  const json = makeSpdx(cdx.json, { created: info.created });
  return { json, sha256: sha256Hex(json), summary: summarizeSpdx(json), origin: cdx.origin };
}

/**
 * The build step after an image: its SBOM, added to it. Skipped for the tunnel runtime,
 * an intermediate image the others copy /opt/ctun from (their SBOMs list what it
 * brings), and when no file reader is at hand (the in-memory twin). Returns the
 * image's id afterwards.
 */
export async function sbomStep(
  plan: BuildPlan,
  step: ImageStep,
  built: { imageId: string },
  options: { docker: DockerEngine; logger: Logger; paths: ProjectPaths; imageFiles?: ImageFileReader | false; tmpDir?: string },
): Promise<{ imageId: string; sbom?: ImageSbom }> {
  const files = options.imageFiles === false ? undefined : (options.imageFiles ?? options.docker.imageFiles);
  if (!files || plan.runtime?.image === step.tags[0]) return { imageId: built.imageId };
  const r = await stampSbom({
    docker: options.docker,
    files,
    logger: options.logger,
    image: step.tags[0]!,
    tags: step.tags,
    stepId: step.id,
    inputs: await sbomInputsOf(plan, step, options.paths),
    ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
  });
  return { imageId: r.imageId, sbom: r };
}
