/**
 * The Prometheus registry of one tunnel end (prom-client). Every counter is read from
 * the end's own figures at scrape time (no second set of counters to keep in step);
 * only the round-trip time is observed as it happens, into a histogram.
 *
 * Labels are bounded: `direction` (rx, tx), `reason` (the fixed DropReason set),
 * `outcome` (caught, missed) and the build info's. Per-client figures are not labels here (sessions come and go);
 * they are in `/status`, which `ctun status` and `ctun-run status` read.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Figures } from './figures.js';

/** Every metric name this module exports (the Grafana dashboard's queries are checked against it). */
export const METRIC_NAMES = {
  frames: 'ctun_frames_total',
  bytes: 'ctun_bytes_total',
  drops: 'ctun_drops_total',
  sessions: 'ctun_sessions',
  macs: 'ctun_mac_table_entries',
  connected: 'ctun_connected',
  reconnects: 'ctun_reconnects_total',
  lastOutage: 'ctun_last_outage_seconds',
  rtt: 'ctun_rtt_seconds',
  busyPoll: 'ctun_busy_poll_seconds_total',
  buildInfo: 'ctun_build_info',
} as const;

/** Buckets of the round-trip time, in seconds: 100 µs (loopback) to 2.5 s (a struggling link). */
export const RTT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface BuildInfo {
  version: string;
  role: 'server' | 'client';
  transport: string;
  /** local or separate. */
  mode: string;
  /** tls or plain. */
  security: string;
}

export interface TunnelRegistry {
  registry: Registry;
  /** Records one keepalive round-trip time (client). */
  observeRtt(ms: number): void;
}

/** A registry whose metrics read `figures()` at each scrape. */
export function createTunnelRegistry(info: BuildInfo, figures: () => Figures): TunnelRegistry {
  const registry = new Registry();
  const registers = [registry];
  // One snapshot per scrape, shared by the metrics of that scrape (their collect()
  // calls run in one tick), so a scrape is consistent with itself.
  let snapshot: Figures | undefined;
  const current = (): Figures => {
    if (snapshot === undefined) {
      snapshot = figures();
      setImmediate(() => (snapshot = undefined));
    }
    return snapshot;
  };

  for (const [name, what, key] of [
    [METRIC_NAMES.frames, 'Ethernet frames', 'frames'],
    [METRIC_NAMES.bytes, 'Bytes of Ethernet frames', 'bytes'],
  ] as const) {
    new Counter({
      name,
      help: `${what} through the tunnel: rx received from the tunnel peer(s), tx sent to them`,
      labelNames: ['direction'],
      registers,
      collect() {
        const f = current()[key];
        this.reset();
        this.inc({ direction: 'rx' }, f.rx);
        this.inc({ direction: 'tx' }, f.tx);
      },
    });
  }
  new Counter({
    name: METRIC_NAMES.drops,
    help: 'Frames, datagrams and peers dropped, by reason (queue, invalid, policy, refused, handshake-failed, sealed-<reason>, ...)',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(current().drops)) this.inc({ reason }, n ?? 0);
    },
  });
  if (info.role === 'server') {
    new Gauge({ name: METRIC_NAMES.sessions, help: 'Client sessions alive (attached, or kept for a resume)', registers, collect() { this.set(current().sessions ?? 0); } });
    new Gauge({ name: METRIC_NAMES.macs, help: 'Entries of the learning switch\'s MAC table', registers, collect() { this.set(current().macs ?? 0); } });
  } else {
    new Gauge({ name: METRIC_NAMES.connected, help: '1 when the client is connected to its server, else 0', registers, collect() { this.set(current().connected ? 1 : 0); } });
    new Counter({
      name: METRIC_NAMES.reconnects,
      help: 'Times the client lost its server (and set out to reconnect)',
      registers,
      collect() {
        this.reset();
        this.inc(current().reconnects ?? 0);
      },
    });
    new Gauge({
      name: METRIC_NAMES.lastOutage,
      help: 'How long the last outage lasted, from link loss to the server\'s welcome (0 before the first)',
      registers,
      collect() {
        this.set((current().lastOutageMs ?? 0) / 1000);
      },
    });
  }
  new Counter({
    name: METRIC_NAMES.busyPoll,
    help: 'Time the event loop spun for the next frame before sleeping (--busy-poll): caught, ended by a frame; missed, ran out (spent for nothing)',
    labelNames: ['outcome'],
    registers,
    collect() {
      const b = current().busyPoll ?? { spunUs: 0, missedUs: 0 };
      this.reset();
      this.inc({ outcome: 'caught' }, (b.spunUs - b.missedUs) / 1e6);
      this.inc({ outcome: 'missed' }, b.missedUs / 1e6);
    },
  });
  const rtt = new Histogram({ name: METRIC_NAMES.rtt, help: 'Round-trip time of the keepalive ping/pong (client side)', buckets: RTT_BUCKETS, registers });
  new Gauge({ name: METRIC_NAMES.buildInfo, help: 'Version and configuration of this tunnel end (always 1)', labelNames: ['version', 'role', 'transport', 'mode', 'security'], registers }).set({ ...info }, 1);
  collectDefaultMetrics({ register: registry, prefix: 'ctun_' });
  return { registry, observeRtt: (ms) => rtt.observe(ms / 1000) };
}
