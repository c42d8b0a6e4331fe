/**
 * The addon's batch UDP socket as a DatagramSocket: recvmmsg/sendmmsg (with GSO/GRO
 * where the kernel has them), one JavaScript call per batch. IPv4 only.
 */
import { BatchUdpSocket, intToIp } from './batch-udp.js';
import type { FastPathEnd } from '../fast-path.js';
import type { DatagramSocket, OpenDatagramOptions, PeerKey } from './datagram-socket.js';

/** ip * 65536 + port: exact in a double (48 bits), no string per datagram. */
const PORTS = 65_536;

export class AddonDatagramSocket implements DatagramSocket {
  readonly family = 4 as const;

  private constructor(
    private readonly socket: BatchUdpSocket,
    readonly address: string,
  ) {}

  /** Throws an errno-coded error (EADDRINUSE, ...) as dgram would. */
  static async open(options: OpenDatagramOptions & { host: string }): Promise<AddonDatagramSocket> {
    const socket = BatchUdpSocket.bind(options.host, options.port ?? 0);
    if (options.connect !== undefined) {
      try {
        socket.connect(options.connect.address, options.connect.port);
      } catch (e) {
        socket.close();
        throw e;
      }
    }
    return new AddonDatagramSocket(socket, options.host);
  }

  get port(): number {
    return this.socket.port;
  }

  /** The batch socket is the UDP end of the native data fast path. */
  get fastPath(): FastPathEnd {
    return this.socket;
  }

  get filtered(): number {
    return this.socket.filtered;
  }

  onDatagram(handler: (datagram: Buffer, from: PeerKey) => void): void {
    this.socket.onDatagrams((datagram, ip, port) => handler(datagram, ip * PORTS + port));
  }

  peerAddress(peer: PeerKey): { address: string; port: number } {
    const key = peer as number;
    return { address: intToIp(Math.floor(key / PORTS)), port: key % PORTS };
  }

  sendDatagrams(datagrams: Buffer[], to?: PeerKey): number {
    if (to === undefined) return this.socket.sendDatagrams(datagrams);
    return this.socket.sendDatagrams(datagrams, Math.floor((to as number) / PORTS), (to as number) % PORTS);
  }

  sendFrames(frames: Buffer[], to?: PeerKey): number {
    if (to === undefined) return this.socket.sendFrames(frames);
    return this.socket.sendFrames(frames, Math.floor((to as number) / PORTS), (to as number) % PORTS);
  }

  async close(): Promise<void> {
    this.socket.close();
  }
}
