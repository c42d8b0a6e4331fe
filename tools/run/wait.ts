import { CtunError, ExitCode } from '../common/index.js';
import type { RunEngine } from './engine.js';
import { failureInLog, logTail } from './errors.js';
import type { ReadySpec } from './plan.js';

/**
 * Waits are explicit and bounded: a container is ready when every readiness line has
 * appeared in its log; it has failed when its log shows a known failure or it exits.
 * The error says what was awaited, for how long, and what the log said.
 */
export interface WaitReadyOptions {
  engine: RunEngine;
  /** Container id. */
  id: string;
  /** Container name, for messages. */
  name: string;
  ready: ReadySpec[];
  timeoutMs: number;
  signal?: AbortSignal;
  /** How often the container's state is checked; default 500 ms. */
  pollMs?: number;
  /** Each complete line of the log as it comes. */
  onLine?: (line: string) => void;
}

export class InterruptedError extends CtunError {
  constructor(what: string) {
    super('INTERRUPTED', `interrupted while ${what}; everything started was removed`, { exitCode: ExitCode.Interrupted });
  }
}

/** Resolves with the log so far once every pattern matched a complete line. */
export async function waitReady(o: WaitReadyOptions): Promise<string> {
  const patterns = o.ready.map((r) => ({ ...r, re: new RegExp(r.pattern, 'm') }));
  const what = patterns.map((p) => p.what).join(' and ');
  let log = '';
  let emitted = 0;
  let settle: ((e?: Error) => void) | undefined;
  const done = new Promise<void>((resolve, reject) => {
    settle = (e) => (e ? reject(e) : resolve());
  });
  const complete = (): string => log.slice(0, log.lastIndexOf('\n') + 1);
  const check = (): void => {
    const text = complete();
    if (o.onLine && text.length > emitted) {
      for (const line of text.slice(emitted).split('\n')) if (line !== '') o.onLine(line);
      emitted = text.length;
    }
    const failure = failureInLog(text, o.name);
    if (failure) {
      settle?.(new CtunError(failure.code, failure.message, { hint: failure.hint, exitCode: failure.exitCode }));
      return;
    }
    if (patterns.every((p) => p.re.test(text))) settle?.();
  };
  const started = Date.now();
  const timer = setTimeout(() => {
    const missing = patterns.filter((p) => !p.re.test(complete())).map((p) => `${p.what} (/${p.pattern}/)`);
    settle?.(
      new CtunError('READY_TIMEOUT', `waited ${Math.round(o.timeoutMs / 1000)} s for ${missing.join(' and ')} in container ${o.name}; its log:\n${logTail(log) || '  | (empty)'}`, {
        hint: `see docker logs ${o.name}; a slow host may need a longer --timeout`,
      }),
    );
  }, o.timeoutMs);
  const onAbort = (): void => settle?.(new InterruptedError(`waiting for ${what} in ${o.name}`));
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  // The log stream ends when the container stops; polling catches a container that
  // exits before its log is even followed.
  let polling = true;
  const poll = async (): Promise<void> => {
    while (polling) {
      await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
      if (!polling) return;
      const info = await o.engine.findContainer(o.id).catch(() => undefined);
      if (!info || info.state === 'exited' || info.state === 'dead') {
        // Give the log stream a moment to deliver the last lines before judging.
        await new Promise((r) => setTimeout(r, 200));
        log += log.endsWith('\n') || log === '' ? '' : '\n';
        check();
        settle?.(
          new CtunError(
            'CONTAINER_EXITED',
            `container ${o.name} ${info ? `exited with code ${info.exitCode}` : 'disappeared'} before ${what} became ready (after ${((Date.now() - started) / 1000).toFixed(1)} s); its log:\n${logTail(log) || '  | (empty)'}`,
            { hint: `see docker logs ${o.name}` },
          ),
        );
        return;
      }
    }
  };
  void poll();
  const following = o.engine.followLogs(o.id, (t) => {
    log += t;
    check();
  });
  try {
    // Raced with the bounds, so a daemon that never answers cannot hold the wait.
    await Promise.race([following, done]);
    check();
    await done;
    return complete();
  } finally {
    polling = false;
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
    // Also when the log stream only comes after the wait has ended.
    following.then((f) => f.stop()).catch(() => undefined);
  }
}
