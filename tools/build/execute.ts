import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Listr } from 'listr2';
import { CtunError, ExitCode, type Logger } from '../common/index.js';
import { createContextTar, type DockerEngine } from '../docker/index.js';
import { materializeContext } from './context.js';
import type { ProjectPaths } from './paths.js';
import type { BuildPlan, ImageStep } from './plan.js';
import { executeBasePlan, type BasePlan } from './base.js';
import { listrRendererOptions, type ProgressMode } from './progress.js';

export interface ExecuteOptions {
  docker: DockerEngine;
  logger: Logger;
  paths: ProjectPaths;
  /** Default `silent`: library callers get log lines, the CLI picks a renderer. */
  progress?: ProgressMode;
  /** For `json` progress: where lines go (default stdout). */
  progressWrite?: (line: string) => void;
  /** Where build contexts are assembled; default the OS temp dir. */
  tmpDir?: string;
}

export interface BuiltImage {
  id: string;
  tags: string[];
  imageId: string;
  seconds: number;
}

/**
 * Everything that can be checked before a build starts: the daemon, the base image
 * (pulled from --dockerRepository when given, else it must exist locally), and every
 * file the contexts copy. Each failure is a CtunError with what to do.
 */
export async function preflight(plan: BuildPlan, options: Pick<ExecuteOptions, 'docker' | 'logger'>): Promise<void> {
  const { docker, logger } = options;
  await docker.ping();
  if (!(await docker.imageExists(plan.base.image))) {
    if (plan.base.registry) {
      logger.info('pulling base image', { image: plan.base.image });
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
      const path = f.from.kind === 'file' || f.from.kind === 'dir' ? f.from.path : f.from.kind === 'bundle' ? f.from.entry : undefined;
      if (path === undefined) continue;
      await stat(path).catch((e: unknown) => {
        throw new CtunError('CONTEXT_FILE_MISSING', `${step.title} needs ${path}, which is missing`, {
          hint:
            path.includes('node_modules') || path.endsWith('.node')
              ? 'run `npm ci` in the checkout (it installs the pinned Node runtime and builds the TAP addon)'
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
    const context = await createContextTar(dir);
    const request = {
      context,
      tags: step.tags,
      extraHosts: step.extraHosts,
      noCache: step.noCache,
      ...(step.network ? { network: step.network } : {}),
    };
    const result = await options.docker.build(request, (e) => {
      if (e.type === 'step') onLine(`Step ${e.step.number}/${e.step.total} : ${e.step.instruction}`);
      else if (e.type === 'log') onLine(e.line);
    });
    const seconds = (Date.now() - started) / 1000;
    options.logger.info('image built', { image: step.tags[0], id: result.imageId.slice(0, 19), seconds });
    return { id: step.id, tags: step.tags, imageId: result.imageId, seconds };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Carries out a BuildPlan: preflight, then each image in order. */
export async function executeBuildPlan(plan: BuildPlan, options: ExecuteOptions): Promise<BuiltImage[]> {
  const built: BuiltImage[] = [];
  // listr2 shows a failure's first line; the caller gets the whole error (log tail).
  let failure: unknown;
  const firstLine = (e: unknown): Error => {
    failure = e;
    return new Error(String((e as Error)?.message ?? e).split('\n')[0]);
  };
  const list = new Listr(
    [
      {
        title: `check ${plan.base.image}, the daemon and the build inputs`,
        task: async () => preflight(plan, options).catch((e: unknown) => Promise.reject(firstLine(e))),
      },
      ...plan.images.map((step) => ({
        title: `build ${step.title}`,
        task: async (_ctx: unknown, task: { output: string; title: string }) => {
          const b = await buildImageStep(step, options, (line) => {
            task.output = line;
          }).catch((e: unknown) => Promise.reject(firstLine(e)));
          task.title = `build ${step.title} (${b.seconds.toFixed(1)} s)`;
          built.push(b);
        },
        rendererOptions: { bottomBar: 6 },
      })),
    ],
    { exitOnError: true, concurrent: false, ...listrRendererOptions(options.progress ?? 'silent', options.progressWrite) } as never,
  );
  try {
    await list.run();
  } catch (e) {
    throw failure ?? e;
  }
  return built;
}

/** Carries out a base plan with progress output. */
export async function executeBase(
  plan: BasePlan,
  options: Pick<ExecuteOptions, 'docker' | 'logger' | 'progress' | 'progressWrite' | 'tmpDir'>,
): Promise<{ imageId: string; tags: string[] }> {
  let result: { imageId: string; tags: string[] } | undefined;
  let failure: unknown;
  const title = `bootstrap ${plan.tags[0]} (${plan.release.suite}, ${plan.variant}) from ${plan.mirror.archive}`;
  const list = new Listr(
    [
      {
        title,
        task: async (_ctx: unknown, task: { output: string; title: string }) => {
          const started = Date.now();
          result = await executeBasePlan(plan, {
            docker: options.docker,
            logger: options.logger,
            ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
            onPhase: (phase) => {
              task.title = `${title}: ${phase}`;
            },
            onOutput: (line) => {
              task.output = line;
            },
          }).catch((e: unknown) => {
            failure = e;
            return Promise.reject(new Error(String((e as Error)?.message ?? e).split('\n')[0]));
          });
          task.title = `${title} (${((Date.now() - started) / 1000).toFixed(0)} s)`;
        },
        rendererOptions: { bottomBar: 6 },
      },
    ],
    { exitOnError: true, ...listrRendererOptions(options.progress ?? 'silent', options.progressWrite) } as never,
  );
  try {
    await list.run();
  } catch (e) {
    throw failure ?? e;
  }
  return result!;
}
