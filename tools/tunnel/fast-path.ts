/**
 * The data fast path's wiring (native/fastpath.h): while the client's session is up
 * on plain UDP over the addon's batch socket, or on plain TCP (whose connection the
 * addon then drives, native/stream_link.h), data frames move between its TAP and the
 * link inside the addon, without a JavaScript call per wake-up, which cost the client
 * CPU on every lone frame of a request/response round trip. The control plane (hello,
 * welcome, ping, bye, errors) stays in TypeScript; so does the decision when the path
 * may run: it is opened on welcome and closed the moment the session is not up. With
 * --tls over UDP the addon seals and opens the data datagrams with the session's own
 * sealer (secure/native-sealer.ts), whose counter the control messages share; --tls
 * over TCP (a TLS stream) stays in TypeScript.
 *
 * What users see stays true: the native counters are added to the end's statistics
 * (`sync`), and a datagram the path took still counts as hearing from the server.
 */
import { loadAddon, type NativeFastPath, type NativeForwarder, type NativeSealerHandle, type NativeStreamLink } from './native.js';
import type { TunnelStats } from './stats.js';

/** One end of the path: an addon reader's fd, and a way to hand the reader the path. */
export interface FastPathEnd {
  /** The TAP's or the UDP socket's; -1 for a TCP connection, which is `stream`. */
  readonly fd: number;
  /** A plain TCP connection in the addon: the path writes the frames for the peer to it. */
  readonly stream?: NativeStreamLink;
  /** --tls over UDP: the session's sealer in the addon; the path seals and opens every datagram with it. */
  readonly sealer?: NativeSealerHandle;
  attachFastPath(path: NativeForwarder | undefined): void;
}

/** The TAP end also says whether its fd carries virtio-net headers. */
export interface FastPathTap extends FastPathEnd {
  readonly offload: boolean;
}

/** Frames the fast path moved, by direction (rx: from the server to the TAP). */
export interface FastPathFrames {
  rx: number;
  tx: number;
}

export class ClientFastPath {
  /** Counters already added to the stats: the native ones are cumulative. */
  private seen = [0, 0, 0, 0, 0, 0];
  private closed = false;

  private constructor(
    private readonly native: NativeFastPath,
    private readonly ends: FastPathEnd[],
  ) {}

  /** Links the TAP and the connected socket (or TCP connection); both readers forward from now on. */
  static open(tap: FastPathTap, socket: FastPathEnd): ClientFastPath {
    const native = new (loadAddon().fastPath.FastPath)(tap.fd, tap.offload, socket.fd, socket.stream, socket.sealer);
    tap.attachFastPath(native);
    socket.attachFastPath(native);
    return new ClientFastPath(native, [tap, socket]);
  }

  /**
   * Adds what the path moved since the last sync to `stats`; returns how long ago
   * the path last received a datagram from the server (undefined: never).
   */
  sync(stats: TunnelStats): number | undefined {
    const c = this.native.counters();
    const d = c.slice(0, 6).map((v, i) => v - this.seen[i]!);
    this.seen = c.slice(0, 6);
    stats.framesOut += d[0]!;
    stats.bytesOut += d[1]!;
    stats.framesIn += d[3]!;
    stats.bytesIn += d[4]!;
    stats.dropsQueue += d[2]! + d[5]!;
    return c[6]! < 0 ? undefined : c[6];
  }

  /** Frames moved natively so far (all of them are also in the stats once synced). */
  get frames(): FastPathFrames {
    return { tx: this.seen[0]!, rx: this.seen[3]! };
  }

  /** Stops forwarding (the readers hand everything to JavaScript again) after a last sync. */
  close(stats: TunnelStats): void {
    if (this.closed) return;
    this.closed = true;
    this.sync(stats);
    this.native.close();
    for (const end of this.ends) end.attachFastPath(undefined);
  }
}
