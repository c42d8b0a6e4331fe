/**
 * A UDP socket for the tunnel's data path on the native addon: datagrams arrive in
 * batches (one recvmmsg and one JavaScript call per wake-up, GRO runs split) and leave
 * in batches (one sendmmsg per batch, runs of equal size as one GSO message, the
 * 4-byte Data header added natively without copying the frame). Node's dgram costs one system call and one callback per datagram, which at
 * tunnel rates is most of the CPU. Wire format as PROTOCOL.md; nothing else changes.
 */
import { isIPv4 } from 'node:net';
import { loadAddon, type NativeForwarder, type NativeReader, type TapAddon } from '../native.js';

/** An IPv4 address as a host-order integer, the form the addon takes. */
export function ipToInt(address: string): number {
  const p = address.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

export function intToIp(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

export interface BatchUdpOptions {
  /** SO_RCVBUF and SO_SNDBUF; default 4 MiB (capped by the kernel's rmem_max/wmem_max). */
  bufferBytes?: number;
  /** Datagrams per wake-up; default 64. */
  batch?: number;
  /**
   * UDP GSO on send and GRO on receive where the kernel offers them; default true.
   * false takes the path of a kernel without them (one datagram per message both
   * ways): the wire is the same either way, and tests force it to prove that.
   */
  offload?: boolean;
}

/** Largest datagram accepted: a u16 message length plus its header. Bigger ones are truncated and dropped. */
const SLOT = 65_536;

export class BatchUdpSocket {
  private readonly addon: TapAddon;
  private reader: (NativeReader & { filtered(): number; coalesced(): number }) | undefined;
  /** Kept so that a reader made later (onDatagrams again) forwards too. */
  private attached: NativeForwarder | undefined;
  private closed = false;
  readonly fd: number;
  readonly port: number;

  private constructor(addon: TapAddon, opened: { fd: number; port: number }, private readonly batch: number) {
    this.addon = addon;
    this.fd = opened.fd;
    this.port = opened.port;
  }

  /** Binds host:port (port 0: any); throws an errno-coded error (EADDRINUSE, ...) as dgram would. */
  static bind(host: string, port: number, options: BatchUdpOptions = {}): BatchUdpSocket {
    const addon = loadAddon();
    if (!isIPv4(host)) throw Object.assign(new Error(`bind ${host}: not an IPv4 address`), { code: 'EINVAL' });
    return new BatchUdpSocket(addon, addon.udpOpen(host, port, options.bufferBytes ?? 4 << 20, options.offload ?? true), options.batch ?? 64);
  }

  /** Whether the addon in use has the batch UDP socket (an older build has not). */
  static available(): boolean {
    try {
      return typeof loadAddon().udpOpen === 'function';
    } catch {
      return false;
    }
  }

  /** Talks to one peer only (the client); sends then need no address. */
  connect(address: string, port: number): void {
    this.addon.udpConnect(this.fd, ipToInt(address), port);
  }

  /**
   * Calls `handler` for every datagram, with the sender. The datagram is a view of
   * the receive buffer, not a copy: valid until the handler and the microtasks it
   * queued have run, since the next wake-up refills the buffer. Whoever keeps a
   * datagram (or a frame in it) longer copies it.
   */
  onDatagrams(handler: (datagram: Buffer, ip: number, port: number) => void): void {
    this.reader?.stop();
    // allocUnsafeSlow: pages the kernel never writes to never become resident.
    const buffer = Buffer.allocUnsafeSlow(this.batch * SLOT);
    // A slot may hold a GRO run of up to 64 datagrams, each listed on its own.
    const capacity = this.batch * 64;
    const lengths = new Uint32Array(capacity);
    const offsets = new Uint32Array(capacity);
    const addrs = new Uint32Array(capacity * 2);
    this.reader = new this.addon.UdpReader(this.fd, buffer, lengths, offsets, addrs, SLOT, (count) => {
      for (let i = 0; i < count; i++) handler(buffer.subarray(offsets[i]!, offsets[i]! + lengths[i]!), addrs[2 * i]!, addrs[2 * i + 1]!);
    });
    this.reader.attach(this.attached);
  }

  /** The data fast path takes the Data-only datagrams of every wake-up while attached (fast-path.ts); undefined detaches. */
  attachFastPath(path: NativeForwarder | undefined): void {
    this.attached = path;
    this.reader?.attach(path);
  }

  /** Datagrams that arrived inside GRO runs (the kernel kept a sender's GSO run whole). */
  get coalesced(): number {
    return this.reader?.coalesced() ?? 0;
  }

  /** Datagrams the addon dropped as garbage before they reached JavaScript. */
  get filtered(): number {
    return this.reader?.filtered() ?? 0;
  }

  /** Sends each frame as one Data datagram; returns how many left (a full socket buffer drops the rest). */
  sendFrames(frames: Buffer[], ip = 0, port = 0): number {
    if (this.closed || frames.length === 0) return 0;
    return this.addon.udpSend(this.fd, frames, ip, port, true);
  }

  /** Sends whole datagrams (control messages, or datagrams sealed elsewhere). */
  sendDatagrams(datagrams: Buffer[], ip = 0, port = 0): number {
    if (this.closed || datagrams.length === 0) return 0;
    return this.addon.udpSend(this.fd, datagrams, ip, port, false);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Nothing may forward into a closed (and soon reused) fd number.
    this.attached?.close();
    this.reader?.stop();
    this.addon.close(this.fd);
  }
}
