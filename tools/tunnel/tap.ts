/** The real TAP device, on the native addon. */
import { CtunError, ExitCode, errnoCode } from '../common/index.js';
import type { FrameDevice } from './device.js';
import type { FastPathTap } from './fast-path.js';
import { loadAddon, type BusyPollStats, type NativeForwarder, type NativeReader } from './native.js';

export interface TapOptions {
  /** Frames per wake-up of the event loop; default 64. */
  batch?: number;
  /** Largest frame read; default 65 536 (room for offloaded segments later). */
  slotSize?: number;
  /** `create` (the server makes its own TAP) or `attach` (the client uses the one configure made); default attach. Only changes the error hints. */
  role?: 'create' | 'attach';
  /**
   * The TAP's TSO/checksum offloads (virtio-net headers): a read or write carries a
   * TCP super-segment of up to 64 KiB, cut into ordinary frames here and coalesced
   * back before the TAP, so the wire is unchanged. Default true; where the kernel
   * refuses them the TAP opens without, and `offload` says so.
   */
  offload?: boolean;
  /**
   * After a wake-up that moved frames, how long (µs, at most) the process checks for
   * the next one before its event loop sleeps (native/busy_poll.h): a lockstep round
   * trip is then not slowed by sleeping and being woken at each end. Learned per
   * source, so waits beyond it soon cost nothing. Process-wide; 0 turns it off.
   * Default DEFAULT_BUSY_POLL_US.
   */
  busyPollUs?: number;
}

/** The kernel's haltpoll cpuidle governor polls up to 200 µs before it halts a vCPU, for the same reason. */
export const DEFAULT_BUSY_POLL_US = 200;
/** Longer spins save nothing: a sleep and its wake-up cost tens of microseconds. */
export const MAX_BUSY_POLL_US = 1000;

/**
 * How often an open TAP's process gives its freed C heap back (see `trimHeap` in
 * native/tap.cc): at full rate on TCP and TLS this keeps ~8 MB of freed read buffers
 * from staying resident; a trim of a heap this size takes well under a millisecond.
 */
export const HEAP_TRIM_INTERVAL_MS = 2000;

// With offloads, one wake-up's frames are packed into one buffer of this size (room
// for about fifteen 64 KiB super-segments cut into frames), and a wake-up reads no
// more than fills it: the rest waits in the TAP's queue. Reading on (2 MiB and more
// per wake-up) overran the TCP link's 1 MiB queue bound: drops, inner retransmits.
// 0.5, 1 and 2 MiB measured alike otherwise.
const OFFLOAD_READ_BYTES = 1024 * 1024;
const OFFLOAD_READ_FRAMES = 1024;

/** The process's busy-poll spins so far (see busyPollUs), in whole µs: spins, caught, spunUs, missedUs. */
export function busyPollFigures(): BusyPollStats {
  const s = loadAddon().busyPollStats();
  return { spins: s.spins, caught: s.caught, spunUs: Math.round(s.spunUs), missedUs: Math.round(s.missedUs) };
}

export class TapDevice implements FrameDevice {
  private readonly addon = loadAddon();
  readonly fd: number;
  private reader: NativeReader | undefined;
  /** Kept so that a reader made later (onFrames again) forwards too. */
  private attached: NativeForwarder | undefined;
  // The TAP is open for a tunnel end's whole life, and only real ends open one.
  private readonly heapTrim: NodeJS.Timeout;
  private closed = false;
  readonly name: string;
  private readonly batch: number;
  private readonly slotSize: number;
  /** Whether the TAP runs with offloads (asked for and accepted by the kernel). */
  readonly offload: boolean;

  /**
   * Opens the TAP `name`: creates it (needs NET_ADMIN) or attaches to an existing
   * persistent one (needs only ownership, which `ctun configure --user` grants).
   */
  constructor(name: string, options: TapOptions = {}) {
    this.batch = options.batch ?? 64;
    this.slotSize = options.slotSize ?? 65_536;
    try {
      const opened = this.addon.open(name, options.offload ?? true);
      this.fd = opened.fd;
      this.name = opened.name;
      this.offload = opened.offload;
    } catch (e) {
      throw tapOpenError(name, e, options.role ?? 'attach');
    }
    this.addon.busyPoll(options.busyPollUs ?? DEFAULT_BUSY_POLL_US);
    this.heapTrim = setInterval(() => this.addon.trimHeap(), HEAP_TRIM_INTERVAL_MS).unref();
  }

  onFrames(handler: (frames: Buffer[]) => void): void {
    this.reader?.stop();
    if (this.offload) {
      this.readCut(handler);
      this.reader!.attach(this.attached);
      return;
    }
    // allocUnsafeSlow: only the pages the kernel writes frames into become resident
    // (one per slot for ordinary frames), not the whole batch × 64 KiB.
    const buffer = Buffer.allocUnsafeSlow(this.batch * this.slotSize);
    const lengths = new Uint32Array(this.batch);
    const slot = this.slotSize;
    // Frames are views of the read buffer, not copies: valid until the handler and the
    // microtasks it queued have run (the next read refills the buffer); whoever keeps
    // a frame longer copies it (TCP and sealing do, by encoding it anew).
    const views = Array.from({ length: this.batch }, (_, i) => buffer.subarray(i * slot, (i + 1) * slot));
    this.reader = new this.addon.Reader(this.fd, buffer, lengths, slot, (count) => {
      const frames: Buffer[] = new Array(count);
      for (let i = 0; i < count; i++) frames[i] = views[i]!.subarray(0, lengths[i]!);
      handler(frames);
    });
    this.reader.attach(this.attached);
  }

  // Frames cut from super-segments, packed in one buffer; views valid as above.
  private readCut(handler: (frames: Buffer[]) => void): void {
    const buffer = Buffer.allocUnsafeSlow(OFFLOAD_READ_BYTES);
    const lengths = new Uint32Array(OFFLOAD_READ_FRAMES);
    const offsets = new Uint32Array(OFFLOAD_READ_FRAMES);
    this.reader = new this.addon.Reader(this.fd, buffer, lengths, 0, (count) => {
      const frames: Buffer[] = new Array(count);
      for (let i = 0; i < count; i++) frames[i] = buffer.subarray(offsets[i]!, offsets[i]! + lengths[i]!);
      handler(frames);
    }, offsets);
  }

  get fastPath(): FastPathTap {
    return this;
  }

  /** The data fast path takes every wake-up's frames while attached (fast-path.ts); undefined detaches. */
  attachFastPath(path: NativeForwarder | undefined): void {
    this.attached = path;
    this.reader?.attach(path);
  }

  writeFrames(frames: Buffer[]): number {
    if (this.closed || frames.length === 0) return 0;
    return this.addon.writeFrames(this.fd, frames, this.offload);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heapTrim);
    // Nothing may forward into a closed (and soon reused) fd number.
    this.attached?.close();
    this.reader?.stop();
    this.addon.close(this.fd);
  }
}

function tapOpenError(name: string, e: unknown, role: 'create' | 'attach'): CtunError {
  const code = errnoCode(e);
  if ((code === 'EPERM' || code === 'EACCES') && role === 'create') {
    return new CtunError('TAP_PERMISSION', `not allowed to create TAP ${name}: the server needs the NET_ADMIN capability`, {
      hint: 'run it as root, or in a container with --cap-add NET_ADMIN --device /dev/net/tun',
      exitCode: ExitCode.Privileges,
      cause: e,
    });
  }
  if (code === 'EPERM' || code === 'EACCES') {
    return new CtunError('TAP_PERMISSION', `not allowed to open TAP ${name}: it needs NET_ADMIN, or a persistent TAP owned by this user`, {
      hint: `create it once as root: sudo ctun configure --tap ${name} ADDRESS --user $USER`,
      exitCode: ExitCode.Privileges,
      cause: e,
    });
  }
  if (code === 'ENOENT' || code === 'ENODEV') {
    return new CtunError('NO_TUN_DEVICE', '/dev/net/tun is not available', {
      hint: 'load the tun module (modprobe tun) or, in a container, pass --device /dev/net/tun',
      exitCode: ExitCode.Device,
      cause: e,
    });
  }
  if (code === 'EBUSY') {
    return new CtunError('TAP_BUSY', `TAP ${name} is in use by another program`, {
      hint: 'stop the other ctun client on this TAP, or choose another with --tap',
      exitCode: ExitCode.Device,
      cause: e,
    });
  }
  if (code === 'EINVAL') {
    return new CtunError('TAP_INVALID', `${name} exists but is not a TAP device`, {
      hint: 'choose another name with --tap, or remove that interface',
      exitCode: ExitCode.Device,
      cause: e,
    });
  }
  return new CtunError('TAP_OPEN', `cannot open TAP ${name}: ${(e as Error).message}`, { exitCode: ExitCode.Device, cause: e });
}
