/**
 * Network namespaces, veth pairs and bridges made with iproute2: the little networks
 * the demo (a namespace standing for the user's PC), the integration tests and the
 * benchmarks build. Each maker returns its own undo; `Lab` keeps them in order.
 */
import { execa } from 'execa';
import { CtunError } from '../common/index.js';
import { startProcess, type Proc, type ProcOptions } from './process.js';

/** Linux's limit on an interface name (IFNAMSIZ less the NUL). */
export const IFNAME_MAX = 15;
/** Bound on one `ip`/`iptables` command: they answer in milliseconds unless the kernel is stuck. */
const COMMAND_TIMEOUT_MS = 30_000;

/** Runs a command with a bounded time and returns its stdout; throws with its output when it fails. */
export async function run(file: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
  const r = await execa(file, args, { timeout: timeoutMs, reject: false, all: true });
  if (r.exitCode !== 0 || r.timedOut) {
    throw new CtunError('LAB_COMMAND_FAILED', `${file} ${args.join(' ')} ${r.timedOut ? `timed out after ${timeoutMs} ms` : `exited ${r.exitCode}`}:\n${r.all ?? ''}`);
  }
  return r.stdout;
}

export interface ExecOptions {
  /** Throw when the program fails; default true. */
  reject?: boolean;
  /** Bound on the run; default 30 s. */
  timeout?: number;
}

export class Netns {
  constructor(readonly name: string) {}

  /** Adds the namespace with its loopback up. `replace`: delete one of that name left from an earlier run first. */
  static async add(name: string, options: { replace?: boolean } = {}): Promise<Netns> {
    if (options.replace) await execa('ip', ['netns', 'del', name], { reject: false, timeout: COMMAND_TIMEOUT_MS });
    await run('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    try {
      await ns.ip('link', 'set', 'lo', 'up');
    } catch (e) {
      await ns.destroy();
      throw e;
    }
    return ns;
  }

  /** `ip -n NAME ARGS`; returns its stdout. */
  ip(...args: string[]): Promise<string> {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Runs a program here to its end (stdout, stderr and both interleaved as `all`). */
  exec(file: string, args: string[], options: ExecOptions = {}) {
    return execa('ip', ['netns', 'exec', this.name, file, ...args], { reject: options.reject ?? true, timeout: options.timeout ?? COMMAND_TIMEOUT_MS, all: true });
  }

  /** Runs a program here to its end and returns its stdout; throws with its output when it fails or overruns. */
  run(file: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, file, ...args], timeoutMs);
  }

  /** Starts a long-running program here; its output can be awaited. */
  spawn(file: string, args: string[], options: ProcOptions & { label?: string; env?: Record<string, string> } = {}): Proc {
    return startProcess(file, args, { ...options, netns: this.name, label: options.label ?? `${this.name}: ${[file, ...args].join(' ')}` });
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

  /** Whether this namespace has a route to an address at all. */
  async routeTo(address: string): Promise<boolean> {
    return (await execa('ip', ['-n', this.name, 'route', 'get', address], { reject: false, timeout: COMMAND_TIMEOUT_MS })).exitCode === 0;
  }

  /** Deletes the namespace; its veths, TAPs and bridges go with it. A namespace already gone is no error. */
  async destroy(): Promise<void> {
    const r = await execa('ip', ['netns', 'del', this.name], { reject: false, timeout: COMMAND_TIMEOUT_MS, all: true });
    if (r.exitCode !== 0 && !/No such file|not found/i.test(r.all ?? '')) {
      throw new CtunError('LAB_COMMAND_FAILED', `ip netns del ${this.name} exited ${r.exitCode}: ${r.all ?? ''}`);
    }
  }
}

/** One end of a veth pair: in a namespace, or in the host's (`ns` undefined). */
export interface VethEnd {
  ns?: Netns;
  /** Interface name, at most 15 characters. */
  name: string;
  /** Address with prefix to assign, e.g. `10.213.0.1/30`; none when omitted. */
  cidr?: string;
  /** Put this end into a bridge (of the same namespace) instead of addressing it. */
  master?: string;
}

/** Makes a veth pair between two namespaces (or one and the host), addresses both ends and sets them up. Returns its undo. */
export async function addVeth(a: VethEnd, b: VethEnd): Promise<() => Promise<void>> {
  for (const end of [a, b]) {
    if (end.name.length > IFNAME_MAX) throw new CtunError('LAB_NAME_TOO_LONG', `interface name ${end.name} is longer than ${IFNAME_MAX} characters`);
  }
  const place = (e: VethEnd): string[] => (e.ns ? ['netns', e.ns.name] : []);
  await run('ip', ['link', 'add', a.name, ...place(a), 'type', 'veth', 'peer', 'name', b.name, ...place(b)]);
  // Deleting one end deletes the pair; the namespace's deletion does it too, so "gone" is no error.
  const undo = async (): Promise<void> => void (await execa('ip', [...nsArgs(a), 'link', 'del', a.name], { reject: false, timeout: COMMAND_TIMEOUT_MS }));
  try {
    for (const end of [a, b]) {
      if (end.cidr) await run('ip', [...nsArgs(end), 'addr', 'add', end.cidr, 'dev', end.name]);
      if (end.master) await run('ip', [...nsArgs(end), 'link', 'set', end.name, 'master', end.master]);
      await run('ip', [...nsArgs(end), 'link', 'set', end.name, 'up']);
    }
  } catch (e) {
    await undo();
    throw e;
  }
  return undo;
}

function nsArgs(e: { ns?: Netns | undefined }): string[] {
  return e.ns ? ['-n', e.ns.name] : [];
}

/** The comment that marks a lab's iptables rule, so its removal touches nothing else. */
const RULE_COMMENT = (bridge: string): string[] => ['-m', 'comment', '--comment', `ctun-lab:${bridge}`];

/**
 * Makes a Linux bridge, optionally addressed, and sets it up. In the host's namespace
 * Docker sets the FORWARD policy to DROP and br_netfilter filters bridged frames too,
 * so the bridge gets its own ACCEPT rule for frames between its ports, removed again
 * by the undo this returns.
 */
export async function addBridge(b: { ns?: Netns; name: string; cidr?: string }): Promise<() => Promise<void>> {
  if (b.name.length > IFNAME_MAX) throw new CtunError('LAB_NAME_TOO_LONG', `bridge name ${b.name} is longer than ${IFNAME_MAX} characters`);
  await run('ip', [...nsArgs(b), 'link', 'add', b.name, 'type', 'bridge']);
  const accept = ['FORWARD', '-i', b.name, '-o', b.name, '-j', 'ACCEPT', ...RULE_COMMENT(b.name)];
  let ruleAdded = false;
  const undo = async (): Promise<void> => {
    if (ruleAdded) await run('iptables', ['-w', '-D', ...accept]);
    await execa('ip', [...nsArgs(b), 'link', 'del', b.name], { reject: false, timeout: COMMAND_TIMEOUT_MS });
  };
  try {
    if (!b.ns) {
      await run('iptables', ['-w', '-I', ...accept]);
      ruleAdded = true;
    }
    if (b.cidr) await run('ip', [...nsArgs(b), 'addr', 'add', b.cidr, 'dev', b.name]);
    await run('ip', [...nsArgs(b), 'link', 'set', b.name, 'up']);
  } catch (e) {
    await undo();
    throw e;
  }
  return undo;
}
