import { describe, expect, it } from 'vitest';
import { createMemoryLogger, CtunError } from '../common/index.js';
import { InterruptedError, runSteps, type RunStepsOptions, type Step } from './runner.js';

/**
 * An in-memory step list: each step records that it ran and registers one undo per
 * thing it "makes"; the journal says what happened, in order.
 */
function world() {
  const journal: string[] = [];
  const make =
    (name: string, things: Array<string | { name: string; keep: boolean }>, then?: () => void | Promise<void>): Step['run'] =>
    async (ctx) => {
      journal.push(`run ${name}`);
      for (const t of things) {
        const thing = typeof t === 'string' ? { name: t, keep: false } : t;
        journal.push(`make ${thing.name}`);
        ctx.onUndo(async () => void journal.push(`undo ${thing.name}`), { keep: thing.keep });
      }
      await then?.();
    };
  const lines: string[] = [];
  const logger = createMemoryLogger();
  const options = (o: Partial<RunStepsOptions> = {}): RunStepsOptions => ({ progress: 'plain', logger, writeLine: (l) => lines.push(l), ...o });
  return { journal, make, lines, logger, options };
}

describe('the step runner', () => {
  it('runs the steps in order and prints each as ▶ / · / ✔ with its time; nothing is undone until asked', async () => {
    const w = world();
    const steps: Step[] = [
      { title: 'first', run: w.make('first', ['a']) },
      {
        title: 'second',
        run: async (ctx) => {
          await w.make('second', ['b', 'c'])(ctx);
          ctx.say('a result');
          ctx.progress('a live line');
          return '(cached)';
        },
      },
    ];
    const run = await runSteps(steps, w.options());
    expect(w.journal).toEqual(['run first', 'make a', 'run second', 'make b', 'make c']);
    expect(w.lines.map((l) => l.replace(/\(\d+\.\d s\)$/, '(T)'))).toEqual([
      '▶ first',
      '✔ first (T)',
      '▶ second',
      '  · a result',
      '    a live line',
      '✔ second (cached) (T)',
    ]);
    await run.undo();
    expect(w.journal.slice(5)).toEqual(['undo c', 'undo b', 'undo a']);
  });

  it('a failing step: the steps after it do not run, everything made is undone newest first (its own half too), the error goes up as it was', async () => {
    const w = world();
    const boom = new CtunError('BUILD_STEP_FAILED', 'the second step failed\nwith a log tail');
    const steps: Step[] = [
      { title: 'first', run: w.make('first', ['a', 'b']) },
      { title: 'second', run: w.make('second', ['c'], () => Promise.reject(boom)) },
      { title: 'third', run: w.make('third', ['d']) },
    ];
    await expect(runSteps(steps, w.options())).rejects.toBe(boom);
    expect(w.journal).toEqual(['run first', 'make a', 'make b', 'run second', 'make c', 'undo c', 'undo b', 'undo a']);
    expect(w.lines.at(-1)).toBe('✖ second: the second step failed');
  });

  it('an abort inside a step: InterruptedError (exit 130) saying what was interrupted, everything undone newest first, no later step', async () => {
    const w = world();
    const controller = new AbortController();
    const steps: Step[] = [
      { title: 'first', run: w.make('first', ['a']) },
      // Aborted while it runs (Ctrl-C during a build): the step itself ends normally.
      { title: 'second', run: w.make('second', ['b'], () => controller.abort()) },
      { title: 'third', run: w.make('third', ['c']) },
    ];
    const error = await runSteps(steps, w.options({ signal: controller.signal, interruptedWhile: 'starting the deployment' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InterruptedError);
    expect(error).toMatchObject({ code: 'INTERRUPTED', exitCode: 130, message: 'interrupted while starting the deployment; everything started was removed' });
    expect(w.journal).toEqual(['run first', 'make a', 'run second', 'make b', 'undo b', 'undo a']);
  });

  it('an abort between steps, inside a step that checks the signal, or one that makes a step throw its own error: always InterruptedError', async () => {
    const w = world();
    const controller = new AbortController();
    const steps: Step[] = [
      { title: 'first', run: w.make('first', ['a'], () => controller.abort()) },
      {
        title: 'second',
        run: async () => {
          throw new Error('the build stream was closed');
        },
      },
    ];
    // Aborted between steps: the second never starts (the message names the step it stopped at).
    await expect(runSteps(steps, w.options({ signal: controller.signal }))).rejects.toMatchObject({ message: 'interrupted while running second; everything started was removed' });
    expect(w.journal).toEqual(['run first', 'make a', 'undo a']);

    const v = world();
    const inside = new AbortController();
    const failing: Step[] = [
      {
        title: 'build',
        run: async (ctx) => {
          ctx.onUndo(async () => void v.journal.push('undo context'));
          inside.abort();
          ctx.checkAborted('building the image');
        },
      },
    ];
    await expect(runSteps(failing, v.options({ signal: inside.signal, interruptedWhile: 'running the demo' }))).rejects.toMatchObject({
      message: 'interrupted while building the image; everything started was removed',
    });
    // Ctrl-C closes a build's stream: the step fails with the stream's error, the run says it was interrupted.
    const closed = new AbortController();
    const thrown: Step[] = [
      {
        title: 'build',
        run: async () => {
          v.journal.push('run build');
          closed.abort();
          throw new Error('socket hang up');
        },
      },
    ];
    await expect(runSteps(thrown, v.options({ signal: closed.signal, interruptedWhile: 'running the demo' }))).rejects.toMatchObject({
      code: 'INTERRUPTED',
      message: 'interrupted while running the demo; everything started was removed',
    });
    expect(v.journal).toEqual(['undo context', 'run build']);
  });

  it('nothing is undone twice: a second undo finds nothing, an undo that fails is logged and not retried', async () => {
    const w = world();
    const steps: Step[] = [
      { title: 'first', run: w.make('first', ['a']) },
      {
        title: 'second',
        run: async (ctx) => {
          ctx.onUndo(async () => {
            w.journal.push('undo broken');
            throw new Error('device busy');
          });
          await w.make('second', ['b'])(ctx);
        },
      },
    ];
    const run = await runSteps(steps, w.options());
    await run.undo();
    await run.undo();
    expect(w.journal).toEqual(['run first', 'make a', 'run second', 'make b', 'undo b', 'undo broken', 'undo a']);
    expect(w.logger.lines.filter((l) => l.level === 'warn')).toEqual([{ level: 'warn', event: 'undo-failed', fields: { error: 'device busy' } }]);
  });

  it('keep: undo({keep}) leaves the kept things for a later undo; after a failure keepOnFailure keeps them, an abort does not', async () => {
    const w = world();
    const steps: Step[] = [{ title: 'deploy', run: w.make('deploy', [{ name: 'license', keep: true }, 'pc', { name: 'deployment', keep: true }, 'client']) }];
    const run = await runSteps(steps, w.options());
    await run.undo({ keep: true });
    expect(w.journal.slice(5)).toEqual(['undo client', 'undo pc']);
    await run.undo();
    expect(w.journal.slice(7)).toEqual(['undo deployment', 'undo license']);

    const f = world();
    const failing: Step[] = [
      { title: 'deploy', run: f.make('deploy', [{ name: 'deployment', keep: true }, 'client']) },
      { title: 'talk', run: () => Promise.reject(new Error('no answer')) },
    ];
    await expect(runSteps(failing, f.options({ keepOnFailure: true }))).rejects.toThrow('no answer');
    expect(f.journal).toEqual(['run deploy', 'make deployment', 'make client', 'undo client']);

    const a = world();
    const controller = new AbortController();
    const aborted: Step[] = [{ title: 'deploy', run: a.make('deploy', [{ name: 'deployment', keep: true }, 'client'], () => controller.abort()) }];
    await expect(runSteps(aborted, a.options({ keepOnFailure: true, signal: controller.signal }))).rejects.toBeInstanceOf(InterruptedError);
    expect(a.journal).toEqual(['run deploy', 'make deployment', 'make client', 'undo client', 'undo deployment']);
  });

  it('progress modes: plain without plainProgress keeps only results, silent prints nothing, json prints listr2 events per step', async () => {
    const step = (name: string): Step => ({
      title: name,
      run: async (ctx) => {
        ctx.progress('Step 1/2 : FROM debian:12');
        ctx.say(`${name} done`);
      },
    });
    const plain = world();
    await runSteps([step('build a')], plain.options({ plainProgress: false }));
    expect(plain.lines.map((l) => l.replace(/\(\d+\.\d s\)$/, '(T)'))).toEqual(['▶ build a', '  · build a done', '✔ build a (T)']);

    const silent = world();
    await runSteps([step('build a')], silent.options({ progress: 'silent' }));
    expect(silent.lines).toEqual([]);

    const json = world();
    await runSteps([step('build a'), step('build b')], json.options({ progress: 'json' }));
    const events = json.lines.map((l) => JSON.parse(l) as { task?: string; event: string; state?: string; line?: string; ok?: boolean });
    expect(events.filter((e) => e.event === 'state' && e.state === 'COMPLETED').map((e) => e.task?.replace(/\(\d+\.\d s\)$/, '(T)'))).toEqual(['build a (T)', 'build b (T)']);
    expect(events.filter((e) => e.event === 'output').map((e) => e.line)).toEqual(['Step 1/2 : FROM debian:12', 'build a done', 'Step 1/2 : FROM debian:12', 'build b done']);
    expect(events.at(-1)).toMatchObject({ event: 'end', ok: true });
  });

  it('json: a failure shows its first line in the events and the whole error goes up', async () => {
    const w = world();
    const failure = new CtunError('BUILD_STEP_FAILED', 'build b failed at step 3\nlog tail line 1\nlog tail line 2');
    const steps: Step[] = [{ title: 'build b', run: () => Promise.reject(failure) }];
    await expect(runSteps(steps, w.options({ progress: 'json' }))).rejects.toBe(failure);
    const events = w.lines.map((l) => JSON.parse(l) as { event: string; error?: string; ok?: boolean });
    expect(events.at(-1)).toMatchObject({ event: 'end', ok: false, error: 'build b failed at step 3' });
  });
});
