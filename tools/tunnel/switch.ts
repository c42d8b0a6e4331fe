/**
 * A learning Ethernet switch: learns which port a source MAC lives behind, forwards
 * unicast to that port, and floods broadcast, multicast and unknown destinations to
 * every port but the one the frame came from. Entries expire so a host that moved
 * (a client that reconnected elsewhere) is found again.
 */
export interface SwitchPort {
  /** Stable identity for logs. */
  readonly id: string;
  /** Delivers a frame out of this port; returns false if it was dropped. */
  deliver(frame: Buffer): boolean;
}

export interface LearningSwitchOptions {
  /** How long a learned MAC stays valid without traffic; default 300 000 ms (as Linux bridges). */
  ageingMs?: number;
  /** Upper bound on the table size, so a MAC flood cannot grow memory; default 4096. */
  maxEntries?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface Entry {
  port: SwitchPort;
  seen: number;
}

export interface SwitchCounters {
  forwarded: number;
  flooded: number;
  filtered: number;
  tableFull: number;
}

function macKey(frame: Buffer, offset: number): string {
  return frame.toString('hex', offset, offset + 6);
}

export class LearningSwitch {
  private readonly table = new Map<string, Entry>();
  private readonly ports = new Set<SwitchPort>();
  private readonly ageingMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  readonly counters: SwitchCounters = { forwarded: 0, flooded: 0, filtered: 0, tableFull: 0 };

  constructor(options: LearningSwitchOptions = {}) {
    this.ageingMs = options.ageingMs ?? 300_000;
    this.maxEntries = options.maxEntries ?? 4096;
    this.now = options.now ?? Date.now;
  }

  addPort(port: SwitchPort): void {
    this.ports.add(port);
  }

  /** Removes a port and forgets every MAC learned behind it. */
  removePort(port: SwitchPort): void {
    this.ports.delete(port);
    for (const [mac, entry] of this.table) if (entry.port === port) this.table.delete(mac);
  }

  /** MACs currently learned behind `port`. */
  macsOf(port: SwitchPort): string[] {
    const now = this.now();
    return [...this.table].filter(([, e]) => e.port === port && now - e.seen <= this.ageingMs).map(([mac]) => mac);
  }

  get size(): number {
    return this.table.size;
  }

  /** Switches one frame that arrived on `ingress`. */
  forward(frame: Buffer, ingress: SwitchPort): void {
    const now = this.now();
    const dst = macKey(frame, 0);
    const src = macKey(frame, 6);
    // A multicast source address is invalid on Ethernet; never learn it.
    if ((frame[6]! & 1) === 0) this.learn(src, ingress, now);

    if ((frame[0]! & 1) === 0) {
      const entry = this.table.get(dst);
      if (entry !== undefined && now - entry.seen <= this.ageingMs && this.ports.has(entry.port)) {
        if (entry.port === ingress) {
          this.counters.filtered++;
          return;
        }
        this.counters.forwarded++;
        entry.port.deliver(frame);
        return;
      }
    }
    this.counters.flooded++;
    for (const port of this.ports) if (port !== ingress) port.deliver(frame);
  }

  private learn(mac: string, port: SwitchPort, now: number): void {
    const entry = this.table.get(mac);
    if (entry !== undefined) {
      entry.port = port;
      entry.seen = now;
      return;
    }
    if (this.table.size >= this.maxEntries) {
      this.expire(now);
      if (this.table.size >= this.maxEntries) {
        this.counters.tableFull++;
        return;
      }
    }
    this.table.set(mac, { port, seen: now });
  }

  /** Drops entries older than the ageing time. */
  expire(now = this.now()): void {
    for (const [mac, entry] of this.table) if (now - entry.seen > this.ageingMs) this.table.delete(mac);
  }
}
