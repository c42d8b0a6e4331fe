/**
 * The benchmark's own little network: two namespaces joined by a veth, processes
 * started inside them, and one cleanup list that undoes everything — on success, on
 * error and on Ctrl-C. Names carry a per-run prefix, so leftovers never collide.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';

const CLK_TCK = 100;

/** Runs a command with a bounded time; throws with its output on failure. */
export async function run(file: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await execa(file, args, { timeout: timeoutMs, reject: false, all: true });
  if (r.exitCode !== 0 || r.timedOut) {
    throw new Error(`${file} ${args.join(' ')} ${r.timedOut ? `timed out after ${timeoutMs} ms` : `exited ${r.exitCode}`}:\n${r.all ?? ''}`);
  }
  return r.stdout;
}

/** A long-running process in a namespace whose output can be awaited. */
export class Proc {
  output = '';
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    const onData = (d: Buffer): void => {
      this.output += d.toString();
      if (this.output.length > 1 << 20) this.output = this.output.slice(-(1 << 19));
      for (const w of this.waiters) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => child.on('exit', (code) => {
      for (const w of this.waiters) w();
      resolve(code);
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(this.output)) return done(undefined);
        if (!this.alive) return done(new Error(`${this.label} exited before printing ${pattern}:\n${this.output}`));
      };
      const timer = setTimeout(() => done(new Error(`waited ${timeoutMs} ms for ${pattern} from ${this.label}; output was:\n${this.output}`)), timeoutMs);
      const done = (e: Error | undefined): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        if (e) reject(e);
        else resolve();
      };
      this.waiters.push(check);
      check();
    });
  }

  /** utime+stime of the process (all its threads), in seconds. */
  cpuSeconds(): number {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    } catch {
      return NaN;
    }
  }

  /** Peak resident set (VmHWM) in MiB: private memory plus the mapped code of the binary. */
  peakRssMiB(): number {
    return this.statusMiB('VmHWM');
  }

  /**
   * Private resident memory now (RssAnon) in MiB: what this process alone costs, without
   * the pages of its executable (shared by every process of that binary). Read right
   * after full rate.
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

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(timer);
  }
}

export class Lab {
  readonly prefix = `cb${(process.pid % 46656).toString(36)}`;
  private readonly namespaces: string[] = [];
  private readonly procs = new Set<Proc>();
  private readonly cleanups: Array<() => Promise<unknown>> = [];

  async netns(role: string): Promise<string> {
    const name = `${this.prefix}-${role}`;
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth between two namespaces; returns the interface names. */
  async veth(a: string, aCidr: string, b: string, bCidr: string): Promise<[string, string]> {
    const ia = `${this.prefix}a`;
    const ib = `${this.prefix}b`;
    await run('ip', ['link', 'add', ia, 'netns', a, 'type', 'veth', 'peer', 'name', ib, 'netns', b]);
    await run('ip', ['-n', a, 'addr', 'add', aCidr, 'dev', ia]);
    await run('ip', ['-n', b, 'addr', 'add', bCidr, 'dev', ib]);
    await run('ip', ['-n', a, 'link', 'set', ia, 'up']);
    await run('ip', ['-n', b, 'link', 'set', ib, 'up']);
    return [ia, ib];
  }

  exec(ns: string, file: string, args: string[], timeoutMs = 30_000): Promise<string> {
    return run('ip', ['netns', 'exec', ns, file, ...args], timeoutMs);
  }

  /** Starts a process in a namespace (`ip netns exec` execs it, so the pid is the program's). */
  spawn(ns: string, file: string, args: string[], label = `${ns}: ${file}`): Proc {
    const child = spawn('ip', ['netns', 'exec', ns, file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new Proc(child, label);
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** Stops every process started here except `keep` (a scenario that failed half-way leaves none behind). */
  async stopAllExcept(keep: Proc[]): Promise<void> {
    await Promise.all([...this.procs].filter((p) => !keep.includes(p)).map((p) => p.stop().catch(() => {})));
  }

  onCleanup(fn: () => Promise<unknown>): void {
    this.cleanups.push(fn);
  }

  /** Stops every process started here and deletes every namespace (their veths, TAPs and VXLANs go with them). */
  async dispose(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.stop().catch(() => {})));
    for (const fn of this.cleanups.splice(0).reverse()) await fn().catch(() => {});
    for (const ns of this.namespaces.splice(0).reverse()) {
      await execa('ip', ['netns', 'del', ns], { reject: false, timeout: 10_000 });
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
