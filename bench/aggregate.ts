/**
 * Aggregate throughput in separate mode (issue 18): ONE server process, 1, 8 or 32
 * active clients, each to its own `--dest` among 1, 8 or 32 destinations. Goal: the
 * aggregate with 32 active clients is no lower than with one.
 *
 *   server namespace: the bundled `ctun server --mode separate` on loopback, its TAP,
 *                     forwarding and NAT as in the separate-server image; the active
 *                     load generator (bench/traffic.ts) on the same loopback
 *   target namespace: one veth away, 32 destination addresses on it
 *
 * Both directions, each cell in turn:
 * - up: the clients send full-sized UDP frames as fast as the server takes them
 *   (bench/pacer.ts; the sending side costs the same per frame for any number of
 *   clients). What arrives is counted at the target by the kernel: one iptables rule
 *   per client in the raw table (every packet passes all of them, so counting costs
 *   the same for every cell), then dropped there, before conntrack and sockets.
 * - down: the destinations answer each client's flow (bench/downstream.ts) through
 *   the server's NAT, TAP and switch; the generator counts what each client receives.
 * Mbit/s are IP bytes (1400-byte packets) per second. The server's CPU is read from
 * /proc over the same window: on a shared machine it gets more or less of a core from
 * one cell to the next, so "Mbit/s per server core" compares the cells fairly.
 * Bounded: every cell a fixed window; the senders stop by themselves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TUNNEL_DEFAULTS } from '../tools/common/index.js';
import { TUNNEL_ENV, TUNNEL_NODE_FLAGS } from '../tools/image/node-flags.js';
import { Lab, type Netns, type Proc } from '../tools/lab/index.js';
import { bundleCtun } from './bundle.js';
import { MAX_ACTIVE, SINK_PORT, SOURCE_PORT_BASE } from './traffic.js';
import { medianOf, NODE, ROOT } from './tunnel.js';

const TRAFFIC = `${ROOT}bench/traffic.ts`;
const DOWNSTREAM = `${ROOT}bench/downstream.ts`;
/** The cells: active clients → distinct destinations (a client names one, so never more destinations than clients). */
export const AGGREGATE_CELLS: ReadonlyArray<readonly [number, number]> = [
  [1, 1],
  [8, 1],
  [8, 8],
  [32, 1],
  [32, 8],
  [32, 32],
];
const SERVER_UNDERLAY = '10.251.0.1';
const TARGET_UNDERLAY = '10.251.0.2';
/** Destination j is 10.251.0.(10 + j), all on the target's veth. */
const destination = (j: number): string => `10.251.0.${10 + j}`;
/** Sending before the window opens: sessions settle, ARP and conntrack are done. */
const WARMUP_MS = 1000;

export interface AggregateCell {
  direction: Direction;
  clients: number;
  dests: number;
  /** IP bytes per second arriving (up: at the destinations; down: at the clients), all clients, Mbit/s. */
  mbps: number;
  /** The slowest and the fastest client's share, Mbit/s (fairness). */
  minClientMbps: number;
  maxClientMbps: number;
  /** Server CPU over the window, % of one core. */
  serverCpuPercent: number;
  /** Server CPU seconds per GB delivered. */
  serverCpuSecPerGB: number;
  /**
   * What the server delivered per core-second it got, Mbit/s: the aggregate with the
   * machine's other load taken out (a shared machine gives the server more or less CPU
   * from one cell to the next; what it does with a second of CPU is its own).
   */
  mbpsPerCore: number;
  /** The sending side's CPU over the window, % of one core (up: the generator; down: bench/downstream.ts). */
  loadCpuPercent: number;
  /** Of the frames that left the generator's sockets over the whole run, the share that arrived. */
  delivered: number;
  /** This cell against 1 → 1 measured in the same round: aggregate, and per server core. */
  vsOne: number;
  perCoreVsOne: number;
  error?: string;
}

export interface AggregateSummary {
  seconds: number;
  rounds: number;
  cells: AggregateCell[];
}

/** Per-client byte counters at the target, by client index, and the total. */
async function readCounters(target: Netns): Promise<{ perClient: number[]; total: number }> {
  const out = await target.run('iptables', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n'], 10_000);
  const perClient = new Array<number>(MAX_ACTIVE).fill(0);
  let total = 0;
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || !/^\d+$/.test(f[1] ?? '')) continue;
    const bytes = Number(f[1]);
    const spt = /spt:(\d+)/.exec(line);
    if (spt !== null) perClient[Number(spt[1]) - SOURCE_PORT_BASE] = bytes;
    else if (/DROP/.test(line)) total = bytes;
  }
  return { perClient, total };
}

async function openTarget(lab: Lab, server: Netns): Promise<Netns> {
  const target = await lab.netns('aggt');
  const [, dev] = await lab.veth(server, `${SERVER_UNDERLAY}/24`, target, `${TARGET_UNDERLAY}/24`);
  for (let j = 0; j < MAX_ACTIVE; j++) await target.ip('addr', 'add', `${destination(j)}/24`, 'dev', dev);
  for (let i = 0; i < MAX_ACTIVE; i++) {
    await target.run('iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', String(SINK_PORT), '--sport', String(SOURCE_PORT_BASE + i)]);
  }
  await target.run('iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', String(SINK_PORT), '-j', 'DROP']);
  return target;
}

export type Direction = 'up' | 'down';
/** up: clients → destinations (counted at the destinations); down: destinations → clients (counted at the clients). */
export const DIRECTIONS: readonly Direction[] = ['up', 'down'];

interface World {
  lab: Lab;
  ns: Netns;
  target: Netns;
  server: Proc;
}

export async function runAggregateBench(
  lab: Lab,
  o: { seconds: number; rounds: number; log: (l: string) => void; cells?: ReadonlyArray<readonly [number, number]>; directions?: readonly Direction[] },
): Promise<AggregateSummary> {
  const cells = o.cells ?? AGGREGATE_CELLS;
  const directions = o.directions ?? DIRECTIONS;
  for (const [c, d] of cells) if (c < 1 || c > MAX_ACTIVE || d < 1 || d > c) throw new Error(`a cell is 1-${MAX_ACTIVE} clients to 1..clients destinations, got ${c} → ${d}`);
  const dir = mkdtempSync(join(tmpdir(), 'ctun-aggregate-'));
  lab.onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const bundled = await bundleCtun(dir);
  process.env.CTUN_ADDON = bundled.addon;
  const ns = await lab.netns('agg');
  const target = await openTarget(lab, ns);
  const server = lab.spawn(ns, NODE, [...TUNNEL_NODE_FLAGS, bundled.script, 'server', '--mode', 'separate', '--listen', '127.0.0.1', '--max-clients', String(MAX_ACTIVE)], { label: 'ctun server', env: { ...TUNNEL_ENV } });
  await server.waitFor(/server-listening/, 20_000);
  const world: World = { lab, ns, target, server };
  const rounds: AggregateCell[][] = [];
  for (let round = 0; round < o.rounds; round++) {
    // Alternate the order each round, so a shared machine's drift favours no cell.
    const order = round % 2 === 0 ? [...cells] : [...cells].reverse();
    const measured: AggregateCell[] = [];
    for (const direction of directions) {
      for (const [clients, dests] of order) {
        o.log(`aggregate round ${round + 1}/${o.rounds}, ${direction}: ${clients} clients, ${dests} destinations, ${o.seconds} s`);
        measured.push(await measure(world, direction, clients, dests, o.seconds));
      }
      const one = measured.find((m) => m.direction === direction && m.clients === 1 && m.dests === 1);
      for (const m of measured.filter((x) => x.direction === direction)) {
        m.vsOne = one === undefined ? NaN : m.mbps / one.mbps;
        m.perCoreVsOne = one === undefined ? NaN : m.mbpsPerCore / one.mbpsPerCore;
      }
    }
    rounds.push(measured);
  }
  await server.stop();
  const same = (c: number, d: number, direction: Direction) => (m: AggregateCell) => m.clients === c && m.dests === d && m.direction === direction;
  return {
    seconds: o.seconds,
    rounds: o.rounds,
    cells: directions.flatMap((direction) => cells.map(([c, d]) => median(rounds.map((r) => r.find(same(c, d, direction))!)))),
  };
}

/** Bytes so far per client and in all, and the clock (ms) they were read at. */
interface Reading {
  perClient: number[];
  total: number;
  at: number;
}

/** The latest count the generator reported of what its clients received (down). */
function lastReceived(load: Proc): Reading {
  const lines = load.output.match(/\{"event":"received".*\}/g);
  if (lines === null) throw new Error(`the load generator reported nothing received; output:\n${load.output.slice(-2000)}`);
  const r = JSON.parse(lines[lines.length - 1]!) as { at: number; bytes: number[] };
  return { perClient: r.bytes, total: r.bytes.reduce((a, b) => a + b, 0), at: r.at };
}

async function measure(w: World, direction: Direction, clients: number, dests: number, seconds: number): Promise<AggregateCell> {
  const cell: AggregateCell = { direction, clients, dests, mbps: NaN, minClientMbps: NaN, maxClientMbps: NaN, serverCpuPercent: NaN, serverCpuSecPerGB: NaN, mbpsPerCore: NaN, loadCpuPercent: NaN, delivered: NaN, vsOne: NaN, perCoreVsOne: NaN };
  await w.target.run('iptables', ['-t', 'raw', '-Z', 'PREROUTING']);
  const destList = Array.from({ length: dests }, (_, j) => destination(j)).join(',');
  const sendSeconds = Math.ceil(WARMUP_MS / 1000) + seconds + 1;
  const load = w.lab.spawn(w.ns, NODE, ['--import', 'tsx', TRAFFIC, '--clients', String(clients), '--dests', destList, '--seconds', String(sendSeconds), '--direction', direction], { label: `traffic ${direction} ${clients}→${dests}` });
  let down: Proc | undefined;
  try {
    await load.waitFor(/"event":"sending"/, 30_000);
    if (direction === 'down') {
      down = w.lab.spawn(w.target, NODE, ['--import', 'tsx', DOWNSTREAM, '--clients', String(clients), '--dests', destList, '--nat', SERVER_UNDERLAY, '--watch-pid', String(w.server.pid), '--tap', TUNNEL_DEFAULTS.serverTap, '--seconds', String(sendSeconds)], { label: `downstream ${clients}→${dests}` });
      await down.waitFor(/"event":"sending"/, 30_000);
    }
    const read = async (): Promise<Reading> => (direction === 'up' ? { ...(await readCounters(w.target)), at: performance.now() } : lastReceived(load));
    const sender = down ?? load;
    await sleep(WARMUP_MS);
    const c0 = await read();
    const s0 = w.server.cpuSeconds();
    const l0 = sender.cpuSeconds();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const c1 = await read();
    const cpuWindow = (performance.now() - t0) / 1000;
    const serverCpu = w.server.cpuSeconds() - s0;
    cell.loadCpuPercent = ((sender.cpuSeconds() - l0) / cpuWindow) * 100;
    const done = JSON.parse(await load.waitFor(/\{"event":"done".*\}/, (sendSeconds + 10) * 1000));
    await load.waitExit(5000);
    const elapsed = (c1.at - c0.at) / 1000;
    const bytes = c1.total - c0.total;
    // A path that carries nothing is broken, not slow: say so instead of printing a 0.
    if (bytes === 0) throw new Error(`nothing arrived ${direction === 'up' ? 'at the destinations' : 'at the clients'} in ${seconds} s`);
    cell.mbps = (bytes * 8) / elapsed / 1e6;
    const shares = Array.from({ length: clients }, (_, i) => ((c1.perClient[i]! - c0.perClient[i]!) * 8) / elapsed / 1e6);
    cell.minClientMbps = Math.min(...shares);
    cell.maxClientMbps = Math.max(...shares);
    cell.serverCpuPercent = (serverCpu / cpuWindow) * 100;
    cell.serverCpuSecPerGB = serverCpu / ((bytes * cpuWindow) / elapsed / 1e9);
    cell.mbpsPerCore = cell.mbps / (cell.serverCpuPercent / 100);
    // Every frame is one IP packet of the MTU: over the whole run, the share of those sent that arrived.
    if (direction === 'up') {
      const sent = (done.sent as number[]).reduce((a, b) => a + b, 0);
      cell.delivered = sent === 0 ? NaN : (await readCounters(w.target)).total / TUNNEL_DEFAULTS.mtu / sent;
    } else {
      const sent = JSON.parse(await down!.waitFor(/\{"event":"done".*\}/, 15_000)).sent as number;
      cell.delivered = sent === 0 ? NaN : (done.received as number[]).reduce((a, b) => a + b, 0) / TUNNEL_DEFAULTS.mtu / sent;
    }
  } catch (e) {
    const rejected = w.server.output.match(/.*client-rejected.*/g);
    cell.error = (e as Error).message.split('\n').slice(0, 4).join(' | ') + (rejected === null ? '' : ` | the server: ${rejected[rejected.length - 1]}`);
  } finally {
    await load.stop();
    await down?.stop();
  }
  // The byes end the sessions (and release their destinations) before the next cell.
  const left = await sessionsLeft(w.server);
  if (left !== 0) cell.error = `${cell.error ?? ''}${cell.error ? '; ' : ''}${left} sessions still held 5 s after the generator's byes`;
  return cell;
}

/** Waits (at most 5 s) until the server holds no session; returns how many it still holds. */
async function sessionsLeft(server: Proc): Promise<number> {
  let held = NaN;
  for (let i = 0; i < 10; i++) {
    const from = server.output.length;
    server.kill('SIGUSR1');
    held = Number(/stats sessions=(\d+)/.exec(await server.waitFor(/stats sessions=\d+/, 5000, from))![1]);
    if (held === 0) return 0;
    await sleep(500);
  }
  return held;
}

function median(cells: AggregateCell[]): AggregateCell {
  if (cells.length === 1) return cells[0]!;
  const ok = cells.filter((c) => c.error === undefined);
  const mid = (key: keyof AggregateCell): number => medianOf(ok.map((c) => c[key] as number));
  return {
    ...cells[0]!,
    mbps: mid('mbps'),
    minClientMbps: mid('minClientMbps'),
    maxClientMbps: mid('maxClientMbps'),
    serverCpuPercent: mid('serverCpuPercent'),
    serverCpuSecPerGB: mid('serverCpuSecPerGB'),
    mbpsPerCore: mid('mbpsPerCore'),
    loadCpuPercent: mid('loadCpuPercent'),
    delivered: mid('delivered'),
    vsOne: mid('vsOne'),
    perCoreVsOne: mid('perCoreVsOne'),
    error: ok.length === 0 ? cells[0]!.error : undefined,
  };
}

export function aggregateTable(s: AggregateSummary): string {
  const f = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const head =
    '| direction | clients | destinations | aggregate Mbit/s | × 1 → 1 | per client min / max | server CPU % of a core | Mbit/s per server core | × 1 → 1 | sender CPU % | delivered |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = s.cells.map(
    (c) =>
      `| ${c.direction === 'up' ? 'clients → destinations' : 'destinations → clients'} | ${c.clients} | ${c.dests} | ${f(c.mbps)} | ${f(c.vsOne, 2)} | ${f(c.minClientMbps)} / ${f(c.maxClientMbps)} | ${f(c.serverCpuPercent)} | ${f(c.mbpsPerCore)} | ${f(c.perCoreVsOne, 2)} | ${f(c.loadCpuPercent)} | ${Number.isFinite(c.delivered) ? `${(c.delivered * 100).toFixed(1)} %` : '–'} |${c.error ? ` error: ${c.error}` : ''}`,
  );
  return `${head}\n${lines.join('\n')}`;
}
