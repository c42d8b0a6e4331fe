/**
 * The in-memory twin of the datagram socket, for unit tests: sockets on one
 * `MemoryDatagramNetwork` reach each other by address and port. Like the kernel it
 * copies a datagram when it is sent, delivers on a later turn of the event loop in
 * the order sent, loses datagrams to nobody, bounds what one socket has in flight,
 * and lets a connected socket hear only its peer. `intercept` sees every datagram
 * in flight (to lose, alter or record it).
 */
import { encodeData } from '../protocol.js';
import { anyAddress, type AddressFamily, type DatagramSocket, type DatagramSocketFactory, type OpenDatagramOptions, type PeerKey } from './datagram-socket.js';

export interface MemoryDatagramNetworkOptions {
  /** The address a socket bound to the wildcard sends from; default 127.0.0.1. */
  localAddress?: string;
}

/** Returns the datagram to deliver (the same or another), or undefined to lose it. */
export type Interceptor = (datagram: Buffer, from: string, to: string) => Buffer | undefined;

const DEFAULT_MAX_IN_FLIGHT = 1024;
const FIRST_EPHEMERAL_PORT = 40_000;

export class MemoryDatagramNetwork {
  intercept: Interceptor | undefined;
  private readonly bound = new Map<string, MemoryDatagramSocket>();
  private nextPort = FIRST_EPHEMERAL_PORT;
  private readonly localAddress: string;

  constructor(options: MemoryDatagramNetworkOptions = {}) {
    this.localAddress = options.localAddress ?? '127.0.0.1';
  }

  /** A DatagramSocketFactory on this network: what a transport's `datagrams` option takes. */
  readonly open: DatagramSocketFactory = async (options) => {
    const host = options.host ?? anyAddress(options.family);
    const port = options.port || this.freePort(host);
    const key = `${host}:${port}`;
    if (this.bound.has(key)) throw Object.assign(new Error(`bind ${key}: address in use`), { code: 'EADDRINUSE' });
    const socket = new MemoryDatagramSocket(this, options, host, port, host === anyAddress(options.family) ? this.localAddress : host);
    this.bound.set(key, socket);
    return socket;
  };

  /** Sockets bound now (a test checks that a transport closed its own). */
  get size(): number {
    return this.bound.size;
  }

  /** @internal Puts one datagram in flight from `sender` toward `to` (address:port). */
  post(sender: MemoryDatagramSocket, datagram: Buffer, to: string): void {
    const from = sender.source;
    const copy = Buffer.from(datagram); // the sender may reuse its buffer at once
    sender.inFlight++;
    setImmediate(() => {
      sender.inFlight--;
      const delivered = this.intercept === undefined ? copy : this.intercept(copy, from, to);
      if (delivered === undefined) return;
      const colon = to.lastIndexOf(':');
      const target = this.bound.get(to) ?? this.bound.get(`${anyAddress(sender.family)}:${to.slice(colon + 1)}`);
      target?.receive(delivered, from);
    });
  }

  /** @internal */
  release(socket: MemoryDatagramSocket): void {
    if (this.bound.get(socket.bindKey) === socket) this.bound.delete(socket.bindKey);
  }

  private freePort(host: string): number {
    while (this.bound.has(`${host}:${this.nextPort}`)) this.nextPort++;
    return this.nextPort++;
  }
}

export class MemoryDatagramSocket implements DatagramSocket {
  readonly family: AddressFamily;
  readonly filtered = 0;
  /** @internal Datagrams sent and not yet delivered. */
  inFlight = 0;
  private handler: ((datagram: Buffer, from: PeerKey) => void) | undefined;
  private readonly connected: string | undefined;
  private readonly maxInFlight: number;
  private open = true;
  /** address:port as receivers see it. */
  readonly source: string;

  constructor(
    private readonly network: MemoryDatagramNetwork,
    options: OpenDatagramOptions,
    readonly address: string,
    readonly port: number,
    sourceAddress: string,
  ) {
    this.family = options.family;
    this.connected = options.connect === undefined ? undefined : `${options.connect.address}:${options.connect.port}`;
    this.maxInFlight = options.maxQueueDatagrams ?? DEFAULT_MAX_IN_FLIGHT;
    this.source = `${sourceAddress}:${port}`;
  }

  get bindKey(): string {
    return `${this.address}:${this.port}`;
  }

  onDatagram(handler: (datagram: Buffer, from: PeerKey) => void): void {
    this.handler = handler;
  }

  /** @internal */
  receive(datagram: Buffer, from: string): void {
    if (!this.open || (this.connected !== undefined && from !== this.connected)) return;
    this.handler?.(datagram, from);
  }

  peerAddress(peer: PeerKey): { address: string; port: number } {
    const key = peer as string;
    const colon = key.lastIndexOf(':');
    return { address: key.slice(0, colon), port: Number(key.slice(colon + 1)) };
  }

  sendDatagrams(datagrams: Buffer[], to?: PeerKey): number {
    const target = (to as string | undefined) ?? this.connected;
    if (target === undefined) throw new Error('send on an unconnected memory socket needs a peer');
    let sent = 0;
    for (const d of datagrams) {
      if (!this.open || this.inFlight >= this.maxInFlight) break;
      this.network.post(this, d, target);
      sent++;
    }
    return sent;
  }

  sendFrames(frames: Buffer[], to?: PeerKey): number {
    return this.sendDatagrams(frames.map((f) => Buffer.concat(encodeData(f))), to);
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    this.network.release(this);
  }
}
