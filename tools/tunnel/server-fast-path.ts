/**
 * The server's half of the native data fast path (native/server_fastpath.h): on UDP
 * over the addon's batch socket (plain, or --tls with each session's sealer in the
 * addon, secure/native-sealer.ts), and on plain TCP (each session's connection
 * driven by the addon, link/native-stream.ts), a client's data frames to the server's TAP and
 * the TAP's replies to that client cross the server without a JavaScript call per
 * wake-up — the server's CPU on each lone frame of a request/response round trip was
 * the larger half of the tunnel's added round trip once the client had its own path.
 *
 * TypeScript still decides everything: the addon holds a copy of the decisions (which
 * session a link address belongs to, which session the switch learned a MAC behind,
 * a separate-mode session's destination) and forwards only what the switch and the
 * separate-mode policy would forward the same way; the rest comes here as before.
 * `sync` brings the native counters into the sessions' and the TAP's statistics and
 * carries what users rely on: a session the path heard from is alive, and a MAC it
 * forwarded for stays learned.
 */
import { isIPv4 } from 'node:net';
import { ipToInt } from './link/batch-udp.js';
import { loadAddon, type NativeServerFastPath } from './native.js';
import type { FastPathEnd, FastPathFrames, FastPathTap } from './fast-path.js';
import type { Session } from './session.js';
import type { TunnelStats } from './stats.js';
import type { LearningSwitch, SwitchPort } from './switch.js';

/** Per peer in the counters: id, framesIn, bytesIn, framesOut, bytesOut, dropsOut, msSinceHeard. */
const PEER_FIELDS = 7;
const TAP_FIELDS = 5;

export interface ServerFastPathOptions {
  /** The server TAP's MAC (aa:bb:..): the only one a client's frame may be for, and the TAP's frames are from. */
  tapMac: string;
  /** Separate mode: only IPv4 to the server or the session's destination goes natively. */
  separate: boolean;
  /** The server's tunnel address (IPv4). */
  serverAddress: string;
  /** Where learned MACs are refreshed with the native traffic. */
  sw: LearningSwitch;
  /** The server TAP's statistics. */
  tapStats: TunnelStats;
  now: () => number;
}

/**
 * Adds to `stats` what the addon counted since `before` (both cumulative, in its
 * order: framesIn, bytesIn, framesOut, bytesOut, dropsOut); returns the differences.
 */
function addCounted(stats: TunnelStats, now: number[], before: number[]): number[] {
  const d = now.map((v, i) => v - before[i]!);
  stats.framesIn += d[0]!;
  stats.bytesIn += d[1]!;
  stats.framesOut += d[2]!;
  stats.bytesOut += d[3]!;
  stats.dropsQueue += d[4]!;
  return d;
}

/** A MAC as the switch keys it (12 hex digits) <-> as the addon does (a 48-bit number, exact in a double). */
const macNumber = (mac: string): number => Number.parseInt(mac.replace(/:/g, ''), 16);
const macHex = (mac: number): string => mac.toString(16).padStart(12, '0');

export class ServerFastPath {
  private readonly ids = new Map<Session, number>();
  private readonly sessions = new Map<number, Session>();
  /** What each peer's cumulative counters were at the last sync. */
  private readonly seen = new Map<number, number[]>();
  /** Each session's TCP connection in the addon, attached to the path. */
  private readonly streams = new Map<number, FastPathEnd>();
  private seenTap = [0, 0, 0, 0, 0];
  private nextId = 1;
  private closed = false;
  /** Frames moved natively so far, by direction (rx: from clients). */
  readonly frames: FastPathFrames = { rx: 0, tx: 0 };

  private constructor(
    private readonly native: NativeServerFastPath,
    private readonly ends: FastPathEnd[],
    private readonly o: ServerFastPathOptions,
  ) {}

  /** Links the server's TAP and socket; both readers hand their wake-ups to the path first from now on. */
  static open(tap: FastPathTap, socket: FastPathEnd, options: ServerFastPathOptions): ServerFastPath {
    const native = new (loadAddon().fastPath.ServerFastPath)(tap.fd, tap.offload, socket.fd, macNumber(options.tapMac), options.separate, ipToInt(options.serverAddress));
    return ServerFastPath.over(native, [tap, socket], options);
  }

  /** The same over a native path already made (unit tests give an in-memory twin). */
  static over(native: NativeServerFastPath, ends: FastPathEnd[], options: ServerFastPathOptions): ServerFastPath {
    for (const end of ends) end.attachFastPath(native);
    return new ServerFastPath(native, ends, options);
  }

  /** Tells the path where `session` is now: its link's address (none while detached) and its destination. */
  track(session: Session): void {
    if (this.closed) return;
    let id = this.ids.get(session);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(session, id);
      this.sessions.set(id, session);
    }
    // Plain TCP: the connection goes to the addon now (its address is known after).
    const stream = session.link?.streamEnd?.();
    const at = session.link?.nativeAddress;
    const dest = session.destination;
    // An IPv6 --dest stays with the policy in TypeScript: the addon checks IPv4 only.
    const destIp = dest !== undefined && isIPv4(dest) ? ipToInt(dest) : 0;
    this.native.setPeer(id, at?.ip ?? 0, at?.port ?? 0, destIp, stream?.stream, session.link?.nativeSealer);
    this.attachStream(id, stream);
  }

  /** The session's TCP connection (if any) hands its messages to the path first; a previous one lets go. */
  private attachStream(id: number, end: FastPathEnd | undefined): void {
    const before = this.streams.get(id);
    if (before === end) return;
    before?.attachFastPath(undefined);
    if (end === undefined) this.streams.delete(id);
    else {
      end.attachFastPath(this.native);
      this.streams.set(id, end);
    }
  }

  /** The session ended: its last counters are synced, then it and its MACs leave the path. */
  remove(session: Session): void {
    const id = this.ids.get(session);
    if (id === undefined || this.closed) return;
    this.sync();
    this.native.removePeer(id);
    this.attachStream(id, undefined);
    this.ids.delete(session);
    this.sessions.delete(id);
    this.seen.delete(id);
  }

  /** The switch's change event: `mac` is now behind `port` (undefined: forgotten). */
  switchChanged(mac: string, port: SwitchPort | undefined): void {
    if (this.closed) return;
    const id = port === undefined ? undefined : this.ids.get(port as Session);
    if (id === undefined) this.native.forget(macNumber(mac));
    else this.native.learn(macNumber(mac), id);
  }

  /** Adds what the path moved since the last sync to the statistics, and refreshes liveness and learned MACs. */
  sync(): void {
    if (this.closed) return;
    const c = this.native.counters();
    const now = this.o.now();
    // The TAP's five and each peer's five counters come in the same order.
    const tap = c.slice(0, TAP_FIELDS);
    addCounted(this.o.tapStats, tap, this.seenTap);
    this.seenTap = tap;
    const peers = c[TAP_FIELDS]!;
    let at = TAP_FIELDS + 1;
    for (let p = 0; p < peers; p++, at += PEER_FIELDS) {
      const id = c[at]!;
      const session = this.sessions.get(id);
      const cur = c.slice(at + 1, at + PEER_FIELDS - 1);
      const before = this.seen.get(id) ?? [0, 0, 0, 0, 0];
      this.seen.set(id, cur);
      if (session === undefined) continue;
      const d = addCounted(session.stats, cur, before);
      this.frames.rx += d[0]!;
      this.frames.tx += d[2]!;
      // Data the path took is the client heard, and after its hello: confirmed.
      if (d[0]! > 0) session.confirmed = true;
      const heard = c[at + PEER_FIELDS - 1]!;
      // Whole milliseconds, as the server's own clock readings (the addon's are fractional).
      if (heard >= 0) session.lastSeen = Math.max(session.lastSeen, now - Math.round(heard));
    }
    const macs = c[at]!;
    for (let m = 0, i = at + 1; m < macs; m++, i += 2) {
      const ms = c[i + 1]!;
      if (ms >= 0) this.o.sw.touch(macHex(c[i]!), now - Math.round(ms));
    }
  }

  /** Stops forwarding (the readers hand everything to JavaScript again) after a last sync. */
  close(): void {
    if (this.closed) return;
    this.sync();
    this.closed = true;
    this.native.close();
    for (const end of [...this.ends, ...this.streams.values()]) end.attachFastPath(undefined);
    this.streams.clear();
  }
}

