import { Listr } from 'listr2';
import { CtunError, ExitCode, type Logger } from '../common/index.js';
import { listrRendererOptions, type ProgressMode } from './progress.js';

/**
 * The one step runner: builds (`ctun-build`), deployments (`ctun-run`) and the demo
 * are lists of steps run in order, shown in a progress mode, stopped by an abort
 * signal (Ctrl-C), and undone in reverse order when one fails or is interrupted.
 * A step registers an undo for each thing it makes, as soon as it has made it, so a
 * step that fails halfway leaves nothing behind either.
 */

/** Ctrl-C (or SIGTERM) arrived: everything started was undone. Exit code 130. */
export class InterruptedError extends CtunError {
  constructor(what: string) {
    super('INTERRUPTED', `interrupted while ${what}; everything started was removed`, { exitCode: ExitCode.Interrupted });
  }
}

export interface StepContext {
  /** A result line, kept in the output (`  · line` in plain logs, below the title on a terminal). */
  say(line: string): void;
  /** A live line (a build's current step): shown while the step runs; in plain logs only with `plainProgress`. */
  progress(line: string): void;
  /** The run's abort signal: pass it on to waits and builds. */
  signal: AbortSignal;
  /** Throws {@link InterruptedError} when the run was aborted (before something slow or irreversible). */
  checkAborted(what: string): void;
  /**
   * Registers how to undo what the step just made. Undone newest first when a step
   * fails or the run is aborted, or by {@link StepsRun.undo}; each one runs once.
   * `keep`: survives a failure when `keepOnFailure` is set, and `undo({ keep: true })`.
   */
  onUndo(undo: () => Promise<void>, options?: { keep?: boolean }): void;
}

export interface Step {
  title: string;
  /** Does the step; may return a suffix for its title line, e.g. `(cached)`. */
  run(ctx: StepContext): Promise<string | void>;
}

export interface RunStepsOptions {
  /** `tty` listr2, `plain` one line per event, `json` listr2's events as JSON lines, `silent` nothing. */
  progress: ProgressMode;
  logger: Logger;
  /** Where each output line goes, without its newline; default stdout. */
  writeLine?: (line: string) => void;
  /** Aborting it stops the run before the next step (and inside steps that pass it on) and undoes. */
  signal?: AbortSignal;
  /** What an abort interrupted, for its message; default `running <the step's title>`. */
  interruptedWhile?: string;
  /** Plain logs carry the live lines too; default true (a build log keeps every line). */
  plainProgress?: boolean;
  /** After a failure (not an abort), leave the undos registered with `keep`; default false. */
  keepOnFailure?: boolean;
}

/** A finished run: what it made stays until {@link StepsRun.undo}. */
export interface StepsRun {
  /** Undoes newest first; `keep: true` leaves those registered with `keep`. Nothing is undone twice. */
  undo(options?: { keep?: boolean }): Promise<void>;
}

interface UndoEntry {
  keep: boolean;
  fn: () => Promise<void>;
}

const seconds = (started: number): string => `(${((Date.now() - started) / 1000).toFixed(1)} s)`;
const firstLine = (e: unknown): string => String((e as Error)?.message ?? e).split('\n')[0]!;

/**
 * Runs `steps` in order. On success returns the run (its undos pending); on a failure
 * or an abort undoes everything (see `keepOnFailure`) and rethrows — an abort as
 * {@link InterruptedError}, whatever the interrupted step threw.
 */
export async function runSteps(steps: Step[], options: RunStepsOptions): Promise<StepsRun> {
  const signal = options.signal ?? new AbortController().signal;
  const writeLine = options.writeLine ?? ((l: string) => void process.stdout.write(l + '\n'));
  const pending: UndoEntry[] = [];
  const undo = async (o: { keep?: boolean } = {}): Promise<void> => {
    const kept: UndoEntry[] = [];
    // Taken off the list before running: an undo that fails is not tried again.
    for (let u = pending.pop(); u; u = pending.pop()) {
      if (o.keep && u.keep) {
        kept.unshift(u);
        continue;
      }
      await u.fn().catch((e: unknown) => options.logger.warn('undo-failed', { error: firstLine(e) }));
    }
    pending.push(...kept);
  };
  const interrupted = (title: string): InterruptedError => new InterruptedError(options.interruptedWhile ?? `running ${title}`);
  const contextFor = (say: (l: string) => void, progress: (l: string) => void): StepContext => ({
    say,
    progress,
    signal,
    checkAborted: (what) => {
      if (signal.aborted) throw new InterruptedError(what);
    },
    onUndo: (fn, o = {}) => void pending.push({ keep: o.keep ?? false, fn }),
  });
  const show = renderer(options.progress, writeLine, options.plainProgress ?? true);
  let current = '';
  try {
    for (const step of steps) {
      current = step.title;
      if (signal.aborted) throw interrupted(step.title);
      options.logger.debug('step', { step: step.title });
      await show(step, (say, progress) => step.run(contextFor(say, progress)));
    }
    if (signal.aborted) throw interrupted(current);
  } catch (e) {
    const aborted = signal.aborted;
    await undo({ keep: !aborted && options.keepOnFailure === true });
    throw aborted && !(e instanceof InterruptedError) ? interrupted(current) : e;
  }
  return { undo };
}

type Body = (say: (l: string) => void, progress: (l: string) => void) => Promise<string | void>;

/** How one step is shown while it runs, per progress mode. */
function renderer(mode: ProgressMode, writeLine: (l: string) => void, plainProgress: boolean): (step: Step, body: Body) => Promise<void> {
  if (mode === 'silent') {
    return async (_step, body) => void (await body(() => undefined, () => undefined));
  }
  if (mode === 'plain') {
    // `▶ title`, `  · result`, `✔ title (1.2 s)`: good for logs and tests.
    return async (step, body) => {
      const started = Date.now();
      writeLine(`▶ ${step.title}`);
      try {
        const suffix = await body(
          (l) => writeLine(`  · ${l}`),
          plainProgress ? (l) => writeLine(`    ${l}`) : () => undefined,
        );
        writeLine(`✔ ${step.title}${suffix ? ` ${suffix}` : ''} ${seconds(started)}`);
      } catch (e) {
        writeLine(`✖ ${step.title}: ${firstLine(e)}`);
        throw e;
      }
    };
  }
  // tty and json: one short listr2 run per step (on a terminal a small live region that
  // never outgrows the screen), its results printed for good below it.
  return async (step, body) => {
    const lines: string[] = [];
    // listr2 shows a failure's first line; the caller gets the whole error (log tail).
    let failure: unknown;
    const list = new Listr(
      [
        {
          title: step.title,
          task: async (_ctx: unknown, task: { output: string; title: string }) => {
            const started = Date.now();
            const suffix = await body(
              (l) => {
                lines.push(l);
                task.output = l;
              },
              (l) => {
                task.output = l;
              },
            ).catch((e: unknown) => {
              failure = e;
              throw new Error(firstLine(e));
            });
            task.title = `${step.title}${suffix ? ` ${suffix}` : ''} ${seconds(started)}`;
          },
          rendererOptions: { persistentOutput: false, outputBar: 1, bottomBar: 1 },
        },
      ],
      // listr2's own SIGINT handler exits at once; the caller's undoes first.
      { exitOnError: true, registerSignalListeners: false, ...listrRendererOptions(mode, writeLine) } as never,
    );
    try {
      await list.run();
    } catch (e) {
      throw failure ?? e;
    } finally {
      if (mode === 'tty') for (const l of lines) writeLine(`    ${l}`);
    }
  };
}
