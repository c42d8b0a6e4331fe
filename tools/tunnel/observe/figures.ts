/**
 * What a running tunnel end tells the outside (Prometheus, /status, `ctun-run
 * status`, the client's status line): one snapshot shape for both roles, taken from
 * the counters the server and the client already keep. Nothing here counts by itself.
 */
import type { TunnelStats } from '../stats.js';
import type { SealFailure } from '../secure/index.js';
import type { BusyPollStats } from '../native.js';

/**
 * Why frames or datagrams were dropped. A fixed set (the metric's `reason` label), so
 * its series are bounded: queue (slow peer or TAP), invalid (malformed, oversized,
 * garbage), policy (destination, spoofed MAC, isolation), refused (TLS peer refused),
 * handshake-failed (TLS), each sealed-datagram reason as `sealed-<reason>`, and the
 * server's protections (hello-refused, resume-refused, pending-dropped, replies-suppressed).
 */
export type DropReason =
  | 'queue'
  | 'invalid'
  | 'policy'
  | 'refused'
  | 'handshake-failed'
  | `sealed-${SealFailure}`
  | 'hello-refused'
  | 'resume-refused'
  | 'pending-dropped'
  | 'replies-suppressed';

export const SEAL_FAILURES: readonly SealFailure[] = ['truncated', 'not-sealed', 'unknown-key', 'bad-tag', 'replayed', 'too-old', 'exhausted'];

/** One client of a server, as `ctun-run status` shows it. */
export interface ClientFigures {
  /** First 8 hex digits of the session id (as the logs print it). */
  session: string;
  /** Address and port the client's datagrams or connection come from; undefined while detached. */
  peer: string | undefined;
  /** With --tls: the CN of the client's certificate. */
  identity: string | undefined;
  /** When this session (re)attached, ISO 8601. */
  since: string;
  attached: boolean;
  /** Separate mode: the destination the client was admitted for. */
  dest: string | undefined;
  /** rx: from the client into the tunnel server; tx: from the server to the client. */
  bytes: { rx: number; tx: number };
  frames: { rx: number; tx: number };
  drops: number;
}

export interface Figures {
  role: 'server' | 'client';
  /** rx: received from the tunnel peer(s); tx: sent to them. */
  frames: { rx: number; tx: number };
  bytes: { rx: number; tx: number };
  drops: Partial<Record<DropReason, number>>;
  /** Server: sessions alive (attached or in their grace period). */
  sessions?: number;
  /** Server: entries of the learning switch's MAC table. */
  macs?: number;
  /** Server: its clients, one entry per session (bounded by the session limit). */
  clients?: ClientFigures[];
  /** Client: connected to its server now. */
  connected?: boolean;
  /** Client: the server it talks to (`host:port`). */
  server?: string;
  /** Client: link losses since start. */
  reconnects?: number;
  /** Client: how long the last outage lasted, once there was one. */
  lastOutageMs?: number;
  /** Client: the last round-trip time of a keepalive ping. */
  lastRttMs?: number;
  /** Frames the native data fast path moved (counted in `frames` too). */
  fastPath?: { rx: number; tx: number };
  /** The process's busy-poll spins (--busy-poll): how many, how many a frame ended, µs spun, µs of it that ran out. */
  busyPoll?: BusyPollStats;
}

/**
 * The drops of a stats block by reason, with sealed-datagram drops under their own
 * reasons: the ends count those also as invalid, so they are taken out of it here
 * (each drop once).
 */
export function dropsByReason(s: TunnelStats, sealDrops: Record<SealFailure, number>): Partial<Record<DropReason, number>> {
  const drops: Partial<Record<DropReason, number>> = { queue: s.dropsQueue, policy: s.dropsPolicy };
  let sealed = 0;
  for (const r of SEAL_FAILURES) {
    drops[`sealed-${r}`] = sealDrops[r];
    sealed += sealDrops[r];
  }
  drops.invalid = s.dropsInvalid - sealed;
  return drops;
}

/** The sum of all drop reasons. */
export function totalDrops(f: Pick<Figures, 'drops'>): number {
  return Object.values(f.drops).reduce((a, b) => a + (b ?? 0), 0);
}
