/**
 * Scale benchmark (issue 18): what sessions cost one server. The bundled server runs
 * in a namespace of its own; the load generator (bench/loadgen.ts) opens N sessions
 * on that namespace's loopback and keeps them alive with the pings a real client sends
 * (one per keepalive interval, 1 s). For N = 0, 100 and 1000 (or `--sessions`) the
 * server's CPU time is read from /proc over a quiet window: the slope is the cost of
 * idle sessions. Goals: ≥ 1 000 sessions held, < 1 % of a core per 100 idle sessions.
 * Bounded: at most MAX_SESSIONS sessions, each step a fixed window.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TUNNEL_ENV, TUNNEL_NODE_FLAGS } from '../tools/image/node-flags.js';
import { bundleCtun } from './bundle.js';
import { Lab, type Netns, type Proc } from '../tools/lab/index.js';
import { MAX_SESSIONS } from './loadgen.js';
import { NODE, ROOT } from './tunnel.js';

const LOADGEN = `${ROOT}bench/loadgen.ts`;
/** Quiet time after every session is welcomed, before the window opens. */
const SETTLE_MS = 2000;

export interface ScaleRow {
  sessions: number;
  /** Sessions still answered (pong within 3 keepalives) at the end of the window. */
  held: number;
  /** Server CPU over the window, in % of one core. */
  cpuPercent: number;
  /** Server private resident memory at the end of the window, MiB. */
  privateMiB: number;
  /** From the first hello until every session was welcomed, ms. */
  establishedMs: number;
}

export interface ScaleSummary {
  rows: ScaleRow[];
  /** (CPU at the largest N − CPU at 0) per 100 sessions, % of a core. */
  cpuPer100: number;
  /** (memory at the largest N − at 0) per session, KiB. */
  kibPerSession: number;
}

export async function runScaleBench(lab: Lab, o: { seconds: number; sessions: number[]; log: (l: string) => void }): Promise<ScaleSummary> {
  for (const n of o.sessions) if (!Number.isInteger(n) || n < 0 || n > MAX_SESSIONS) throw new Error(`session counts must be 0-${MAX_SESSIONS}, got ${n}`);
  const dir = mkdtempSync(join(tmpdir(), 'ctun-scale-'));
  lab.onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const bundled = await bundleCtun(dir);
  const ns = await lab.netns('scale');
  const most = Math.max(...o.sessions);
  // The bundle finds the addon through CTUN_ADDON, as in the images.
  process.env.CTUN_ADDON = bundled.addon;
  const server = lab.spawn(ns, NODE, [...TUNNEL_NODE_FLAGS, bundled.script, 'server', '--max-clients', String(Math.max(most, 1)), '--listen', '127.0.0.1'], { label: 'ctun server', env: { ...TUNNEL_ENV } });
  await server.waitFor(/server-listening/, 20_000);
  const rows: ScaleRow[] = [];
  for (const n of o.sessions) {
    o.log(`scale: ${n} sessions, ${o.seconds} s window`);
    rows.push(await measure(lab, ns, server, n, o.seconds));
  }
  await server.stop();
  const base = rows.find((r) => r.sessions === 0) ?? { cpuPercent: 0, privateMiB: 0 };
  const top = rows.find((r) => r.sessions === most)!;
  return {
    rows,
    cpuPer100: most === 0 ? NaN : ((top.cpuPercent - base.cpuPercent) / most) * 100,
    kibPerSession: most === 0 ? NaN : ((top.privateMiB - base.privateMiB) * 1024) / most,
  };
}

async function measure(lab: Lab, ns: Netns, server: Proc, sessions: number, seconds: number): Promise<ScaleRow> {
  let load: Proc | undefined;
  let establishedMs = 0;
  if (sessions > 0) {
    const hold = Math.ceil((SETTLE_MS + 60_000) / 1000) + seconds;
    load = lab.spawn(ns, NODE, ['--import', 'tsx', LOADGEN, '--sessions', String(sessions), '--seconds', String(hold)], { label: `loadgen ${sessions}` });
    await load.waitFor(/"event":"established"/, 60_000);
    establishedMs = JSON.parse(/\{"event":"established".*\}/.exec(load.output)![0]).ms;
  }
  await sleep(SETTLE_MS);
  const before = server.cpuSeconds();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const cpuPercent = ((server.cpuSeconds() - before) / ((performance.now() - t0) / 1000)) * 100;
  const privateMiB = server.privateMiB();
  let held = 0;
  if (load !== undefined) {
    // The generator reports twice a second: take its first report after the window.
    const mark = load.output.length;
    const deadline = Date.now() + 5000;
    let lines: string[] = [];
    while (lines.length === 0 && Date.now() < deadline) {
      await sleep(100);
      lines = load.output.slice(mark).split('\n').filter((l) => l.startsWith('{"event":"held"') && l.endsWith('}'));
    }
    if (lines.length === 0) throw new Error(`the load generator reported nothing for 5 s after the window; output:\n${load.output.slice(-2000)}`);
    held = JSON.parse(lines[0]!).held;
    await load.stop();
    // The byes end the sessions; give the server a moment before the next step.
    await sleep(1000);
  }
  return { sessions, held, cpuPercent, privateMiB, establishedMs };
}

export function scaleTable(s: ScaleSummary): string {
  const head = '| sessions | held | server CPU (% of a core) | server private memory (MiB) | all welcomed after (ms) |\n|---:|---:|---:|---:|---:|';
  const lines = s.rows.map((r) => `| ${r.sessions} | ${r.held} | ${r.cpuPercent.toFixed(2)} | ${r.privateMiB.toFixed(1)} | ${r.sessions === 0 ? '–' : r.establishedMs} |`);
  return `${head}\n${lines.join('\n')}\n\nper 100 idle sessions: ${s.cpuPer100.toFixed(2)} % of a core, ${s.kibPerSession.toFixed(1)} KiB each`;
}
