/**
 * The request/response round trip through a tunnel: the shape of a co-simulation that
 * steps in lockstep (one small TCP message out, its answer back, the next only then).
 * sockperf ping-pong over TCP, 64-byte messages, one in flight, the full round trip
 * (`--full-rtt`, not sockperf's default half of it), mean and p99 in microseconds.
 */
import type { Lab, Netns, Proc } from '../tools/lab/index.js';

export const SOCKPERF_PORT = '5298';
/** The co-simulation step's message: small, so the round trip is all per-packet cost. */
export const RR_MESSAGE_BYTES = 64;

export interface RoundTrip {
  meanUs: number;
  p99Us: number;
  /** Round trips measured (after sockperf's own warm-up). */
  count: number;
  /** Round trips of the whole run, warm-up included: what a CPU-time reading over the run divides by. */
  total: number;
}

/** Seconds of ping-pong per tunnel: the bench's --seconds, but at most this (a mean of ~10⁴ round trips is steady). */
export const RR_MAX_SECONDS = 5;

/** Starts sockperf's TCP server in `ns` on every address; the caller stops it. */
export async function startRrServer(lab: Lab, ns: Netns): Promise<Proc> {
  const server = lab.spawn(ns, 'sockperf', ['server', '--tcp', '-i', '0.0.0.0', '-p', SOCKPERF_PORT], { label: 'sockperf server' });
  await server.waitFor(/block on socket/, 10_000);
  return server;
}

/**
 * Runs `seconds` of ping-pong from `ns` to `target` (sockperf warms up 400 ms first
 * and counts after that). Bounded: the run is killed after `seconds` + 20 s.
 */
export async function requestResponse(ns: Netns, target: string, seconds: number): Promise<RoundTrip> {
  const out = await ns.run('sockperf', ['ping-pong', '--tcp', '-i', target, '-p', SOCKPERF_PORT, '-m', String(RR_MESSAGE_BYTES), '-t', String(seconds), '--full-rtt'], (seconds + 20) * 1000);
  return parseSockperf(out);
}

/** Reads sockperf's summary: `avg-rtt=…` (or `avg-latency=…`), `percentile 99.000 = …`, `Total N observations`. */
export function parseSockperf(out: string): RoundTrip {
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;]*m/g, '');
  const mean = /avg-(?:rtt|latency)=\s*([\d.]+)/.exec(text);
  const p99 = /percentile 99\.000 =\s*([\d.]+)/.exec(text);
  const count = /Total (\d+) observations/.exec(text);
  const total = /\[Total Run\][^\n]*ReceivedMessages=(\d+)/.exec(text);
  if (!mean || !p99 || !count || !total) throw new Error(`cannot parse sockperf output: ${text.slice(-400)}`);
  return { meanUs: Number(mean[1]), p99Us: Number(p99[1]), count: Number(count[1]), total: Number(total[1]) };
}
