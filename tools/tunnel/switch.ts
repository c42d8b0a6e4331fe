/**
 * A learning Ethernet switch: learns which port a source MAC lives behind, forwards
 * unicast to that port, and floods broadcast, multicast and unknown destinations to
 * every port but the one the frame came from. Entries expire so a host that moved
 * (a client that reconnected elsewhere) is found again.
 *
 * It is also the tunnel's L2 isolation: a pinned MAC (the server TAP's) never moves,
 * a MAC learned behind a live port cannot be claimed from another port while it is
 * fresh (the frame claiming it is dropped and counted), and with `isolateClients`
 * client ports reach only the uplink (the TAP), never each other.
 */
export interface SwitchPort {
  /** Stable identity for logs. */
  readonly id: string;
  /** Delivers a frame out of this port; returns false if it was dropped. */
  deliver(frame: Buffer): boolean;
  /** The server's own TAP: clients isolated from each other still reach it. */
  readonly uplink?: boolean;
  /** Whether the port's peer is connected now; a port that does not say counts as connected. */
  readonly attached?: boolean;
}

export interface LearningSwitchOptions {
  /** How long a learned MAC stays valid without traffic; default 300 000 ms (as Linux bridges). */
  ageingMs?: number;
  /** Upper bound on the table size, so a MAC flood cannot grow memory; default DEFAULT_MAC_ENTRIES (4096). */
  maxEntries?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Client ports reach only uplink ports, not each other; default false. */
  isolateClients?: boolean;
  /**
   * A MAC behind a connected port stays there; behind a disconnected one it may move
   * once it has not been seen for this long (a client that restarted after a
   * crash); default 5000 ms.
   */
  moveHoldMs?: number;
  /**
   * Called whenever a MAC's port changes: learned (new or moved) behind `port`, or
   * forgotten (undefined: aged out, or its port removed). The server's native fast
   * path keeps its copy of the table in step with it.
   */
  onChange?: (mac: string, port: SwitchPort | undefined) => void;
}

interface Entry {
  port: SwitchPort;
  seen: number;
  pinned: boolean;
}

export interface SwitchCounters {
  forwarded: number;
  flooded: number;
  filtered: number;
  tableFull: number;
  /** Frames dropped because their source MAC belongs to another port (pinned, or fresh elsewhere). */
  spoofed: number;
  /** Frames between client ports dropped by isolateClients. */
  isolated: number;
}

/** MAC table size unless told otherwise. */
export const DEFAULT_MAC_ENTRIES = 4096;

/** How often a full MAC table is scanned for aged entries when a new MAC wants in. */
const FULL_SCAN_INTERVAL_MS = 1000;

function macKey(frame: Buffer, offset: number): string {
  return frame.toString('hex', offset, offset + 6);
}

export class LearningSwitch {
  private readonly table = new Map<string, Entry>();
  private readonly ports = new Set<SwitchPort>();
  private readonly ageingMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly isolateClients: boolean;
  private readonly moveHoldMs: number;
  private readonly onChange: (mac: string, port: SwitchPort | undefined) => void;
  /** When a full table was last scanned for aged entries (see learn). */
  private lastFullScan = Number.NEGATIVE_INFINITY;
  readonly counters: SwitchCounters = { forwarded: 0, flooded: 0, filtered: 0, tableFull: 0, spoofed: 0, isolated: 0 };

  constructor(options: LearningSwitchOptions = {}) {
    this.ageingMs = options.ageingMs ?? 300_000;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAC_ENTRIES;
    this.now = options.now ?? Date.now;
    this.isolateClients = options.isolateClients ?? false;
    this.moveHoldMs = options.moveHoldMs ?? 5000;
    this.onChange = options.onChange ?? (() => {});
  }

  /** Binds `mac` (aa:bb:.. or hex) to `port` for good: it never ages and never moves. */
  pin(mac: string, port: SwitchPort): void {
    const key = mac.replace(/:/g, '').toLowerCase();
    this.table.set(key, { port, seen: this.now(), pinned: true });
    this.onChange(key, port);
  }

  addPort(port: SwitchPort): void {
    this.ports.add(port);
  }

  /** Removes a port and forgets every MAC learned behind it. */
  removePort(port: SwitchPort): void {
    this.ports.delete(port);
    for (const [mac, entry] of this.table) if (entry.port === port) this.delete(mac);
  }

  /**
   * Refreshes a learned MAC that was seen at `at` by a path that bypasses forward()
   * (the native fast path); a later `seen` stays, a pinned entry needs none.
   */
  touch(mac: string, at: number): void {
    const entry = this.table.get(mac);
    if (entry !== undefined && !entry.pinned && at > entry.seen) entry.seen = at;
  }

  private delete(mac: string): void {
    this.table.delete(mac);
    this.onChange(mac, undefined);
  }

  /** MACs currently learned behind `port`. */
  macsOf(port: SwitchPort): string[] {
    const now = this.now();
    return [...this.table].filter(([, e]) => e.port === port && (e.pinned || now - e.seen <= this.ageingMs)).map(([mac]) => mac);
  }

  get size(): number {
    return this.table.size;
  }

  /** Switches one frame that arrived on `ingress`; false when it was dropped as a spoof or by isolation. */
  forward(frame: Buffer, ingress: SwitchPort): boolean {
    const now = this.now();
    const dst = macKey(frame, 0);
    const src = macKey(frame, 6);
    // A multicast source address is invalid on Ethernet; never learn it.
    if ((frame[6]! & 1) === 0 && !this.learn(src, ingress, now)) {
      this.counters.spoofed++;
      return false;
    }
    const clientOnly = this.isolateClients && ingress.uplink !== true;

    if ((frame[0]! & 1) === 0) {
      const entry = this.table.get(dst);
      if (entry !== undefined && (entry.pinned || now - entry.seen <= this.ageingMs) && this.ports.has(entry.port)) {
        if (entry.port === ingress) {
          this.counters.filtered++;
          return true;
        }
        if (clientOnly && entry.port.uplink !== true) {
          this.counters.isolated++;
          return false;
        }
        this.counters.forwarded++;
        entry.port.deliver(frame);
        return true;
      }
    }
    this.counters.flooded++;
    for (const port of this.ports) if (port !== ingress && (!clientOnly || port.uplink === true)) port.deliver(frame);
    return true;
  }

  /** Learns `mac` behind `port`; false when the MAC belongs elsewhere and must not move. */
  private learn(mac: string, port: SwitchPort, now: number): boolean {
    const entry = this.table.get(mac);
    if (entry !== undefined) {
      if (entry.port !== port && this.ports.has(entry.port)) {
        if (entry.pinned) return false;
        const fresh = now - entry.seen <= this.ageingMs && (entry.port.attached !== false || now - entry.seen <= this.moveHoldMs);
        if (fresh) return false;
      }
      if (entry.pinned) return true;
      const moved = entry.port !== port;
      entry.port = port;
      entry.seen = now;
      if (moved) this.onChange(mac, port);
      return true;
    }
    if (this.table.size >= this.maxEntries) {
      // A scan of the whole table per frame would make a flood of new source MACs
      // into a full table cost O(table) each: scan at most once a second instead.
      if (now - this.lastFullScan >= FULL_SCAN_INTERVAL_MS) {
        this.lastFullScan = now;
        this.expire(now);
      }
      if (this.table.size >= this.maxEntries) {
        this.counters.tableFull++;
        return true;
      }
    }
    this.table.set(mac, { port, seen: now, pinned: false });
    this.onChange(mac, port);
    return true;
  }

  /** Drops entries older than the ageing time (pinned ones stay). */
  expire(now = this.now()): void {
    for (const [mac, entry] of this.table) if (!entry.pinned && now - entry.seen > this.ageingMs) this.delete(mac);
  }
}
