/**
 * Real network namespaces for tunnel tests, on top of the lab (tools/lab): each test
 * builds its own little network (namespaces joined by veth), runs the real `ctun` CLI
 * and real probes inside, and tears everything down afterwards. Names carry the test
 * process id, so parallel runs and leftovers of a crashed run never collide.
 */
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { TUNNEL_DEFAULTS } from '../../../tools/common/index.js';
import { addVeth, Lab, Netns as LabNetns, Proc } from '../../../tools/lab/index.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const NODE = `${ROOT}node_modules/.bin/node`;
/** The ctun CLI: this run's bundle of the sources (test/fixtures/ctun-cli.ts), else the checkout's bin. */
export const CTUN = inject('ctunCli') ?? `${ROOT}bin/ctun.js`;
const PROBE = `${ROOT}test/fixtures/netprobe.mjs`;
const HOSTILE = `${ROOT}test/fixtures/hostile.mjs`;

/** A running child process whose output the test can wait on: the lab's `Proc` under the name the tests know. */
export { Proc as Daemon };
type Daemon = Proc;

/** Why integration tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces and TAP devices';
  return undefined;
}

const tag = (process.pid % 10000).toString(36);
let vethCounter = 0;

/** A lab namespace with the tunnel tests' programs: the ctun CLI and the probes of test/fixtures/netprobe.mjs. */
export class Netns extends LabNetns {
  /** Runs the real ctun CLI here and waits for it to exit. */
  ctun(args: string[], options: { reject?: boolean; timeout?: number } = {}) {
    return this.exec(NODE, [CTUN, ...args], options);
  }

  /** Starts a long-running ctun here (server or client). */
  spawnCtun(args: string[]): Daemon {
    return this.spawn(NODE, [CTUN, ...args], { label: `${this.name}: ctun ${args.join(' ')}` });
  }

  /** Runs a probe to completion and returns its JSON line. */
  probe(...args: string[]): Promise<{ ok: boolean; [k: string]: unknown }> {
    return this.lastJsonLine('probe', PROBE, args, 20_000);
  }

  /** Runs an attack of test/fixtures/hostile.mjs to completion (floods take longer than probes) and returns its JSON line. */
  hostile(...args: string[]): Promise<{ ok: boolean; [k: string]: any }> {
    return this.lastJsonLine('hostile', HOSTILE, args, 90_000);
  }

  /** A fixture script's verdict is its last line; anything else comes back as ok: false with what it printed. */
  private async lastJsonLine(what: string, script: string, args: string[], timeout: number): Promise<{ ok: boolean; [k: string]: any }> {
    const r = await this.exec(NODE, [script, ...args], { reject: false, timeout });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(last);
    } catch {
      return { ok: false, error: `${what} printed: ${r.stdout} ${r.stderr}` };
    }
  }

  /** Starts a probe server (tcp-server, udp-server, udp-listen) and waits for its first line. */
  async startProbe(...args: string[]): Promise<{ daemon: Daemon; first: Record<string, unknown> }> {
    const daemon = this.spawn(NODE, [PROBE, ...args], { label: `probe ${args.join(' ')}` });
    try {
      const line = await daemon.waitFor(/^\{.*\}$/m, 10_000);
      return { daemon, first: JSON.parse(line) };
    } catch (e) {
      await daemon.stop();
      throw e;
    }
  }
}

/** Joins two namespaces with a veth pair and addresses both ends (it goes with the namespaces). */
export async function link(a: Netns, aCidr: string, b: Netns, bCidr: string): Promise<void> {
  const n = vethCounter++;
  await addVeth({ ns: a, name: `v${a.name.slice(-6)}${n}`, cidr: aCidr }, { ns: b, name: `w${b.name.slice(-6)}${n}`, cidr: bCidr });
}

/** Tracks everything a test started, so afterEach undoes it all. */
export class Scope extends Lab<Netns> {
  constructor() {
    super({ prefix: `ct${tag}` }, (name) => new Netns(name));
  }

  ns(role: string): Promise<Netns> {
    return this.netns(role);
  }
}

/** Asks a ctun server or client for its statistics (SIGUSR1) and returns the numbers of the next stats line. */
export async function statsOf(daemon: Daemon): Promise<Record<string, number>> {
  const from = daemon.output.length;
  daemon.kill('SIGUSR1');
  const line = await daemon.waitFor(/INFO  stats .*/, 5000, from);
  return Object.fromEntries([...line.matchAll(/(\S+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

/** The plain tunnel lab: pc (10.79.0.1) on a veth to sim (10.79.0.2), pc's client TAP configured. */
export async function pcAndSim(scope: Scope): Promise<{ pc: Netns; sim: Netns }> {
  const pc = await scope.ns('pc');
  const sim = await scope.ns('sim');
  await link(pc, '10.79.0.1/24', sim, '10.79.0.2/24');
  await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
  return { pc, sim };
}

/**
 * The attack lab of the hostile-peer tests: pc (10.79.0.1) and evil (10.79.1.1) each on
 * a leg of their own to sim (10.79.0.2, 10.79.1.2), pc's client TAP configured.
 */
export async function pcEvilSim(scope: Scope): Promise<{ pc: Netns; evil: Netns; sim: Netns }> {
  const pc = await scope.ns('pc');
  const evil = await scope.ns('evil');
  const sim = await scope.ns('sim');
  await link(pc, '10.79.0.1/24', sim, '10.79.0.2/24');
  await link(evil, '10.79.1.1/24', sim, '10.79.1.2/24');
  await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
  return { pc, evil, sim };
}
