/**
 * A child process whose output can be awaited: the one way the demo, the tests and the
 * benchmarks run a long-lived program (a tunnel end, a probe server, iperf3, the
 * stand-in simulator) and wait until it says it is ready. Every wait is bounded and
 * its error says what was awaited, for how long, and what the process said instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CtunError } from '../common/index.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcOptions {
  /** Keep only about this many characters of output (long benchmark runs); default: everything. */
  maxOutputChars?: number;
}

export interface WaitOptions {
  /** Search the combined output from this offset (a mark taken before a signal); default 0. */
  from?: number;
  /** Search one stream only; default both (their combined output). */
  stream?: 'stdout' | 'stderr';
}

export interface StartOptions extends ProcOptions {
  /** Run inside this network namespace (`ip netns exec` execs the program, so the pid is the program's). */
  netns?: string;
  /** Variables added to the environment. */
  env?: Record<string, string>;
  /** Start from PATH and HOME only instead of this process's environment (a developer's variables must not leak in); default false. */
  isolateEnv?: boolean;
  /** Names the process in errors; default the command line. */
  label?: string;
}

/** How much of the output an error message quotes: its tail, where the reason usually is. */
const QUOTED_OUTPUT_CHARS = 8000;
/** After `exit`, how long to wait for the pipes to drain before treating the process as ended (a grandchild may hold them). */
const DRAIN_AFTER_EXIT_MS = 500;
/** /proc/<pid>/stat counts CPU time in clock ticks; Linux's USER_HZ is 100 on every architecture we run on. */
const CLK_TCK = 100;

/** Starts `file args` with its output captured. */
export function startProcess(file: string, args: string[], options: StartOptions = {}): Proc {
  const argv = options.netns ? ['ip', ['netns', 'exec', options.netns, file, ...args]] as const : [file, args] as const;
  const base: NodeJS.ProcessEnv = options.isolateEnv ? isolatedEnv() : process.env;
  const child = spawn(argv[0], [...argv[1]], { env: { ...base, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const label = options.label ?? `${options.netns ? `${options.netns}: ` : ''}${[file, ...args].join(' ')}`;
  return new Proc(child, label, options);
}

function isolatedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  if (process.env['HOME'] !== undefined) env['HOME'] = process.env['HOME'];
  return env;
}

/** A running child process; wraps one that is already spawned with piped stdout and stderr. */
export class Proc {
  /** stdout and stderr as they arrived, interleaved. */
  output = '';
  /** Resolves with the exit code once the process has ended and its output is read. */
  readonly exited: Promise<number | null>;
  private readonly ended: Promise<Exit>;
  private exit: Exit | undefined;
  private readonly streams = { stdout: '', stderr: '' };
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
    private readonly options: ProcOptions = {},
  ) {
    const onData = (stream: 'stdout' | 'stderr') => (d: Buffer) => {
      const text = d.toString();
      this.streams[stream] = this.trim(this.streams[stream] + text);
      this.output = this.trim(this.output + text);
      this.notify();
    };
    child.stdout?.on('data', onData('stdout'));
    child.stderr?.on('data', onData('stderr'));
    this.ended = new Promise<Exit>((resolve) => {
      let drainTimer: NodeJS.Timeout | undefined;
      const end = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.exit) return;
        clearTimeout(drainTimer);
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      };
      child.once('close', end);
      child.once('exit', (code, signal) => {
        drainTimer = setTimeout(() => end(code, signal), DRAIN_AFTER_EXIT_MS);
        drainTimer.unref();
      });
      // A program that cannot be started (ENOENT) ends here, with no exit code.
      child.once('error', (e) => {
        this.output += `${e.message}\n`;
        if (child.pid === undefined) end(null, null);
      });
    });
    this.exited = this.ended.then((e) => e.code);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Running: not yet exited (its output may still be arriving after it has). */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.exit === undefined;
  }

  stdout(): string {
    return this.streams.stdout;
  }

  stderr(): string {
    return this.streams.stderr;
  }

  /**
   * Waits until the output matches `pattern` and returns the match. Rejects when the
   * process ends first or after `timeoutMs`, quoting what it printed. `from` may be a
   * number (an offset into `output`) or options.
   */
  waitFor(pattern: RegExp, timeoutMs = 5000, from: number | WaitOptions = 0): Promise<string> {
    const o: WaitOptions = typeof from === 'number' ? { from } : from;
    // A global pattern carries lastIndex between calls; a fresh one without `g` searches from the start each time.
    const re = new RegExp(pattern.source, pattern.flags.replace('g', ''));
    const text = (): string => (o.stream ? this.streams[o.stream] : this.output).slice(o.from ?? 0);
    const where = o.stream ? ` on ${o.stream}` : '';
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(text());
        if (m) return settle(() => resolve(m[0]));
        if (this.exit) {
          settle(() =>
            reject(new CtunError('PROCESS_EXITED', `${this.label} exited (${describeExit(this.exit!)}) before printing ${pattern}${where}; output was:\n${this.quote()}`)),
          );
        }
      };
      const timer = setTimeout(
        () => settle(() => reject(new CtunError('PROCESS_WAIT_TIMEOUT', `waited ${timeoutMs} ms for ${pattern}${where} from ${this.label}; output was:\n${this.quote()}`))),
        timeoutMs,
      );
      const settle = (fn: () => void): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        fn();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits (bounded) for the process to end; resolves with its exit code and signal. */
  waitExit(timeoutMs = 5000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CtunError('PROCESS_STILL_RUNNING', `${this.label} still running after ${timeoutMs} ms; output was:\n${this.quote()}`)), timeoutMs);
    });
    return Promise.race([this.ended, late]).finally(() => clearTimeout(timer));
  }

  /** Sends a signal to this process (by its PID, nothing else). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.alive) this.child.kill(signal);
  }

  /**
   * Stops the process: SIGTERM, SIGKILL after `graceMs`, and gives up with an error when
   * even that has not ended it within `killWaitMs` more. Resolves with the exit code.
   */
  async stop(graceMs = 3000, killWaitMs = 2000): Promise<number | null> {
    if (!this.alive) return (await this.ended).code;
    this.child.kill('SIGTERM');
    const term = await this.waitExit(graceMs).catch(() => undefined);
    if (term) return term.code;
    this.child.kill('SIGKILL');
    const killed = await this.waitExit(killWaitMs).catch(() => undefined);
    if (killed) return killed.code;
    throw new CtunError('PROCESS_UNKILLABLE', `${this.label} (pid ${this.pid}) did not end within ${killWaitMs} ms of SIGKILL`, {
      hint: `look at it with: ps -o pid,stat,wchan,cmd -p ${this.pid}`,
    });
  }

  /** utime+stime of the process (all its threads), in seconds; NaN once it is gone. */
  cpuSeconds(): number {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    } catch {
      return NaN;
    }
  }

  /**
   * Read and write system calls the process made so far (/proc/<pid>/io syscr, syscw:
   * read/readv/pread and write/writev/pwrite, not socket sendmsg/recvmsg), all its
   * threads; NaN once it is gone.
   */
  ioCalls(): { reads: number; writes: number } {
    try {
      const io = readFileSync(`/proc/${this.pid}/io`, 'utf8');
      const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN);
      return { reads: field('syscr'), writes: field('syscw') };
    } catch {
      return { reads: NaN, writes: NaN };
    }
  }

  /**
   * The main thread (a Node program's event loop): its time on a CPU in seconds
   * (/proc/<pid>/schedstat, to the nanosecond) and how often it went to sleep
   * (voluntary_ctxt_switches); NaN once it is gone.
   */
  mainThread(): { cpuSeconds: number; sleeps: number } {
    try {
      const runNs = Number(readFileSync(`/proc/${this.pid}/schedstat`, 'utf8').split(' ')[0]);
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      return { cpuSeconds: runNs / 1e9, sleeps: Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? NaN) };
    } catch {
      return { cpuSeconds: NaN, sleeps: NaN };
    }
  }

  /** Peak resident set (VmHWM) in MiB: private memory plus the mapped code of the binary. */
  peakRssMiB(): number {
    return this.statusMiB('VmHWM');
  }

  /** Resident set now (VmRSS) in MiB. */
  rssMiB(): number {
    return this.statusMiB('VmRSS');
  }

  /**
   * Private resident memory now (RssAnon) in MiB: what this process alone costs, without
   * the pages of its executable (shared by every process of that binary).
   */
  privateMiB(): number {
    return this.statusMiB('RssAnon');
  }

  private statusMiB(field: string): number {
    try {
      const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : NaN;
    } catch {
      return NaN;
    }
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private trim(text: string): string {
    const max = this.options.maxOutputChars;
    return max !== undefined && text.length > max ? text.slice(-Math.floor(max / 2)) : text;
  }

  private quote(): string {
    return this.output.length > QUOTED_OUTPUT_CHARS ? `…${this.output.slice(-QUOTED_OUTPUT_CHARS)}` : this.output;
  }
}

function describeExit(e: Exit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}
