/**
 * The pacing of the benchmark's senders (bench/traffic.ts, bench/downstream.ts): as
 * fast as the tunnel server takes it, as a TCP sender would. The signal is loss where
 * the server is too slow (its socket's receive buffer, its TAP's queue); the rate grows
 * while the loss of an interval stays under LOSS_TOLERATED and shrinks by a fraction
 * when it was more (AIMD). Sending blindly instead would drop nine frames of ten at the
 * server, and the kernel's work for those drops would take the CPU the server needs.
 */
import { readFileSync } from 'node:fs';

/** How often the rate is adjusted, ms. */
export const PACE_MS = 20;
const START_RATE = 20_000;
const MIN_RATE = 2_000;
const MAX_RATE = 2_000_000;
/** Increase per interval without loss: a fraction of the rate plus a floor; decrease on loss. */
const INCREASE = 0.03;
const INCREASE_FLOOR = 500;
const DECREASE = 0.85;
/** Loss in one interval that the rate tolerates: a shared machine deschedules the server now and then. */
const LOSS_TOLERATED = 0.02;

export class Pacer {
  /** Frames per second, all flows. */
  rate = START_RATE;
  private credit = 0;
  private last: number;
  private adjusted: number;
  private lostSeen: number;
  private sentSeen = 0;

  /** `lost()` counts frames lost so far (a kernel counter); `now` in ms. */
  constructor(
    private readonly lost: () => number,
    now: number,
  ) {
    this.last = now;
    this.adjusted = now;
    this.lostSeen = lost();
  }

  /** Frames that may leave now (whole runs of `run`); call once per turn of the loop. */
  allowance(now: number, run: number): number {
    // At most one interval's worth of credit: a stall is not made up in one burst.
    this.credit = Math.min(this.credit + (this.rate * (now - this.last)) / 1000, Math.max(run, (this.rate * PACE_MS) / 1000));
    this.last = now;
    const runs = Math.floor(this.credit / run);
    this.credit -= runs * run;
    return runs * run;
  }

  /** Adjusts the rate once an interval has passed; `sent` is the frames sent so far. */
  adjust(now: number, sent: number): void {
    if (now - this.adjusted < PACE_MS) return;
    this.adjusted = now;
    const lost = this.lost();
    const loss = (lost - this.lostSeen) / Math.max(1, sent - this.sentSeen);
    this.rate = loss > LOSS_TOLERATED ? Math.max(MIN_RATE, this.rate * DECREASE) : Math.min(MAX_RATE, this.rate * (1 + INCREASE) + INCREASE_FLOOR);
    this.lostSeen = lost;
    this.sentSeen = sent;
  }
}

/** UDP receive-buffer overflows in the network namespace of `pid` (default: this process's), from /proc. */
export function udpRcvbufErrors(pid: number | 'self' = 'self'): number {
  const lines = readFileSync(`/proc/${pid}/net/snmp`, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp: '));
  if (lines.length < 2) throw new Error(`no Udp lines in /proc/${pid}/net/snmp`);
  const at = lines[0]!.split(/\s+/).indexOf('RcvbufErrors');
  if (at < 0) throw new Error(`no RcvbufErrors in /proc/${pid}/net/snmp`);
  return Number(lines[1]!.split(/\s+/)[at]);
}

/** Frames the interface `dev` dropped on transmit (a TAP: its reader too slow), in the network namespace of `pid`. */
export function txDropped(pid: number | 'self', dev: string): number {
  for (const line of readFileSync(`/proc/${pid}/net/dev`, 'utf8').split('\n')) {
    const [name, rest] = line.split(':');
    // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
    if (name?.trim() === dev && rest !== undefined) return Number(rest.trim().split(/\s+/)[11]);
  }
  throw new Error(`no interface ${dev} in /proc/${pid}/net/dev`);
}
