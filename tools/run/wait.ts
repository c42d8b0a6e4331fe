import { CtunError, ExitCode } from '../common/index.js';
import type { DockerEngine } from '../docker/index.js';
import { InterruptedError } from '../steps/index.js';
import { failureInLog, logTail } from './errors.js';
import type { ReadySpec } from './plan.js';
import type { ProbeOutcome } from './probe.js';

/**
 * Waits are explicit and bounded: a container is ready when every port it must open
 * accepts (probed from where its deployment's traffic comes) and every log line asked
 * for has appeared; it has failed when its log shows a known failure or it exits. The
 * error says what was awaited, where it was probed from, for how long, and what the
 * log said.
 */
export type PortReady = Extract<ReadySpec, { kind: 'port' }>;
type LogReady = Exclude<ReadySpec, PortReady>;

/** One probe attempt of a port spec; `where` says in messages what was asked from where. */
export type PortProber = (spec: PortReady) => Promise<ProbeOutcome & { where: string }>;

export interface WaitReadyOptions {
  engine: DockerEngine;
  /** Container id. */
  id: string;
  /** Container name, for messages. */
  name: string;
  ready: ReadySpec[];
  timeoutMs: number;
  /** Probes a port spec once; needed when `ready` holds port specs. */
  probe?: PortProber;
  signal?: AbortSignal;
  /** How often the container's state is checked and ports probed; default 500 ms. */
  pollMs?: number;
  /** Each complete line of the log as it comes. */
  onLine?: (line: string) => void;
}

/**
 * `the simulator accepting on TCP 27027` — the awaited thing; a log spec with its
 * pattern for messages, without it for step titles.
 */
export function describeReady(spec: ReadySpec, withPattern = true): string {
  if (spec.kind === 'port') return `${spec.what} accepting on ${spec.protocol.toUpperCase()} ${spec.port}`;
  return withPattern ? `${spec.what} (/${spec.pattern}/ in its log)` : spec.what;
}

/** Resolves with the log so far once every port accepted and every pattern matched a complete line. */
export async function waitReady(o: WaitReadyOptions): Promise<string> {
  const logs = o.ready.filter((r): r is LogReady => r.kind !== 'port').map((r) => ({ ...r, re: new RegExp(r.pattern, 'm') }));
  const ports = o.ready.filter((r): r is PortReady => r.kind === 'port').map((spec) => ({ spec, open: false, attempts: 0, last: 'not probed yet', where: '' }));
  if (ports.length && !o.probe) throw new Error('waitReady: port specs need a probe');
  const what = [...new Set(o.ready.map((r) => r.what))].join(' and ');
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
    if (logs.every((p) => p.re.test(text)) && ports.every((p) => p.open)) settle?.();
  };
  const started = Date.now();
  const timer = setTimeout(() => {
    const missing = [
      ...ports.filter((p) => !p.open).map((p) => `${describeReady(p.spec)} (${p.where || 'probe'}: ${p.attempts} attempt${p.attempts === 1 ? '' : 's'}, last ${p.last})`),
      ...logs.filter((p) => !p.re.test(complete())).map((p) => describeReady(p)),
    ];
    const portHint = ports.some((p) => !p.open)
      ? `; a simulator that listens elsewhere: --readyPort tcp:N (the ports it opens once it serves)`
      : '';
    settle?.(
      new CtunError('READY_TIMEOUT', `waited ${Math.round(o.timeoutMs / 1000)} s for ${missing.join(' and ')} in container ${o.name}; its log:\n${logTail(log) || '  | (empty)'}`, {
        hint: `see docker logs ${o.name}; a slow host may need a longer --timeout${portHint}`,
      }),
    );
  }, o.timeoutMs);
  const onAbort = (): void => settle?.(new InterruptedError(`waiting for ${what} in ${o.name}`));
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  // The log stream ends when the container stops; polling catches a container that
  // exits before its log is even followed, and asks the ports that are not open yet.
  let polling = true;
  const poll = async (): Promise<void> => {
    while (polling) {
      const info = await o.engine.findContainer(o.id).catch(() => undefined);
      if (!polling) return;
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
      if (info.state === 'running') {
        for (const p of ports.filter((x) => !x.open)) {
          const r: Awaited<ReturnType<PortProber>> = await o.probe!(p.spec).catch((e: unknown) => ({ open: false as const, reason: (e as Error).message, where: p.where }));
          if (!polling) return;
          p.attempts++;
          p.where = r.where;
          if (r.open) p.open = true;
          else p.last = r.reason;
          if (!r.open && r.unprobeable) {
            // Waiting longer cannot help: say so now rather than after --timeout.
            settle?.(
              new CtunError('PROBE_UNAVAILABLE', `cannot tell whether ${describeReady(p.spec)}: probing ${r.where}: ${r.reason}`, {
                hint: 'the probe runs with the tunnel\'s runtime; for the integrated deployment use an image built with ctun-build veos … --installCtun yes',
                exitCode: ExitCode.Usage,
              }),
            );
            return;
          }
        }
        check();
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
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
