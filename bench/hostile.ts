/**
 * Hostile-input benchmark: a good client's TCP throughput through the tunnel, alone
 * and while 1 000 half-open TCP connections and a flood of garbage datagrams hit the
 * server's port, measured in the same run. Target: the good client keeps ≥ 90 % of
 * its throughput. Every attacker is bounded in count and time and stops by itself.
 *
 * Two floods: one at a fixed rate (FLOOD_RATE a second), which measures what the
 * garbage costs the server, and one as fast as the attacking process can send, which
 * on a small machine mostly measures the CPU the attacker takes from everyone else
 * (it runs on the same cores as both tunnel ends and iperf3).
 */
import { TUNNEL_DEFAULTS } from '../tools/common/index.js';
import { Lab, type Proc } from '../tools/lab/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { B_UNDERLAY, ctun, iperf, IPERF_PORT, medianOf, NODE, openLab, ROOT, waitReachable, type Scenario } from './tunnel.js';

const HOSTILE = `${ROOT}test/fixtures/hostile.mjs`;
const HALF_OPEN = 1000;
// Bounded by count and by time (the iperf3 run plus 6 s), whichever comes first.
const FLOOD_DATAGRAMS = 4_000_000;
const FLOOD_RATE = 50_000;

export interface HostileResult {
  name: string;
  aloneMbps: number;
  underAttackMbps: number;
  ratio: number;
  /** Under the unbounded flood (plus the half-open connections). */
  fullFloodMbps: number;
  fullFloodRatio: number;
  halfOpen: string;
  flood: string;
  error?: string;
}

export async function runHostileBench(lab: Lab, o: { seconds: number; rounds: number; log: (l: string) => void }): Promise<HostileResult[]> {
  const ctx = await openLab(lab, { roles: ['ha', 'hb'], log: o.log });
  const { a, b, ctunSecure } = ctx;

  // A half-open flood needs a TCP listener: plain TCP, or UDP with --tls (handshake on TCP).
  const scenarios: Scenario[] = [ctun('udp', false), ctun('tcp', false), ...(ctunSecure ? [ctun('udp', true), ctun('tcp', true)] : [])];
  const results: HostileResult[] = [];
  for (const s of scenarios) {
    o.log(`hostile: ${s.name}`);
    const r: HostileResult = { name: s.name, aloneMbps: NaN, underAttackMbps: NaN, ratio: NaN, fullFloodMbps: NaN, fullFloodRatio: NaN, halfOpen: '-', flood: '-' };
    let ends: Record<string, Proc> = {};
    const iperfServer = lab.spawn(b, 'iperf3', ['-s', '-p', IPERF_PORT, '--forceflush'], { label: 'iperf3 server' });
    try {
      await iperfServer.waitFor(/Server listening/, 10_000);
      const up = await s.up(ctx);
      ends = up.ends;
      await waitReachable(lab, a, up.target);
      const holdMs = (o.seconds + 6) * 1000;
      const tcpListener = s.transport === 'tcp' || s.cipher === 'tls';
      const alone = async (): Promise<number> => (await iperf(lab, a, up.target, o.seconds, false)).mbps;
      const attack = async (rate: number): Promise<{ mbps: number; reports: any[] }> => {
        const attackers: Array<Promise<string>> = [];
        if (tcpListener) attackers.push(a.run(NODE, [HOSTILE, 'half-open', B_UNDERLAY, String(TUNNEL_DEFAULTS.port), String(HALF_OPEN), String(holdMs)], holdMs + 20_000));
        attackers.push(a.run(NODE, [HOSTILE, 'udp-flood', B_UNDERLAY, String(TUNNEL_DEFAULTS.port), String(FLOOD_DATAGRAMS), String(holdMs), '', String(rate)], holdMs + 20_000));
        await sleep(1000);
        const mbps = (await iperf(lab, a, up.target, o.seconds, false)).mbps;
        return { mbps, reports: (await Promise.all(attackers)).map((out) => JSON.parse(out.trim().split('\n').pop()!)) };
      };
      // Alone, bounded flood, unbounded flood, in turn, `rounds` times: one iperf3 run
      // on two shared cores swings by ±20 %, the medians of interleaved runs much less.
      const runs = { alone: [] as number[], bounded: [] as number[], full: [] as number[] };
      let bounded: { mbps: number; reports: any[] } | undefined;
      let full: { mbps: number; reports: any[] } | undefined;
      for (let round = 0; round < o.rounds; round++) {
        runs.alone.push(await alone());
        bounded = await attack(FLOOD_RATE);
        runs.bounded.push(bounded.mbps);
        full = await attack(0);
        runs.full.push(full.mbps);
      }
      r.aloneMbps = medianOf(runs.alone);
      r.underAttackMbps = medianOf(runs.bounded);
      r.ratio = r.underAttackMbps / r.aloneMbps;
      r.fullFloodMbps = medianOf(runs.full);
      r.fullFloodRatio = r.fullFloodMbps / r.aloneMbps;
      const flood = (reports: any[]) => reports[tcpListener ? 1 : 0] as { sent: number; seconds: number };
      if (tcpListener) r.halfOpen = `${bounded!.reports[0].opened} opened, ${bounded!.reports[0].closedByPeer} closed by the server`;
      const rateOf = (f: { sent: number; seconds: number }): string => `${Math.round(f.sent / f.seconds / 1000)}k/s`;
      r.flood = `${rateOf(flood(bounded!.reports))} (bounded), ${rateOf(flood(full!.reports))} (unbounded)`;
    } catch (e) {
      r.error = (e as Error).message.split('\n')[0];
      o.log(`  failed: ${r.error}`);
    } finally {
      for (const p of Object.values(ends)) await p.stop();
      await iperfServer.stop();
      await lab.stopAllExcept([]);
    }
    results.push(r);
  }
  return results;
}

export function hostileTable(rows: HostileResult[]): string {
  const head = ['tunnel', 'alone Mbit/s', `flood ${FLOOD_RATE / 1000}k/s Mbit/s`, 'kept', 'unbounded flood Mbit/s', 'kept', 'half-open', 'garbage sent'];
  const pct = (x: number): string => (Number.isNaN(x) ? '-' : `${(x * 100).toFixed(0)} %`);
  const body = rows.map((r) => [r.name, r.aloneMbps.toFixed(0), r.underAttackMbps.toFixed(0), r.error ?? pct(r.ratio), r.fullFloodMbps.toFixed(0), pct(r.fullFloodRatio), r.halfOpen, r.flood]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
