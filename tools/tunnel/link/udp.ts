/**
 * UDP, the default transport (no TCP-over-TCP meltdown): one or more messages per
 * datagram. Plain, the server keeps no state for a stranger until a valid hello
 * admits it; with --tls every datagram is sealed (sealed-udp.ts). Sends are bounded
 * by the socket: beyond, frames are dropped and counted, never retransmitted.
 */
import { formatHostPort } from '../../common/index.js';
import type { FastPathEnd } from '../fast-path.js';
import type { TlsMaterial } from '../secure/index.js';
import { ipToInt } from './batch-udp.js';
import type { DatagramSocket, PeerKey } from './datagram-socket.js';
import { dispatchDatagram, dispatchToServer, listenFamily, openClientSocket } from './datagrams.js';
import { gateFor, listenError } from './listen.js';
import { openDatagramSocket } from './open-socket.js';
import { connectSealedUdp, SealedUdpServer } from './sealed-udp.js';
import type { ClientLink, ConnectOptions, PeerLink, ServerTransport, ServerTransportOptions } from './types.js';

export class UdpServerTransport implements ServerTransport {
  readonly kind = 'udp' as const;
  private socket: DatagramSocket | undefined;
  /** Plain peers the server retained (a valid hello), by the socket's key: no string per datagram. */
  private readonly links = new Map<PeerKey, DatagramPeerLink>();
  /** With --tls: the TLS control listener on the same TCP port, and the sessions' keys. */
  private readonly sealed: SealedUdpServer | undefined;

  constructor(private readonly options: ServerTransportOptions) {
    this.sealed = options.tls === undefined ? undefined : new SealedUdpServer({ ...options, tls: options.tls }, gateFor(options));
  }

  filteredDatagrams(): number {
    return this.socket?.filtered ?? 0;
  }

  keptPeers(): number {
    return this.links.size;
  }

  /**
   * The addon's socket. With --tls a session joins the path only with the addon's
   * sealer (SealedPeerLink.nativeAddress); the path finds its datagrams by key id.
   */
  get fastPath(): FastPathEnd | undefined {
    return this.socket?.fastPath;
  }

  reloadTls(material: TlsMaterial, revoked: Set<string>): number {
    return this.sealed?.reload(material, revoked) ?? 0;
  }

  async listen(): Promise<{ address: string; port: number }> {
    const bound = await this.listenDatagrams();
    if (this.sealed !== undefined) {
      try {
        await this.sealed.listen(this.options.host, bound.port, (e) => listenError(e, this.options.host, bound.port, 'tcp'));
      } catch (e) {
        await this.close();
        throw e;
      }
    }
    return bound;
  }

  private async listenDatagrams(): Promise<{ address: string; port: number }> {
    const { host, port, handlers } = this.options;
    let socket: DatagramSocket;
    try {
      socket = await (this.options.datagrams ?? openDatagramSocket)({ family: listenFamily(host), host, port, maxQueueDatagrams: this.options.maxQueueDatagrams });
    } catch (e) {
      throw listenError(e, host, port, 'udp');
    }
    this.socket = socket;
    const sealed = this.sealed;
    socket.onDatagram((received, from) => {
      if (sealed !== undefined) {
        const opened = sealed.receive(received, from, socket);
        if (opened !== undefined) dispatchToServer(handlers, opened.link, opened.plain, true);
        return;
      }
      dispatchToServer(handlers, this.links.get(from) ?? this.stranger(socket, from), received, false);
    });
    return { address: socket.address, port: socket.port };
  }

  /** A link for one datagram: not stored until the server retains it, so a stranger leaves nothing behind. */
  private stranger(socket: DatagramSocket, from: PeerKey): DatagramPeerLink {
    const created: DatagramPeerLink = new DatagramPeerLink(
      socket,
      from,
      () => {
        if (this.links.get(from) === created) this.links.delete(from);
      },
      () => this.links.set(from, created),
    );
    return created;
  }

  async close(): Promise<void> {
    await this.sealed?.close();
    const socket = this.socket;
    this.socket = undefined;
    await socket?.close();
  }
}

/** A plain UDP peer: frames leave in one batch; what the socket cannot take is dropped. */
class DatagramPeerLink implements PeerLink {
  readonly transport = 'udp' as const;
  readonly id: string;
  readonly source: string;
  readonly nativeAddress: { ip: number; port: number } | undefined;

  constructor(
    private readonly socket: DatagramSocket,
    private readonly peer: PeerKey,
    private readonly forget: () => void,
    readonly retain: () => void,
  ) {
    const { address, port } = socket.peerAddress(peer);
    this.source = address;
    this.id = formatHostPort(address, port);
    this.nativeAddress = socket.fastPath === undefined ? undefined : { ip: ipToInt(address), port };
  }

  send(message: Buffer): boolean {
    return this.socket.sendDatagrams([message], this.peer) === 1;
  }

  sendFrames(frames: Buffer[]): number {
    return this.socket.sendFrames(frames, this.peer);
  }

  close(): void {
    this.forget();
  }
}

/** The client's UDP link: plain on a connected socket, or sealed with --tls. */
export async function connectUdp(options: ConnectOptions): Promise<ClientLink> {
  if (options.tls !== undefined) return connectSealedUdp({ ...options, tls: options.tls });
  const socket = await openClientSocket(options);
  socket.onDatagram((datagram) => dispatchDatagram(datagram, options.handlers.message, options.handlers.invalid));
  let open = true;
  return {
    transport: 'udp',
    fastPath: socket.fastPath,
    send(message) {
      return open && socket.sendDatagrams([message]) === 1;
    },
    sendFrames(frames) {
      return open ? socket.sendFrames(frames) : 0;
    },
    close() {
      if (!open) return;
      open = false;
      void socket.close();
    },
  };
}
