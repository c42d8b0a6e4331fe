/**
 * Loads the TAP addon. Looked up, in order: `$CTUN_ADDON`; `native/ctun_tap.node`
 * beside the running script (the bundled `ctun` inside the images); then, through
 * node-gyp-build, the node-gyp output in the tree (a checkout after `npm ci`, or an
 * install that had to compile) or the prebuilt N-API binary for this platform
 * (`native/prebuilds/linux-x64/`, shipped by the release and the npm package).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodeGypBuild from 'node-gyp-build';
import { CtunError, ExitCode } from '../common/index.js';

export interface BusyPollStats {
  spins: number;
  caught: number;
  spunUs: number;
  missedUs: number;
}

export interface TapAddon {
  /** offload: ask for virtio-net headers with TSO/checksum offloads; `offload` in the result says whether the kernel took them. */
  open(name: string, offload?: boolean): { fd: number; name: string; offload: boolean };
  /** offload: the fd was opened with offloads; the batch is coalesced into super-segments where it can be. */
  writeFrames(fd: number, frames: Buffer[], offload?: boolean): number;
  close(fd: number): void;
  /** With `offsets` (an fd opened with offloads): frame i of a wake-up is buffer[offsets[i], offsets[i] + lengths[i]), cut from what was read. */
  Reader: new (fd: number, buffer: Buffer, lengths: Uint32Array, slotSize: number, onFrames: (count: number) => void, offsets?: Uint32Array) => NativeReader;
  /** Binds a non-blocking UDP socket (IPv4); `port` is the bound one. */
  udpOpen(host: string, port: number, bufferBytes: number, offload?: boolean): { fd: number; port: number };
  udpConnect(fd: number, ip: number, port: number): void;
  /** sendmmsg; `frames` true prefixes each buffer with a Data header. ip 0: the connected peer. Returns how many left. */
  udpSend(fd: number, buffers: Buffer[], ip: number, port: number, frames: boolean): number;
  /** Datagram i of a wake-up is buffer[offsets[i], offsets[i] + lengths[i]), from addrs[2i]:addrs[2i+1]. */
  UdpReader: new (fd: number, buffer: Buffer, lengths: Uint32Array, offsets: Uint32Array, addrs: Uint32Array, slotSize: number, onDatagrams: (count: number) => void) => NativeReader & { filtered(): number; coalesced(): number };
  /** Gives the C heap's free pages back to the kernel (glibc malloc_trim); whether any were. */
  trimHeap(): boolean;
  /** How long (µs, at most) the event loop spins for the next frame before it sleeps; 0: never (native/busy_poll.h). Process-wide. */
  busyPoll(limitMicros: number): void;
  /** The busy poll's spins so far: how many, how many a frame ended, their time and the time of those that ran out (µs). */
  busyPollStats(): BusyPollStats;
  /**
   * A sealed session's keys, counter and replay window (native/sealer.h), shared by
   * TypeScript's control messages and the data fast path. `derive` gives the key of a
   * direction and epoch (undefined: none), called when an epoch first needs one.
   */
  Sealer?: new (keyId: number, sendsC2s: boolean, cipher: string, rekeyInterval: number, windowBits: number, derive: (direction: 'c2s' | 's2c', epoch: number) => Buffer | undefined) => NativeSealerHandle;
  /** The addon's copy of the wire format (native/wire.h), held to protocol.ts and secure/aead.ts by wire-constants.test.ts. */
  wire: AddonWireConstants;
  /** The data fast path (native/fastpath.h): frames between TAP and socket without JavaScript. */
  fastPath: {
    /** The client's: every TAP frame to the connected server, its Data-only datagrams to the TAP. */
    FastPath: new (tapFd: number, tapOffload: boolean, udpFd: number, stream?: NativeStreamLink, sealer?: NativeSealerHandle) => NativeFastPath;
    /** The server's: per-session entries kept in step with its switch (native/server_fastpath.h). */
    ServerFastPath: new (tapFd: number, tapOffload: boolean, udpFd: number, tapMac: number, separate: boolean, serverIp: number) => NativeServerFastPath;
    /**
     * A TCP connection driven by the addon from now on (native/stream_link.h): `fd`
     * is dup'ed; `leftover` is what was read but not decoded yet; onBytes gets the
     * bytes of whole messages the attached path did not take (or, after a header that
     * is not ctun's, everything), onClosed the end of the connection (`sealFailure`:
     * the SealFailure code, 1-based, of a sealed record that did not open). With a
     * sealer the stream carries sealed records (TCP --tls after its switch): messages
     * in and out here stay plaintext.
     */
    StreamLink: new (
      fd: number,
      peerIp: number,
      peerPort: number,
      maxQueueBytes: number,
      maxPayload: number,
      leftover: Buffer,
      onBytes: (bytes: Buffer) => void,
      onClosed: (reason: string, sealFailure?: number) => void,
      sealer?: NativeSealerHandle,
      role?: 'client' | 'server',
    ) => NativeStreamLink;
    /** The frames of a datagram that is Data messages only, else null (what the path forwards), for the unit tests. */
    dataFrames(datagram: Buffer): Buffer[] | null;
  };
  /** The offload code the TAP runs (native/offload.cc), on Buffers, for the unit tests. */
  offload: {
    /** One packet as read from a TAP with offloads (virtio-net header + frame) into the ordinary frames a reader delivers; [] if dropped. */
    segment(packet: Buffer): Buffer[];
    /** The writes a batch of frames becomes: each as the bytes handed to the TAP (virtio-net header + frame) and how many frames it carries. */
    coalesce(frames: Buffer[]): { packet: Buffer; frames: number }[];
    vnetHeaderSize: number;
  };
}

/** A TAP or UDP reader of the addon; attach gives it a fast path that takes what it can of every wake-up. */
export interface NativeReader {
  stop(): void;
  attach(fastPath: NativeForwarder | undefined): void;
}

/** A TCP connection's reader and writer in the addon (native/stream_link.h). */
export interface NativeStreamLink {
  /** Queues whole messages; false (nothing queued) past the queue bound or once the connection failed. */
  write(bytes: Buffer): boolean;
  /** Bytes waiting for the socket. */
  queued(): number;
  attach(fastPath: NativeForwarder | undefined): void;
  /** Stops reading and writing and closes the addon's descriptor; no callback follows. */
  close(): void;
}

/** The addon's Sealer (native/sealer.h); secure/native-sealer.ts wraps it. */
export interface NativeSealerHandle {
  /** Seals each frame as a Data datagram into `out`, lengths[i] each; how many (fewer: exhausted, or no key). */
  sealFrames(frames: readonly Buffer[], out: Buffer, lengths: Uint32Array): number;
  /** header | ciphertext | tag of the parts, or null when the counter is exhausted or no key. */
  seal(parts: readonly Buffer[]): Buffer | null;
  /** Opens in place: the plaintext's length (after the 13-byte header), or minus the failure (1 truncated … 6 too-old). */
  open(datagram: Buffer): number;
  /** [send epoch, receive epoch]. */
  epochs(): [number, number];
}

/** Either end's fast path, as a reader takes it. */
export type NativeForwarder = NativeFastPath | NativeServerFastPath;

export interface NativeServerFastPath {
  /** The session `id`'s link address now (ip 0: detached); destIp: its admitted IPv4 --dest in separate mode, 0 for none; stream: its plain TCP connection's. */
  setPeer(id: number, ip: number, port: number, destIp: number, stream?: NativeStreamLink, sealer?: NativeSealerHandle): void;
  /** The session ended: its entry and MACs go. */
  removePeer(id: number): void;
  /** The switch learned `mac` (48 bits as a number) behind session `id`. */
  learn(mac: number, id: number): void;
  /** The switch forgot `mac`, or learned it behind a port that is not a session. */
  forget(mac: number): void;
  /**
   * [tapFramesIn, tapBytesIn, tapFramesOut, tapBytesOut, tapDropsOut, peers,
   * (id, framesIn, bytesIn, framesOut, bytesOut, dropsOut, msSinceHeard) per peer,
   * macs, (mac, msSinceSeen) per MAC]; cumulative, -1 for never.
   */
  counters(): number[];
  close(): void;
}

export interface NativeFastPath {
  /** [framesOut, bytesOut, dropsOut, framesIn, bytesIn, dropsIn, msSinceHeard (-1: never)], cumulative. */
  counters(): number[];
  /** Forwards nothing from now on: the readers hand everything to JavaScript again. */
  close(): void;
}

export interface AddonWireConstants {
  headerSize: number;
  typeData: number;
  typeMin: number;
  typeMax: number;
  sealedMarker: number;
  sealedKeyIdOffset: number;
  sealedCounterOffset: number;
  sealedHeaderSize: number;
  tagSize: number;
  keySize: number;
  nonceSize: number;
}

let addon: TapAddon | undefined;

function candidates(): string[] {
  const list: string[] = [];
  if (process.env.CTUN_ADDON) list.push(process.env.CTUN_ADDON);
  if (process.argv[1]) list.push(join(dirname(process.argv[1]), 'native', 'ctun_tap.node'));
  const tree = join(dirname(fileURLToPath(import.meta.url)), 'native');
  try {
    list.push(nodeGypBuild.path(tree));
  } catch {
    // Neither a build nor a prebuild for this platform: named in the error as the usual place.
    list.push(join(tree, 'build', 'Release', 'ctun_tap.node'));
  }
  return list;
}

let loadedFrom: string | undefined;

/** The file the addon was loaded from (undefined before loadAddon). */
export function addonPath(): string | undefined {
  return loadedFrom;
}

export function loadAddon(): TapAddon {
  if (addon !== undefined) return addon;
  const require = createRequire(import.meta.url);
  const tried = candidates();
  const found = tried.find((p) => existsSync(p));
  if (found === undefined) {
    throw new CtunError('ADDON_MISSING', `the TAP addon ctun_tap.node was not found (looked in ${tried.join(', ')})`, {
      hint: 'run `npm ci` (it builds the addon with node-gyp) or set CTUN_ADDON to the file',
      exitCode: ExitCode.Device,
    });
  }
  const loaded = require(found) as TapAddon;
  assertAddonCurrent(loaded, found);
  addon = loaded;
  loadedFrom = found;
  return addon;
}

/** What this ctun calls on the addon: a file from an older build (a stale CTUN_ADDON, a tree not rebuilt) lacks some. */
const REQUIRED_EXPORTS = ['open', 'writeFrames', 'close', 'Reader', 'udpOpen', 'udpConnect', 'udpSend', 'UdpReader', 'trimHeap', 'busyPoll', 'busyPollStats', 'fastPath', 'wire'] as const;

/** Throws ADDON_STALE, naming what is missing, unless `loaded` has every export this ctun calls. */
export function assertAddonCurrent(loaded: object, path: string): void {
  const missing = REQUIRED_EXPORTS.filter((name) => (loaded as Record<string, unknown>)[name] === undefined);
  if (missing.length === 0) return;
  throw new CtunError('ADDON_STALE', `the TAP addon ${path} is older than this ctun: it lacks ${missing.join(', ')}`, {
    hint: 'rebuild it with `npm ci` (or `npx node-gyp rebuild --directory tools/tunnel/native`), or point CTUN_ADDON at the addon of this release',
    exitCode: ExitCode.Device,
  });
}
