/**
 * node:dgram as a DatagramSocket: the path where the addon has no batch socket. One
 * send call per datagram, bounded by a user-space send queue.
 */
import dgram from 'node:dgram';
import { encodeData } from '../protocol.js';
import type { AddressFamily, DatagramSocket, OpenDatagramOptions, PeerKey } from './datagram-socket.js';

/** SO_RCVBUF and SO_SNDBUF asked for (the kernel caps them at rmem_max/wmem_max). */
const SOCKET_BUFFER_BYTES = 4 << 20;
const DEFAULT_MAX_QUEUE_DATAGRAMS = 1024;

export class NodeDatagramSocket implements DatagramSocket {
  readonly filtered = 0;
  private open = true;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly family: AddressFamily,
    private readonly maxQueue: number,
  ) {}

  /** Rejects with the socket's own error (its errno `code` kept); nothing is left open. */
  static async open(options: OpenDatagramOptions & { host: string }): Promise<NodeDatagramSocket> {
    const socket = dgram.createSocket({ type: options.family === 4 ? 'udp4' : 'udp6', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(options.port ?? 0, options.host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      const to = options.connect;
      if (to !== undefined) {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.connect(to.port, to.address, () => {
            socket.off('error', reject);
            resolve();
          });
        });
      }
    } catch (e) {
      try {
        socket.close();
      } catch {
        // Already closed by the failed bind.
      }
      throw e;
    }
    // ICMP errors toward one peer (port unreachable; ECONNREFUSED on a connected
    // socket) surface here on Linux. They concern that peer only, and the keepalive
    // decides when a link is dead: not an error of the socket.
    socket.on('error', () => {});
    return new NodeDatagramSocket(socket, options.family, options.maxQueueDatagrams ?? DEFAULT_MAX_QUEUE_DATAGRAMS);
  }

  get address(): string {
    return this.socket.address().address;
  }

  get port(): number {
    return this.socket.address().port;
  }

  onDatagram(handler: (datagram: Buffer, from: PeerKey) => void): void {
    this.socket.on('message', (datagram, rinfo) => handler(datagram, `${rinfo.address}:${rinfo.port}`));
  }

  peerAddress(peer: PeerKey): { address: string; port: number } {
    const key = peer as string;
    const colon = key.lastIndexOf(':'); // an IPv6 address has colons, the port none
    return { address: key.slice(0, colon), port: Number(key.slice(colon + 1)) };
  }

  sendDatagrams(datagrams: Buffer[], to?: PeerKey): number {
    // Copies: the caller may reuse its buffers (sealed batches are views of one), and dgram sends later.
    return this.sendEach(datagrams, to, (d) => Buffer.from(d));
  }

  sendFrames(frames: Buffer[], to?: PeerKey): number {
    return this.sendEach(frames, to, (frame) => Buffer.concat(encodeData(frame)));
  }

  private sendEach(buffers: Buffer[], to: PeerKey | undefined, own: (b: Buffer) => Buffer): number {
    const peer = to === undefined ? undefined : this.peerAddress(to);
    let sent = 0;
    for (const b of buffers) {
      if (!this.open || this.socket.getSendQueueCount() >= this.maxQueue) break;
      try {
        if (peer === undefined) this.socket.send(own(b));
        else this.socket.send(own(b), peer.port, peer.address);
      } catch {
        break; // the socket is closing: the datagram is lost as on a downed link
      }
      sent++;
    }
    return sent;
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
