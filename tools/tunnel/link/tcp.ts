/**
 * TCP, for networks that pass only TCP (port-forward, proxies): messages are
 * length-prefixed on one connection, inside TLS 1.3 with --tls — until the welcome,
 * when both ends have the addon: from there the connection carries sealed records
 * keyed from that TLS session (native-stream.ts switchToSealed). Writes are bounded:
 * a peer that does not read loses frames (never retransmitted by us: no TCP over
 * TCP), and garbage on the stream closes that connection only.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { CtunError } from '../../common/index.js';
import { encodeDataBatchWithin, FEATURE_SEALED_STREAM, FEATURES_NONE, MAX_FRAME, MessageType, ProtocolError, StreamDecoder, type Message } from '../protocol.js';
import {
  admitClient,
  connectTls,
  peerFingerprint,
  peerIdentity,
  peerOf,
  peerRevoked,
  refusedError,
  reportTlsError,
  serverTlsOptions,
  tlsFailure,
  type PendingGate,
  type SealFailure,
  type TlsMaterial,
} from '../secure/index.js';
import type { FastPathEnd } from '../fast-path.js';
import { gateFor, listenError } from './listen.js';
import { canSwitchToSealed, handOver, sendFramesToStream, switchToSealed, type HandedOver } from './native-stream.js';
import { releaseAfterTurn, releaseWhenWritten } from './read-release.js';
import type { ClientLink, ConnectOptions, PeerLink, ServerTransport, ServerTransportOptions } from './types.js';

export class TcpServerTransport implements ServerTransport {
  readonly kind = 'tcp' as const;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly gate: PendingGate;

  constructor(private readonly options: ServerTransportOptions) {
    this.gate = gateFor(options);
  }

  /** The server fast path has no socket of its own; each session's connection joins it (PeerLink.streamEnd): plain, or sealed after its switch. */
  get fastPath(): FastPathEnd | undefined {
    return { fd: -1, attachFastPath: () => {} };
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
      const decoder = new StreamDecoder(MAX_FRAME, releaseAfterTurn);
      let dead = false;
      const onChunk = (chunk: Buffer): void => {
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
        releaseAfterTurn(chunk);
      };
      socket.on('data', onChunk);
      // Plain TCP: the server fast path may take the connection over (native-stream.ts);
      // TLS: the connection switches to sealed records at the welcome, if the client offered.
      if (secure === undefined) link.handOver = () => handOver(socket, decoder, link.maxQueueBytes, onChunk, () => socket.destroy());
      else if (canSwitchToSealed(secure)) {
        link.switchOver = () => {
          // The client sent nothing after its hello, so the decoder holds nothing.
          if (decoder.buffered > 0) return undefined;
          return switchToSealed(secure, 'server', link.maxQueueBytes, onChunk, (_reason, failure) => {
            if (failure !== undefined) handlers.dropped?.(failure);
            socket.destroy();
          });
        };
      }
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        this.sockets.delete(socket);
        link.closeStream();
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
  /** Plain TCP: hands the connection to the addon (set by the transport). */
  handOver: (() => HandedOver | undefined) | undefined;
  /** TCP --tls: switches the connection to sealed records in the addon (set by the transport where it can). */
  switchOver: (() => HandedOver | undefined) | undefined;
  private native: HandedOver | undefined;

  constructor(
    readonly id: string,
    private readonly socket: net.Socket,
    readonly maxQueueBytes: number,
    readonly identity?: string,
    readonly identityKey?: string,
  ) {}

  get source(): string {
    return this.socket.remoteAddress ?? 'unknown';
  }

  /** What this link can switch on at the welcome: sealed records, for a TLS connection the addon can carry. */
  get features(): number {
    return this.switchOver !== undefined && this.native === undefined ? FEATURE_SEALED_STREAM : FEATURES_NONE;
  }

  /** The welcome with `flags` was just written: a TLS connection whose welcome accepted sealed records switches now. */
  welcomed(flags: number): boolean {
    if ((flags & FEATURE_SEALED_STREAM) === 0 || this.switchOver === undefined || this.native !== undefined) return false;
    this.native = this.switchOver();
    // Announced but impossible now: the client would seal into a TLS reader; start over.
    if (this.native === undefined) this.socket.destroy();
    return this.native !== undefined;
  }

  /** Once the addon has the connection: the peer's address as it reports it. */
  get nativeAddress(): { ip: number; port: number } | undefined {
    return this.native?.address;
  }

  streamEnd(): FastPathEnd | undefined {
    this.native ??= this.handOver?.();
    return this.native?.end;
  }

  /** The connection closed: the addon lets go of its descriptor too. */
  closeStream(): void {
    this.native?.stream.close();
  }

  /** Control messages respect the queue bound too: a peer that does not read gets no more. */
  send(message: Buffer): boolean {
    return this.native === undefined ? writeControlBounded(this.socket, message, this.maxQueueBytes) : this.native.stream.write(message);
  }

  sendFrames(frames: Buffer[]): number {
    return this.native === undefined ? writeFramesBounded(this.socket, frames, this.maxQueueBytes) : sendFramesToStream(this.native.stream, frames, this.maxQueueBytes);
  }

  close(): void {
    // Sealed: no TLS close_notify may follow the records; the addon's descriptor keeps
    // the connection open until the 'close' event lets it go, after its queue.
    if (this.switchOver !== undefined && this.native !== undefined) {
      this.socket.destroy();
      return;
    }
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
  const fits = encodeDataBatchWithin(frames, maxQueueBytes - socket.writableLength);
  if (fits === undefined) return 0;
  releaseWhenWritten(socket, fits.batch);
  return fits.count;
}

/** The client's TCP link: length-prefixed messages on one connection, inside TLS with --tls. */
export async function connectTcp(options: ConnectOptions): Promise<ClientLink> {
  const host = options.host;
  const secure = options.tls === undefined ? undefined : await connectTls(options.tls, host, options.port, options.connectTimeoutMs ?? 5000);
  const socket = secure ?? net.connect({ host, port: options.port, noDelay: true });
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
  const decoder = new StreamDecoder(MAX_FRAME, releaseAfterTurn);
  let closedReason = 'connection closed by the server';
  let refusal: CtunError | undefined;
  let native: HandedOver | undefined;
  // TCP --tls: sealed records after the welcome, when the client may (its fast path on) and can.
  const offers = secure !== undefined && options.sealedStream === true && canSwitchToSealed(secure) ? FEATURE_SEALED_STREAM : FEATURES_NONE;
  const onChunk = (chunk: Buffer): void => {
    let messages: Message[];
    try {
      messages = decoder.push(chunk);
    } catch (e) {
      if (e instanceof ProtocolError) options.handlers.invalid(e);
      closedReason = `protocol error: ${(e as Error).message}`;
      socket.destroy();
      return;
    }
    for (const m of messages) {
      if (m.type === MessageType.Welcome && (m.flags ?? 0) & offers && native === undefined && secure !== undefined && !switchOver(secure)) return;
      options.handlers.message(m);
    }
    releaseAfterTurn(chunk);
  };
  /** The welcome accepted sealed records: the switch, in the turn that decoded it (the server sends nothing more until our first record). */
  const switchOver = (tlsSocket: tls.TLSSocket): boolean => {
    native = switchToSealed(tlsSocket, 'client', maxQueueBytes, onChunk, (reason: string, failure?: SealFailure) => {
      closedReason = reason === 'connection closed by the peer' ? 'connection closed by the server' : reason;
      if (failure !== undefined) options.handlers.dropped?.(failure);
      socket.destroy();
    });
    if (native !== undefined) return true;
    closedReason = 'the server accepted sealed records, but this connection cannot switch to them';
    socket.destroy();
    return false;
  };
  socket.on('data', onChunk);
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
  socket.on('close', () => {
    native?.stream.close();
    options.handlers.closed(closedReason, refusal);
  });
  return {
    transport: 'tcp',
    identity: secure === undefined ? undefined : peerIdentity(secure),
    offers,
    /** Plain TCP: the addon takes the connection over (native-stream.ts) for the fast path; TLS: the addon has it once switched. */
    get fastPath(): FastPathEnd | undefined {
      if (secure !== undefined) return native?.end;
      native ??= handOver(socket, decoder, maxQueueBytes, onChunk, (reason) => {
        closedReason = reason === 'connection closed by the peer' ? 'connection closed by the server' : reason;
        socket.destroy();
      });
      return native?.end;
    },
    send(message) {
      return native === undefined ? writeControlBounded(socket, message, maxQueueBytes) : native.stream.write(message);
    },
    sendFrames(frames) {
      return native === undefined ? writeFramesBounded(socket, frames, maxQueueBytes) : sendFramesToStream(native.stream, frames, maxQueueBytes);
    },
    close() {
      closedReason = 'closed by the client';
      socket.destroy();
    },
  };
}
