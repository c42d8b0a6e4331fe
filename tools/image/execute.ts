import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CtunError, ExitCode, type Logger } from '../common/index.js';
import { createContextTar, type DockerEngine } from '../docker/index.js';
import { materializeContext } from './context.js';
import { missingInputHint, type ProjectPaths } from './paths.js';
import type { BuildPlan, ImageStep } from './plan.js';
import { executeBasePlan, type BasePlan } from './base.js';
import { runSteps, type ProgressMode, type Step } from '../steps/index.js';
import { gpgShowKeys, readPublicKey } from './keys.js';
import { checkSources, httpProber, registryProbe, sourceProbes, type Prober } from './sources.js';
import { sbomStep } from './supply/index.js';
import { LABEL_TUNNEL_DIGEST, stepTunnelDigest } from './tunnel-digest.js';
import type { ImageFileReader } from '../docker/index.js';

export interface ExecuteOptions {
  docker: DockerEngine;
  logger: Logger;
  paths: ProjectPaths;
  /** Default `silent`: library callers get log lines, the CLI picks a renderer. */
  progress?: ProgressMode;
  /** Where progress lines go, without their newline (default stdout). */
  progressWrite?: (line: string) => void;
  /** Aborting it (Ctrl-C) stops the build in progress and the ones after it. */
  signal?: AbortSignal;
  /** Where build contexts are assembled; default the OS temp dir. */
  tmpDir?: string;
  /** How sources are asked in preflight; default HTTP with a 5 s bound. */
  prober?: Prober;
  /**
   * Reads the built images' files for their SBOMs (added to each image after its
   * build); default the real engine's reader, none for the in-memory twin; `false`: no SBOMs.
   */
  imageFiles?: ImageFileReader | false;
}

export interface BuiltImage {
  id: string;
  tags: string[];
  imageId: string;
  seconds: number;
  /** True when the image already matched the context digest and no build ran. */
  upToDate: boolean;
}

export const LABEL_CONTEXT_DIGEST = 'io.ctun.context-digest';

// Files above this size are identified by size, mtime and inode instead of being read:
// the 100+ MB Node binary from `npm ci` changes only when it is reinstalled.
const HASH_LIMIT = 16 * 1024 * 1024;

/**
 * A digest of everything a build depends on: every context file (path, mode, content)
 * and the ids of the images its FROM lines name. When an image carries the same
 * digest, building again could only reproduce it, so the build is skipped; this is
 * what keeps a warm rebuild from shipping the large runtime context each time.
 * Undefined when the Dockerfile fetches from a URL (ADD http…), which no digest covers.
 */
export async function contextDigest(dir: string, docker: DockerEngine): Promise<string | undefined> {
  const dockerfile = await readFile(join(dir, 'Dockerfile'), 'utf8');
  if (/^\s*ADD\s+https?:/im.test(dockerfile)) return undefined;
  const hash = createHash('sha256');
  for (const m of dockerfile.matchAll(/^\s*FROM\s+(\S+)/gim)) {
    const ref = m[1]!;
    if (ref === 'scratch') continue;
    const info = await docker.inspectImage(ref);
    hash.update(`from ${ref} ${info?.id ?? 'missing'}\n`);
  }
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await stat(join(dir, path));
      if (st.isDirectory()) {
        await walk(path);
        continue;
      }
      hash.update(`file ${path} ${(st.mode & 0o777).toString(8)} ${st.size}\n`);
      if (st.size > HASH_LIMIT) {
        hash.update(`identity ${st.ino} ${st.mtimeMs}\n`);
        continue;
      }
      for await (const chunk of createReadStream(join(dir, path))) hash.update(chunk as Buffer);
    }
  };
  await walk('');
  return hash.digest('hex').slice(0, 32);
}

/**
 * Everything that can be checked before a build starts: the daemon, the base image
 * (pulled from --dockerRepository when given, else it must exist locally), and every
 * file the contexts copy. Each failure is a CtunError with what to do.
 */
export async function preflight(
  plan: BuildPlan,
  options: Pick<ExecuteOptions, 'docker' | 'logger' | 'prober'>,
): Promise<void> {
  const { docker, logger } = options;
  const prober = options.prober ?? httpProber();
  await docker.ping();
  if (plan.network) {
    const net = await docker.findNetwork(plan.network);
    if (!net) {
      throw new CtunError('BUILD_NETWORK_MISSING', `the build network ${plan.network} does not exist`, {
        hint: `create it, e.g. docker network create --internal ${plan.network}, with the mirrors attached to it`,
        exitCode: ExitCode.Usage,
      });
    }
    if (!net.internal) logger.warn('build-network-not-internal', { network: plan.network, reason: 'steps may reach beyond the given sources' });
  }
  // The key before the servers: a wrong file is a mistake made here, not on the network.
  // A key file given is checked even when this tarball needs no .NET.
  if (plan.dotnet && !/^https?:\/\//.test(plan.dotnet.key)) {
    const key = await readPublicKey(plan.dotnet.key);
    const fprs = await gpgShowKeys(plan.dotnet.key);
    logger.info('dotnet-feed-key', { file: key.path, armored: key.armored, uid: key.userIds[0] ?? '', fingerprint: fprs?.[0] ?? 'gpg not installed' });
  }
  await checkSources(sourceProbes(plan), prober);
  if (!(await docker.imageExists(plan.base.image))) {
    if (plan.base.registry) {
      await checkSources([registryProbe(plan.base.registry)], prober);
      logger.info('base-image-pulling', { image: plan.base.image });
      await docker.pullImage(plan.base.image);
    } else {
      throw new CtunError('BASE_IMAGE_MISSING', `the base image ${plan.base.image} does not exist locally and no --dockerRepository was given to pull it from`, {
        hint: `make it from an apt mirror: ${plan.base.makeWith}`,
        exitCode: ExitCode.Failure,
      });
    }
  }
  for (const step of plan.images) {
    for (const f of step.context) {
      const path = f.from.kind === 'file' || f.from.kind === 'dir' || f.from.kind === 'keyring' ? f.from.path : f.from.kind === 'bundle' ? f.from.entry : undefined;
      if (path === undefined) continue;
      await stat(path).catch((e: unknown) => {
        throw new CtunError('CONTEXT_FILE_MISSING', `${step.title} needs ${path}, which is missing`, {
          hint:
            path.includes('node_modules') || path.endsWith('.node')
              ? missingInputHint()
              : 'check the path given',
          cause: e,
        });
      });
    }
  }
}

/** Builds one image step: assemble its context in a temp dir, tar it, build, clean up. */
export async function buildImageStep(
  step: ImageStep,
  options: ExecuteOptions,
  onLine: (line: string) => void = () => {},
): Promise<BuiltImage> {
  const started = Date.now();
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), `ctun-context-${step.id}-`));
  try {
    await materializeContext(step, options.paths, dir);
    // Labelled before the context digest is taken: an image of the same context but
    // without the label (built by an older ctun) is then not up to date, and is rebuilt once.
    const tunnel = await stepTunnelDigest(step, dir, options.docker);
    if (tunnel !== undefined) await appendFile(join(dir, 'Dockerfile'), `LABEL ${LABEL_TUNNEL_DIGEST}="${tunnel}"\n`);
    const digest = await contextDigest(dir, options.docker);
    if (digest !== undefined) {
      const existing = step.noCache ? undefined : await options.docker.inspectImage(step.tags[0]!);
      if (existing && existing.labels[LABEL_CONTEXT_DIGEST] === digest && (await allTagged(options.docker, step.tags, existing.id))) {
        const seconds = (Date.now() - started) / 1000;
        onLine(`up to date (${LABEL_CONTEXT_DIGEST}=${digest})`);
        options.logger.info('image-up-to-date', { image: step.tags[0], id: existing.id.slice(0, 19), seconds });
        return { id: step.id, tags: step.tags, imageId: existing.id, seconds, upToDate: true };
      }
      await appendFile(join(dir, 'Dockerfile'), `LABEL ${LABEL_CONTEXT_DIGEST}="${digest}"\n`);
    }
    const context = await createContextTar(dir);
    const request = {
      context,
      tags: step.tags,
      extraHosts: step.extraHosts,
      noCache: step.noCache,
      ...(step.network ? { network: step.network } : {}),
      ...(step.buildArgs ? { buildArgs: step.buildArgs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    };
    const result = await options.docker.build(request, (e) => {
      if (e.type === 'step') onLine(`Step ${e.step.number}/${e.step.total} : ${e.step.instruction}`);
      else if (e.type === 'log') onLine(e.line);
    });
    const seconds = (Date.now() - started) / 1000;
    options.logger.info('image-built', { image: step.tags[0], id: result.imageId.slice(0, 19), seconds });
    return { id: step.id, tags: step.tags, imageId: result.imageId, seconds, upToDate: false };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function allTagged(docker: DockerEngine, tags: string[], id: string): Promise<boolean> {
  for (const t of tags) if ((await docker.inspectImage(t))?.id !== id) return false;
  return true;
}

/** The step runner's options for a build's progress mode, output and signal. */
function stepOptions(options: Pick<ExecuteOptions, 'logger' | 'progress' | 'progressWrite' | 'signal'>) {
  return {
    progress: options.progress ?? 'silent',
    logger: options.logger,
    ...(options.progressWrite ? { writeLine: options.progressWrite } : {}),
    ...(options.signal ? { signal: options.signal, interruptedWhile: 'building' } : {}),
  };
}

/** Carries out a BuildPlan: preflight, then each image in order. */
export async function executeBuildPlan(plan: BuildPlan, options: ExecuteOptions): Promise<BuiltImage[]> {
  const built: BuiltImage[] = [];
  const steps: Step[] = [
    { title: `check ${plan.base.image}, the daemon and the build inputs`, run: () => preflight(plan, options) },
    ...plan.images.map(
      (step): Step => ({
        title: `build ${step.title}`,
        run: async (ctx) => {
          const b = await buildImageStep(step, options, ctx.progress);
          const s = await sbomStep(plan, step, b, options);
          built.push({ ...b, imageId: s.imageId });
          return b.upToDate ? '(up to date)' : undefined;
        },
      }),
    ),
  ];
  await runSteps(steps, stepOptions(options));
  return built;
}

/** Carries out a base plan with progress output. */
export async function executeBase(
  plan: BasePlan,
  options: Pick<ExecuteOptions, 'docker' | 'logger' | 'progress' | 'progressWrite' | 'tmpDir' | 'signal'>,
): Promise<{ imageId: string; tags: string[] }> {
  let result: { imageId: string; tags: string[] } | undefined;
  const title = `bootstrap ${plan.tags[0]} (${plan.release.suite}, ${plan.variant}) from ${plan.mirror.archive}`;
  const step: Step = {
    title,
    run: async (ctx) => {
      result = await executeBasePlan(plan, {
        docker: options.docker,
        logger: options.logger,
        ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
        onPhase: (phase) => ctx.progress(phase),
        onOutput: (line) => ctx.progress(line),
      });
    },
  };
  await runSteps([step], stepOptions(options));
  return result!;
}
