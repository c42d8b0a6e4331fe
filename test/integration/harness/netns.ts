/**
 * Real network namespaces for tunnel tests: each test builds its own little network
 * (namespaces joined by veth), runs the real `ctun` CLI and real probes inside, and
 * tears everything down afterwards. Names carry the test process id, so parallel runs
 * and leftovers of a crashed run never collide.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const NODE = `${ROOT}node_modules/.bin/node`;
export const CTUN = `${ROOT}bin/ctun.js`;
const PROBE = `${ROOT}test/fixtures/netprobe.mjs`;

/** Why integration tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces and TAP devices';
  return undefined;
}

let counter = 0;
const tag = (process.pid % 10000).toString(36);

export class Netns {
  readonly name: string;
  private constructor(name: string) {
    this.name = name;
  }

  static async create(role: string): Promise<Netns> {
    const name = `ct${tag}-${role}`.slice(0, 14) + (counter++).toString(36);
    await execa('ip', ['netns', 'add', name]);
    await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return new Netns(name);
  }

  async ip(...args: string[]): Promise<string> {
    return (await execa('ip', ['-n', this.name, ...args])).stdout;
  }

  exec(file: string, args: string[], options: { reject?: boolean; timeout?: number } = {}) {
    return execa('ip', ['netns', 'exec', this.name, file, ...args], { reject: options.reject ?? true, timeout: options.timeout ?? 30_000 });
  }

  /** Runs the real ctun CLI here and waits for it to exit. */
  ctun(args: string[], options: { reject?: boolean; timeout?: number } = {}) {
    return this.exec(NODE, [CTUN, ...args], options);
  }

  /** Starts a long-running ctun here (server or client). */
  spawnCtun(args: string[]): Daemon {
    return new Daemon(spawn('ip', ['netns', 'exec', this.name, NODE, CTUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), `${this.name}: ctun ${args.join(' ')}`);
  }

  /** Runs a probe to completion and returns its JSON line. */
  async probe(...args: string[]): Promise<{ ok: boolean; [k: string]: unknown }> {
    const r = await this.exec(NODE, [PROBE, ...args], { reject: false, timeout: 20_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(last);
    } catch {
      return { ok: false, error: `probe printed: ${r.stdout} ${r.stderr}` };
    }
  }

  /** Starts a probe server (tcp-server, udp-server, udp-listen) and waits for its first line. */
  async startProbe(...args: string[]): Promise<{ daemon: Daemon; first: Record<string, unknown> }> {
    const daemon = new Daemon(spawn('ip', ['netns', 'exec', this.name, NODE, PROBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), `probe ${args.join(' ')}`);
    const line = await daemon.waitFor(/^\{.*\}$/m, 10_000);
    return { daemon, first: JSON.parse(line) };
  }

  async ping(address: string, count = 3): Promise<boolean> {
    const r = await this.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '2', address], { reject: false });
    return r.exitCode === 0;
  }

  /** Pings every 0.1 s until the first reply (true), or gives up after `deadlineS` seconds (false). */
  async pingUntilReply(address: string, deadlineS = 15): Promise<boolean> {
    const r = await this.exec('ping', ['-c', '1', '-i', '0.1', '-w', String(deadlineS), address], { reject: false, timeout: (deadlineS + 5) * 1000 });
    return r.exitCode === 0;
  }

  async ifindex(dev: string): Promise<number> {
    const [link] = JSON.parse(await this.ip('-j', 'link', 'show', 'dev', dev)) as Array<{ ifindex: number }>;
    return link!.ifindex;
  }

  async destroy(): Promise<void> {
    await execa('ip', ['netns', 'del', this.name], { reject: false });
  }
}

/** Joins two namespaces with a veth pair and addresses both ends. */
export async function link(a: Netns, aCidr: string, b: Netns, bCidr: string): Promise<void> {
  const ia = `v${a.name.slice(-6)}${counter}`;
  const ib = `w${b.name.slice(-6)}${counter++}`;
  await execa('ip', ['link', 'add', ia, 'netns', a.name, 'type', 'veth', 'peer', 'name', ib, 'netns', b.name]);
  await a.ip('addr', 'add', aCidr, 'dev', ia);
  await b.ip('addr', 'add', bCidr, 'dev', ib);
  await a.ip('link', 'set', ia, 'up');
  await b.ip('link', 'set', ib, 'up');
}

/** A running child process whose output the test can wait on. */
export class Daemon {
  output = '';
  exited: Promise<number | null>;
  private hasExited = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    const onData = (d: Buffer): void => {
      this.output += d.toString();
      for (const w of this.waiters) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.hasExited = true;
        resolve(code);
        for (const w of this.waiters) w();
      }),
    );
  }

  /** Waits until the output matches; the error says what was awaited, for how long, and what came. */
  waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = pattern.exec(this.output.slice(from));
        if (m) {
          cleanup();
          resolve(m[0]);
          return true;
        }
        if (this.hasExited) {
          cleanup();
          reject(new Error(`${this.label} exited (code ${this.child.exitCode}) before printing ${pattern}; output was:\n${this.output}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`waited ${timeoutMs} ms for ${pattern} from ${this.label}; output was:\n${this.output}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      };
      const waiter = (): void => void check();
      this.waiters.push(waiter);
      check();
    });
  }

  /** Sends a signal to the process (the `ip netns exec` wrapper execs it, so the pid is ctun's). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal);
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** Tracks everything a test started, so afterEach undoes it all. */
export class Scope {
  private readonly namespaces: Netns[] = [];
  private readonly daemons: Daemon[] = [];

  async ns(role: string): Promise<Netns> {
    const n = await Netns.create(role);
    this.namespaces.push(n);
    return n;
  }

  track(d: Daemon): Daemon {
    this.daemons.push(d);
    return d;
  }

  async dispose(): Promise<void> {
    await Promise.all(this.daemons.splice(0).map((d) => d.stop()));
    await Promise.all(this.namespaces.splice(0).map((n) => n.destroy()));
  }
}
