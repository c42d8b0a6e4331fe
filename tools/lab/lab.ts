/**
 * A lab: everything one test, benchmark or demo run made — namespaces, veths, bridges,
 * processes — and one `dispose` that undoes it in reverse, on success, on error and on
 * Ctrl-C. Names carry a per-run prefix, so parallel runs and a crashed run's leftovers
 * never collide.
 */
import { CtunError, silentLogger, type Logger } from '../common/index.js';
import { addBridge, addVeth, IFNAME_MAX, Netns, type VethEnd } from './netns.js';
import { startProcess, type Proc, type StartOptions } from './process.js';

export interface LabOptions {
  /** Starts every name this lab makes; keep it short (interface names have 15 characters); default `lab` and this process's id. */
  prefix?: string;
  /** Keep only about this many characters of each process's output (long runs); default: everything. */
  maxOutputChars?: number;
  /** Where cleanup failures are reported; default silent. */
  logger?: Logger;
}

/** Shared by every lab of this process, so two labs with one prefix never make the same name. */
let nameCounter = 0;

export class Lab<N extends Netns = Netns> {
  readonly prefix: string;
  private readonly logger: Logger;
  private readonly maxOutputChars: number | undefined;
  private readonly procs = new Set<Proc>();
  /** Undo of every namespace, veth and bridge, oldest first. */
  private readonly undo: Array<{ what: string; fn: () => Promise<unknown> }> = [];

  constructor(
    options: LabOptions = {},
    /** Makes the namespace object for a name (a subclass with more methods, for the tests). */
    private readonly makeNetns: (name: string) => N = (name) => new Netns(name) as N,
  ) {
    this.prefix = options.prefix ?? `lab${(process.pid % 46656).toString(36)}`;
    this.logger = options.logger ?? silentLogger;
    this.maxOutputChars = options.maxOutputChars;
  }

  /** A name unique in this lab: prefix, role, counter; cut to fit an interface name. */
  uniqueName(role: string): string {
    const n = (nameCounter++).toString(36);
    return `${this.prefix}-${role}`.slice(0, IFNAME_MAX - n.length) + n;
  }

  /** A new namespace with its loopback up, deleted on dispose. */
  async netns(role: string): Promise<N> {
    const name = this.uniqueName(role);
    await Netns.add(name);
    const ns = this.makeNetns(name);
    this.onCleanup(() => ns.destroy(), `namespace ${name}`);
    return ns;
  }

  /** A veth between two namespaces (undefined: the host's), addressed and up; returns the interface names. */
  async veth(a: Netns | undefined, aCidr: string, b: Netns | undefined, bCidr: string): Promise<[string, string]> {
    const n = (nameCounter++).toString(36);
    const name = (side: string): string => `${this.prefix}${n}`.slice(0, IFNAME_MAX - 1) + side;
    const ends: [VethEnd, VethEnd] = [
      { ...(a ? { ns: a } : {}), name: name('a'), cidr: aCidr },
      { ...(b ? { ns: b } : {}), name: name('b'), cidr: bCidr },
    ];
    const remove = await addVeth(...ends);
    this.onCleanup(remove, `veth ${ends[0].name}`);
    return [ends[0].name, ends[1].name];
  }

  /** A bridge (in the host's namespace when `ns` is undefined, with its own FORWARD ACCEPT rule); returns its name. */
  async bridge(role: string, options: { ns?: Netns; cidr?: string } = {}): Promise<string> {
    const name = this.uniqueName(role);
    const remove = await addBridge({ ...options, name });
    this.onCleanup(remove, `bridge ${name}`);
    return name;
  }

  /** Starts a program (in a namespace when `ns` is given); stopped on dispose. */
  spawn(ns: Netns | undefined, file: string, args: string[], options: StartOptions = {}): Proc {
    const max = this.maxOutputChars === undefined ? {} : { maxOutputChars: this.maxOutputChars };
    return this.track(startProcess(file, args, { ...max, ...options, ...(ns ? { netns: ns.name } : {}) }));
  }

  /** Adds a process started elsewhere to what dispose stops. */
  track(p: Proc): Proc {
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** Something else to undo on dispose, after everything added later. */
  onCleanup(fn: () => Promise<unknown>, what = 'cleanup'): void {
    this.undo.push({ what, fn });
  }

  /** Stops every process started here except `keep` (a scenario that failed half-way leaves none behind). */
  async stopAllExcept(keep: Proc[]): Promise<void> {
    const failures = await settleAll([...this.procs].filter((p) => !keep.includes(p)).map((p) => p.stop()));
    for (const e of failures) this.logger.warn('lab-stop-failed', { error: (e as Error).message });
  }

  /**
   * Stops every process (they depend on what was made before them), then undoes the
   * rest in reverse. Goes on past a failure and throws one error naming all of them.
   */
  async dispose(): Promise<void> {
    const failures = await settleAll([...this.procs].map((p) => p.stop()));
    this.procs.clear();
    for (const u of this.undo.splice(0).reverse()) {
      await u.fn().catch((e: unknown) => failures.push(new Error(`${u.what}: ${(e as Error).message}`)));
    }
    for (const e of failures) this.logger.warn('lab-cleanup-failed', { error: (e as Error).message });
    if (failures.length) {
      throw new CtunError('LAB_CLEANUP_FAILED', `cleanup left ${failures.length} thing(s) behind: ${failures.map((e) => (e as Error).message.split('\n')[0]).join('; ')}`, {
        cause: failures[0],
      });
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

async function settleAll(promises: Array<Promise<unknown>>): Promise<unknown[]> {
  const results = await Promise.allSettled(promises);
  return results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason);
}
