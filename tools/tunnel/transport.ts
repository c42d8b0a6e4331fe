/**
 * Transports carry encoded protocol messages between a client and the server. UDP
 * is the default (no TCP-over-TCP meltdown); TCP is for networks that pass only TCP.
 * Both present the same two small interfaces, so sessions and the switch never see
 * which one is in use. Send queues are bounded: beyond the bound, frames are dropped
 * and counted, as a NIC does, and never retransmitted by us.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net, { isIPv4 } from 'node:net';
import { CtunError, ExitCode, errnoCode } from '../common/index.js';
import { decodeDatagram, encodeData, HEADER_SIZE, MAX_FRAME, MessageType, ProtocolError, StreamDecoder, type Message } from './protocol.js';
import { BatchUdpSocket, intToIp, ipToInt } from './udpsocket.js';
import tls from 'node:tls';
import {
  admitClient,
  connectTls,
  peerFingerprint,
  peerIdentity,
  peerOf,
  peerRevoked,
  PendingGate,
  reportTlsError,
  serverTlsOptions,
  tlsFailure,
  refusedError,
  type SealFailure,
  type TlsMaterial,
} from './secure/index.js';
import { connectSealedUdp, SealedUdpServer, type DatagramOut } from './link/sealed-udp.js';

import type { ClientLink, ConnectOptions, PeerLink, ReplyBudget, ServerTransport, ServerTransportHandlers, ServerTransportOptions, TransportKind } from './link/types.js';

export type { ClientLink, ClientLinkHandlers, ConnectOptions, PeerLink, ReplyBudget, ServerTransport, ServerTransportHandlers, ServerTransportOptions, TransportKind } from './link/types.js';

function gateFor(o: ServerTransportOptions): PendingGate {
  return new PendingGate({ timeoutMs: o.helloTimeoutMs, max: o.maxPending, onDrop: (peer, reason) => o.handlers.pendingDropped?.(peer, reason) });
}

function listenError(e: unknown, host: string, port: number, kind: TransportKind): CtunError {
  const code = errnoCode(e);
  if (code === 'EADDRINUSE') {
    return new CtunError('ADDRESS_IN_USE', `${kind.toUpperCase()} port ${port} on ${host} is already in use`, {
      hint: `stop the other program on port ${port}, or choose another with --port`,
      exitCode: ExitCode.AddressInUse,
      cause: e,
    });
  }
  if (code === 'EACCES') {
    return new CtunError('PORT_PRIVILEGED', `not allowed to listen on port ${port}`, { hint: 'use a port above 1023 or run as root', exitCode: ExitCode.Privileges, cause: e });
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EINVAL') {
    return new CtunError('BAD_LISTEN_ADDRESS', `${host} is not an address of this host`, { hint: 'use --listen 0.0.0.0 or one of this host\'s addresses', exitCode: ExitCode.Usage, cause: e });
  }
  return new CtunError('LISTEN_FAILED', `cannot listen on ${kind} ${host}:${port}: ${(e as Error).message}`, { exitCode: ExitCode.Failure, cause: e });
}

/**
 * Decodes one datagram and hands on its messages, all or none: a datagram that is
 * not whole messages goes to `invalid` and nothing of it is acted on.
 */
function dispatchDatagram(datagram: Buffer, message: (m: Message) => void, invalid: (e: ProtocolError) => void): void {
  let messages: Message[];
  try {
    messages = decodeDatagram(datagram);
  } catch (e) {
    if (e instanceof ProtocolError) invalid(e);
    return;
  }
  for (const m of messages) message(m);
}

/** The server side of dispatchDatagram: plain datagrams carry a reply budget, sealed ones (authenticated) none. */
function dispatchToServer(handlers: ServerTransportHandlers, link: PeerLink, datagram: Buffer, sealed: boolean): void {
  const budget: ReplyBudget | undefined = sealed ? undefined : { bytes: datagram.length, replies: 1 };
  dispatchDatagram(datagram, (m) => handlers.message(link, m, budget), (e) => handlers.invalid(link, e, budget));
}

// ---------------------------------------------------------------- UDP server

export class UdpServerTransport implements ServerTransport {
  readonly kind = 'udp' as const;
  private socket: dgram.Socket | undefined;
  private batched: BatchUdpSocket | undefined;
  private readonly links = new Map<string, UdpPeerLink>();
  /** The batch socket's peers, keyed by ip * 65536 + port: no string per datagram. */
  private readonly batchedLinks = new Map<number, BatchUdpPeerLink>();
  /** With --tls: the TLS control listener on the same TCP port, and the sessions' keys. */
  private readonly sealed: SealedUdpServer | undefined;

  constructor(private readonly options: ServerTransportOptions) {
    this.sealed = options.tls === undefined ? undefined : new SealedUdpServer({ ...options, tls: options.tls }, gateFor(options));
  }

  filteredDatagrams(): number {
    return this.batched?.filtered ?? 0;
  }

  keptPeers(): number {
    return this.links.size + this.batchedLinks.size;
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
    if (BatchUdpSocket.available() && isIPv4(this.options.host)) return this.listenBatched();
    const { host, port, handlers } = this.options;
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (e) => reject(listenError(e, host, port, 'udp')));
      socket.bind(port, host, () => resolve());
    });
    socket.on('error', () => {
      // ICMP errors toward one peer surface here on Linux; they concern that peer
      // only and the keepalive will notice it. The server keeps serving.
    });
    const maxQueue = this.options.maxQueueDatagrams ?? 1024;
    const out: DatagramOut = (datagrams, address, port) => {
      let n = 0;
      for (const d of datagrams) {
        if (socket.getSendQueueCount() >= maxQueue) break;
        socket.send(Buffer.from(d), port, address); // a copy: sealed batches are views of a reused buffer
        n++;
      }
      return n;
    };
    socket.on('message', (received, rinfo) => {
      let datagram: Buffer = received;
      let link: PeerLink | undefined;
      if (this.sealed !== undefined) {
        const opened = this.sealed.receive(received, rinfo.address, rinfo.port, out);
        if (opened === undefined) return;
        ({ link, plain: datagram } = opened);
      } else {
        const id = `${rinfo.address}:${rinfo.port}`;
        link = this.links.get(id);
        if (link === undefined) {
          // Not stored until the server retains it: a stranger leaves nothing behind.
          const created: UdpPeerLink = new UdpPeerLink(id, socket, rinfo.address, rinfo.port, maxQueue, () => {
            if (this.links.get(id) === created) this.links.delete(id);
          }, () => this.links.set(id, created));
          link = created;
        }
      }
      dispatchToServer(handlers, link, datagram, this.sealed !== undefined);
    });
    const a = socket.address();
    return { address: a.address, port: a.port };
  }

  /** The data path on the addon's batch socket: recvmmsg/sendmmsg, one JavaScript call per batch. */
  private listenBatched(): { address: string; port: number } {
    const { host, port, handlers } = this.options;
    let socket: BatchUdpSocket;
    try {
      socket = BatchUdpSocket.bind(host, port);
    } catch (e) {
      throw listenError(e, host, port, 'udp');
    }
    this.batched = socket;
    const links = this.batchedLinks;
    const out: DatagramOut = (datagrams, address, peerPort) => socket.sendDatagrams(datagrams, ipToInt(address), peerPort);
    socket.onDatagrams((received, ip, peerPort) => {
      let datagram = received;
      let link: PeerLink | undefined;
      if (this.sealed !== undefined) {
        const opened = this.sealed.receive(received, intToIp(ip), peerPort, out);
        if (opened === undefined) return;
        ({ link, plain: datagram } = opened);
      } else {
        const key = ip * 65536 + peerPort;
        link = links.get(key);
        if (link === undefined) {
          // Not stored until the server retains it: a stranger leaves nothing behind.
          const created: BatchUdpPeerLink = new BatchUdpPeerLink(intToIp(ip), socket, ip, peerPort, () => {
            if (links.get(key) === created) links.delete(key);
          }, () => links.set(key, created));
          link = created;
        }
      }
      dispatchToServer(handlers, link, datagram, this.sealed !== undefined);
    });
    return { address: host, port: socket.port };
  }

  async close(): Promise<void> {
    await this.sealed?.close();
    this.batched?.close();
    this.batched = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket === undefined) return;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/** A UDP peer on the batch socket: frames leave in one sendmmsg; a full socket buffer drops the rest. */
class BatchUdpPeerLink implements PeerLink {
  readonly transport = 'udp' as const;
  readonly id: string;
  constructor(
    readonly source: string,
    private readonly socket: BatchUdpSocket,
    private readonly ip: number,
    private readonly port: number,
    private readonly forget: () => void,
    readonly retain: () => void,
  ) {
    this.id = `${source}:${port}`;
  }

  send(message: Buffer): boolean {
    return this.socket.sendDatagrams([message], this.ip, this.port) === 1;
  }

  sendFrames(frames: Buffer[]): number {
    return this.socket.sendFrames(frames, this.ip, this.port);
  }

  close(): void {
    this.forget();
  }
}

class UdpPeerLink implements PeerLink {
  readonly transport = 'udp' as const;
  constructor(
    readonly id: string,
    private readonly socket: dgram.Socket,
    private readonly address: string,
    private readonly port: number,
    private readonly maxQueue: number,
    private readonly forget: () => void,
    readonly retain: () => void,
  ) {}

  get source(): string {
    return this.address;
  }

  send(message: Buffer): boolean {
    if (this.socket.getSendQueueCount() >= this.maxQueue) return false;
    this.socket.send(message, this.port, this.address);
    return true;
  }

  sendFrames(frames: Buffer[]): number {
    let sent = 0;
    for (const frame of frames) {
      if (this.socket.getSendQueueCount() >= this.maxQueue) break;
      // A copy: frames are views of a reader's buffer, and dgram may send later.
      this.socket.send(Buffer.concat(encodeData(frame)), this.port, this.address);
      sent++;
    }
    return sent;
  }

  close(): void {
    this.forget();
  }
}

// ---------------------------------------------------------------- TCP server

export class TcpServerTransport implements ServerTransport {
  readonly kind = 'tcp' as const;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly gate: PendingGate;

  constructor(private readonly options: ServerTransportOptions) {
    this.gate = gateFor(options);
  }

  reloadTls(material: TlsMaterial, revoked: Set<string>): number {
    const server = this.server;
    if (!(server instanceof tls.Server)) return 0;
    server.setSecureContext(serverTlsOptions(material, this.gate.timeoutMs));
    let cut = 0;
    for (const s of this.sockets) {
      if (s instanceof tls.TLSSocket && peerRevoked(s, revoked)) {
        s.destroy();
        cut++;
      }
    }
    return cut;
  }

  async listen(): Promise<{ address: string; port: number }> {
    const { host, port, handlers } = this.options;
    const material = this.options.tls;
    const server = material === undefined ? net.createServer({ noDelay: true }) : tls.createServer(serverTlsOptions(material, this.gate.timeoutMs));
    this.server = server;
    // Every connection, before TLS and before its hello, is bounded by the gate.
    server.on('connection', (raw: net.Socket) => {
      raw.setNoDelay(true);
      const key = peerOf(raw);
      this.gate.add(key, () => raw.destroy());
      this.sockets.add(raw);
      raw.on('error', () => raw.destroy());
      raw.on('close', () => {
        this.sockets.delete(raw);
        this.gate.done(key);
      });
    });
    if (server instanceof tls.Server) server.on('tlsClientError', (e, s) => reportTlsError(handlers, e, s));
    server.on(material === undefined ? 'connection' : 'secureConnection', (socket: net.Socket) => {
      if (socket instanceof tls.TLSSocket && !admitClient(handlers, socket)) return;
      const id = peerOf(socket);
      this.sockets.add(socket);
      const secure = socket instanceof tls.TLSSocket ? socket : undefined;
      const link = new TcpPeerLink(id, socket, this.options.maxQueueBytes ?? 1 << 20, secure && peerIdentity(secure), secure && peerFingerprint(secure));
      const decoder = new StreamDecoder(MAX_FRAME);
      let dead = false;
      socket.on('data', (chunk: Buffer) => {
        if (dead) return;
        let messages: Message[];
        try {
          messages = decoder.push(chunk);
          if (this.gate.has(id) && messages.some((m) => m.type === MessageType.Hello)) this.gate.done(id);
        } catch (e) {
          // A byte stream cannot resynchronise after garbage: tell the peer (the
          // handler may send an error), then close this connection only.
          dead = true;
          if (e instanceof ProtocolError) handlers.invalid(link, e);
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
          return;
        }
        for (const m of messages) handlers.message(link, m);
      });
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        this.sockets.delete(socket);
        handlers.closed(link);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(listenError(e, host, port, 'tcp')));
      server.listen(port, host, () => resolve());
    });
    const a = server.address() as net.AddressInfo;
    return { address: a.address, port: a.port };
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    this.gate.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

class TcpPeerLink implements PeerLink {
  readonly transport = 'tcp' as const;
  constructor(
    readonly id: string,
    private readonly socket: net.Socket,
    private readonly maxQueueBytes: number,
    readonly identity?: string,
    readonly identityKey?: string,
  ) {}

  get source(): string {
    return this.socket.remoteAddress ?? 'unknown';
  }

  /** Control messages respect the queue bound too: a peer that does not read gets no more. */
  send(message: Buffer): boolean {
    return writeControlBounded(this.socket, message, this.maxQueueBytes);
  }

  sendFrames(frames: Buffer[]): number {
    return writeFramesBounded(this.socket, frames, this.maxQueueBytes);
  }

  close(): void {
    this.socket.end();
    this.socket.destroySoon();
  }
}

function writeControlBounded(socket: net.Socket, message: Buffer, maxQueueBytes: number): boolean {
  if (socket.destroyed || !socket.writable || socket.writableLength + message.length > maxQueueBytes) return false;
  socket.write(message);
  return true;
}

/** One write per batch; frames beyond the queue bound are dropped, not buffered. */
function writeFramesBounded(socket: net.Socket, frames: Buffer[], maxQueueBytes: number): number {
  if (socket.destroyed || !socket.writable) return 0;
  const parts: Buffer[] = [];
  let queued = socket.writableLength;
  let accepted = 0;
  for (const frame of frames) {
    if (queued + frame.length + HEADER_SIZE > maxQueueBytes) break;
    parts.push(...encodeData(frame));
    queued += frame.length + HEADER_SIZE;
    accepted++;
  }
  if (parts.length > 0) socket.write(Buffer.concat(parts));
  return accepted;
}

// ---------------------------------------------------------------- client side

export async function connectClientLink(options: ConnectOptions): Promise<ClientLink> {
  return options.transport === 'udp' ? connectUdp(options) : connectTcp(options);
}

async function connectUdp(options: ConnectOptions): Promise<ClientLink> {
  if (options.tls !== undefined) return connectSealedUdp({ ...options, tls: options.tls });
  if (BatchUdpSocket.available()) {
    const address = isIPv4(options.host) ? options.host : (await lookup(options.host, { family: 4 })).address;
    return connectUdpBatched(address, options);
  }
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(options.port, options.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const maxQueue = options.maxQueueDatagrams ?? 1024;
  let open = true;
  // ECONNREFUSED (ICMP port unreachable) means no server right now; the keepalive
  // decides when the link is dead, so it is not an error here.
  socket.on('error', () => {});
  socket.on('message', (datagram) => {
    dispatchDatagram(datagram, options.handlers.message, options.handlers.invalid);
  });
  const sendSafe = (data: Buffer | Buffer[]): void => {
    try {
      socket.send(data);
    } catch {
      // The socket is closing; the frame is lost as on a downed link.
    }
  };
  return {
    transport: 'udp',
    send(message) {
      if (!open || socket.getSendQueueCount() >= maxQueue) return false;
      sendSafe(message);
      return true;
    },
    sendFrames(frames) {
      let sent = 0;
      if (!open) return 0;
      for (const frame of frames) {
        if (socket.getSendQueueCount() >= maxQueue) break;
        sendSafe(Buffer.concat(encodeData(frame))); // a copy: dgram may send after the frame's buffer is reused
        sent++;
      }
      return sent;
    },
    close() {
      if (!open) return;
      open = false;
      socket.close();
    },
  };
}

/** The client's data path on the addon's batch socket, connected to the server. */
function connectUdpBatched(address: string, options: ConnectOptions): ClientLink {
  const socket = BatchUdpSocket.bind('0.0.0.0', 0);
  try {
    socket.connect(address, options.port);
  } catch (e) {
    socket.close();
    throw e;
  }
  let open = true;
  socket.onDatagrams((datagram) => {
    dispatchDatagram(datagram, options.handlers.message, options.handlers.invalid);
  });
  return {
    transport: 'udp',
    send(message) {
      return open && socket.sendDatagrams([message]) === 1;
    },
    sendFrames(frames) {
      return open ? socket.sendFrames(frames) : 0;
    },
    close() {
      if (!open) return;
      open = false;
      socket.close();
    },
  };
}

async function connectTcp(options: ConnectOptions): Promise<ClientLink> {
  const secure = options.tls === undefined ? undefined : await connectTls(options.tls, options.host, options.port, options.connectTimeoutMs ?? 5000);
  const socket = secure ?? net.connect({ host: options.host, port: options.port, noDelay: true });
  if (secure === undefined) await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect timed out after ${options.connectTimeoutMs ?? 5000} ms`));
    }, options.connectTimeoutMs ?? 5000);
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const maxQueueBytes = options.maxQueueBytes ?? 1 << 20;
  const decoder = new StreamDecoder(MAX_FRAME);
  let closedReason = 'connection closed by the server';
  let refusal: CtunError | undefined;
  socket.on('data', (chunk: Buffer) => {
    let messages: Message[];
    try {
      messages = decoder.push(chunk);
    } catch (e) {
      if (e instanceof ProtocolError) options.handlers.invalid(e);
      closedReason = `protocol error: ${(e as Error).message}`;
      socket.destroy();
      return;
    }
    for (const m of messages) options.handlers.message(m);
  });
  socket.on('error', (e) => {
    closedReason = e.message;
    if (secure !== undefined) {
      // TLS 1.3: the server checks our certificate after our side of the handshake
      // is done, so its refusal (an alert) can arrive here.
      const f = tlsFailure(e);
      closedReason = f.reason;
      if (f.refusal) refusal = refusedError(options.host, options.port, f.reason);
    }
  });
  socket.on('close', () => options.handlers.closed(closedReason, refusal));
  return {
    transport: 'tcp',
    identity: secure === undefined ? undefined : peerIdentity(secure),
    send(message) {
      return writeControlBounded(socket, message, maxQueueBytes);
    },
    sendFrames(frames) {
      return writeFramesBounded(socket, frames, maxQueueBytes);
    },
    close() {
      closedReason = 'closed by the client';
      socket.destroy();
    },
  };
}
