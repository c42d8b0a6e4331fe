/**
 * UDP with --tls (PROTOCOL.md, "Secured transport"): the TLS 1.3 handshake runs on a
 * TCP connection to the same port number; the server then sends the session's key id
 * on it, and both ends export one AEAD key per direction from that TLS session. Every
 * datagram is sealed (secure/sealer.ts). The TCP connection stays open as the session's
 * control channel: when it closes, the keys are gone and the link is lost.
 *
 * The data path is not touched: a link seals what it sends and hands whole datagrams
 * to the transport's datagram socket; the transport hands every received datagram to
 * `receive()` first.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { formatHostPort, type CtunError } from '../../common/index.js';
import { ErrorCode, StreamDecoder, describeError, MessageType } from '../protocol.js';
import {
  admitClient,
  connectTls,
  createSealer,
  decodeKeyRecord,
  encodeKeyRecord,
  KEY_RECORD_SIZE,
  peekKeyId,
  peerFingerprint,
  peerIdentity,
  peerOf,
  peerRevoked,
  randomKeyId,
  refusedError,
  reportTlsError,
  SEALED_MARKER,
  SealError,
  serverTlsOptions,
  tlsFailure,
  tlsKeyDeriver,
  type DatagramSealer,
  type PendingGate,
  type TlsMaterial,
} from '../secure/index.js';
import type { NativeSealerHandle } from '../native.js';
import { ipToInt } from './batch-udp.js';
import type { DatagramSocket, PeerKey } from './datagram-socket.js';
import { dispatchDatagram, openClientSocket } from './datagrams.js';
import type { ClientLink, ConnectOptions, PeerLink, ServerTransportOptions } from './types.js';

interface KeyedPeer {
  sealer: DatagramSealer;
  controlKey: string;
  identity: string;
  identityKey: string;
  link: SealedPeerLink | undefined;
}

/** A client as the server sees it: found by key id, following its latest authenticated address. */
export class SealedPeerLink implements PeerLink {
  readonly transport = 'udp' as const;
  readonly id: string;
  private address: string;

  constructor(
    private readonly socket: DatagramSocket,
    private peer: PeerKey,
    private readonly sealer: DatagramSealer,
    private readonly forget: () => void,
    readonly identity: string,
    readonly identityKey: string,
  ) {
    const { address, port } = socket.peerAddress(peer);
    this.address = address;
    this.id = formatHostPort(address, port);
  }

  get source(): string {
    return this.address;
  }

  /** With the addon's socket and sealer: where the server fast path sends this session's frames (native/server_fastpath.h). */
  get nativeAddress(): { ip: number; port: number } | undefined {
    if (this.nativeSealer === undefined || this.socket.fastPath === undefined) return undefined;
    const { address, port } = this.socket.peerAddress(this.peer);
    return { ip: ipToInt(address), port };
  }

  get nativeSealer(): NativeSealerHandle | undefined {
    return this.sealer.native;
  }

  /** Authenticated from `peer`: the replies go there from now on (NAT rebinding). Whether it moved. */
  follow(peer: PeerKey): boolean {
    if (peer === this.peer) return false;
    this.peer = peer;
    this.address = this.socket.peerAddress(peer).address;
    return true;
  }

  send(message: Buffer): boolean {
    return sendSealed(this.sealer, message, (ds) => this.socket.sendDatagrams(ds, this.peer));
  }

  sendFrames(frames: Buffer[]): number {
    const sealed = this.sealer.sealFrames(frames);
    return sealed.length === 0 ? 0 : this.socket.sendDatagrams(sealed, this.peer);
  }

  close(): void {
    this.forget();
  }
}

/** Seals and sends one control message; false if it was dropped. */
function sendSealed(sealer: DatagramSealer, message: Buffer, send: (datagrams: Buffer[]) => number): boolean {
  let sealed: Buffer;
  try {
    sealed = sealer.seal([message]);
  } catch {
    return false; // counter exhausted: the session must handshake again
  }
  return send([sealed]) === 1;
}

/** The server side: the TLS control listener and the key ids of the sessions it keyed. */
export class SealedUdpServer {
  private server: tls.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Verified control connections, for a CRL reload to cut the revoked ones. */
  private readonly secured = new Set<tls.TLSSocket>();
  private readonly keyed = new Map<number, KeyedPeer>();

  constructor(
    private readonly options: ServerTransportOptions & { tls: TlsMaterial },
    private readonly gate: PendingGate,
  ) {}

  async listen(host: string, port: number, listenError: (e: unknown) => Error): Promise<void> {
    const o = this.options;
    const server = tls.createServer(serverTlsOptions(o.tls, this.gate.timeoutMs));
    this.server = server;
    server.on('connection', (raw: net.Socket) => {
      const key = peerOf(raw);
      this.sockets.add(raw);
      this.gate.add(key, () => raw.destroy());
      raw.on('error', () => raw.destroy());
      raw.on('close', () => {
        this.sockets.delete(raw);
        this.gate.done(key);
      });
    });
    server.on('tlsClientError', (e, s) => reportTlsError(o.handlers, e, s));
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('error', () => socket.destroy());
      if (!admitClient(o.handlers, socket)) return;
      let keyId = randomKeyId();
      while (keyId === 0 || this.keyed.has(keyId)) keyId = randomKeyId();
      const peer: KeyedPeer = {
        sealer: createSealer({ keyId, sends: 's2c', derive: tlsKeyDeriver(socket) }),
        controlKey: peerOf(socket),
        identity: peerIdentity(socket),
        identityKey: peerFingerprint(socket),
        link: undefined,
      };
      this.keyed.set(keyId, peer);
      this.secured.add(socket);
      // Nothing but the key record flows on this connection; what the client sends is ignored.
      socket.on('data', () => {});
      socket.on('close', () => {
        this.secured.delete(socket);
        this.keyed.delete(keyId);
        const link = peer.link;
        peer.link = undefined;
        if (link !== undefined) o.handlers.closed(link);
      });
      socket.write(encodeKeyRecord(keyId));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(listenError(e)));
      server.listen(port, host, () => resolve());
    });
  }

  /**
   * Authenticates one datagram. Returns its link and plaintext, or undefined when
   * it was dropped (and counted): not sealed, unknown key id, tampered, replayed.
   * Nothing is ever answered to a datagram that does not authenticate.
   */
  receive(datagram: Buffer, from: PeerKey, socket: DatagramSocket): { link: SealedPeerLink; plain: Buffer } | undefined {
    const handlers = this.options.handlers;
    const keyId = peekKeyId(datagram);
    const peer = keyId === undefined ? undefined : this.keyed.get(keyId);
    if (peer === undefined) {
      handlers.dropped?.(keyId !== undefined ? 'unknown-key' : datagram.length > 0 && datagram[0] === SEALED_MARKER ? 'truncated' : 'not-sealed');
      return undefined;
    }
    let plain: Buffer;
    try {
      plain = peer.sealer.open(datagram);
    } catch (e) {
      if (!(e instanceof SealError)) throw e;
      handlers.dropped?.(e.reason);
      return undefined;
    }
    this.gate.done(peer.controlKey);
    let link = peer.link;
    if (link === undefined) {
      const created: SealedPeerLink = new SealedPeerLink(socket, from, peer.sealer, () => {
        if (peer.link === created) peer.link = undefined;
      }, peer.identity, peer.identityKey);
      peer.link = link = created;
    } else if (link.follow(from)) {
      handlers.moved?.(link);
    }
    return { link, plain };
  }

  /**
   * New TLS material (a reloaded CRL) for new connections; live sessions whose
   * certificate is in `revoked` lose their keys (their control connection closes).
   * Returns how many were cut.
   */
  reload(material: TlsMaterial, revoked: Set<string>): number {
    this.server?.setSecureContext(serverTlsOptions(material, this.gate.timeoutMs));
    let cut = 0;
    for (const s of this.secured) {
      if (peerRevoked(s, revoked)) {
        s.destroy();
        cut++;
      }
    }
    return cut;
  }

  /** Key ids in use (sessions with a live TLS control connection). */
  get size(): number {
    return this.keyed.size;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * Reads the server's first record on the control connection: the key record, or an
 * Error message (the server refused our certificate: NotAuthorized). TLS 1.3 lets a
 * client finish its side of the handshake before the server has checked the client
 * certificate, so a refusal arrives here, as the Error or as a TLS alert.
 */
function readKeyRecord(socket: tls.TLSSocket, host: string, port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const done = (e: Error | undefined, keyId?: number): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (e !== undefined) reject(e);
      else resolve(keyId!);
    };
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length > 0 && got[0] === MessageType.Error) {
        try {
          const [m] = new StreamDecoder(1024).push(got);
          if (m?.type === MessageType.Error) {
            const rejected = m.code === ErrorCode.NotAuthorized || m.code === ErrorCode.VersionMismatch;
            done(rejected ? refusedError(host, port, m.reason) : new Error(`server said ${describeError(m.code)}: ${m.reason}`));
          }
        } catch (e) {
          done(e as Error);
        }
        return;
      }
      if (got.length < KEY_RECORD_SIZE) return;
      try {
        done(undefined, decodeKeyRecord(got.subarray(0, KEY_RECORD_SIZE)));
      } catch (e) {
        done(e as Error);
      }
    };
    const onError = (e: Error): void => {
      const f = tlsFailure(e);
      done(f.refusal ? refusedError(host, port, f.reason) : e);
    };
    const onClose = (): void => done(new Error('the server closed the TLS connection before sending the session key (is it running with --tls and this transport?)'));
    const timer = setTimeout(() => done(new Error(`no session key from ${formatHostPort(host, port)} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

/** The client side of a sealed UDP session. */
export async function connectSealedUdp(options: ConnectOptions & { tls: TlsMaterial }): Promise<ClientLink> {
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  const control = await connectTls(options.tls, options.host, options.port, timeoutMs);
  let keyId: number;
  try {
    keyId = await readKeyRecord(control, options.host, options.port, timeoutMs);
  } catch (e) {
    control.destroy();
    throw e;
  }
  const sealer = createSealer({ keyId, sends: 'c2s', derive: tlsKeyDeriver(control) });
  const { handlers } = options;
  let open = true;
  let udp: DatagramSocket;
  try {
    udp = await openClientSocket(options);
  } catch (e) {
    control.destroy();
    throw e;
  }
  udp.onDatagram((datagram) => {
    let plain: Buffer;
    try {
      plain = sealer.open(datagram);
    } catch (e) {
      if (e instanceof SealError) handlers.dropped?.(e.reason);
      return;
    }
    dispatchDatagram(plain, handlers.message, handlers.invalid);
  });
  let closedReason = 'the server closed the TLS control connection';
  let refusal: CtunError | undefined;
  control.on('data', () => {});
  control.on('error', (e) => {
    const f = tlsFailure(e);
    closedReason = f.reason;
    if (f.refusal) refusal = refusedError(options.host, options.port, f.reason);
  });
  control.on('close', () => {
    const wasOpen = open;
    open = false;
    void udp.close();
    if (wasOpen) handlers.closed(closedReason, refusal);
  });
  // The addon's socket and sealer: the client fast path seals and opens the data frames.
  const end = udp.fastPath;
  const native = sealer.native;
  return {
    transport: 'udp',
    identity: peerIdentity(control),
    fastPath: end === undefined || native === undefined ? undefined : { fd: end.fd, sealer: native, attachFastPath: (path) => end.attachFastPath(path) },
    send(message) {
      return open && sendSealed(sealer, message, (ds) => udp.sendDatagrams(ds));
    },
    sendFrames(frames) {
      if (!open) return 0;
      const sealed = sealer.sealFrames(frames);
      return sealed.length === 0 ? 0 : udp.sendDatagrams(sealed);
    },
    close() {
      if (!open) return;
      open = false;
      void udp.close();
      control.destroy();
    },
  };
}
