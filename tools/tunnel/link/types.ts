/**
 * What a transport is to the rest of the tunnel: a server transport hands the
 * server one `PeerLink` per peer, a client holds one `ClientLink`. Sessions and the
 * switch see only these, never which transport (UDP, TCP, sealed UDP) is in use.
 */
import type { CtunError } from '../../common/index.js';
import type { Message, ProtocolError } from '../protocol.js';
import type { SealFailure, TlsMaterial } from '../secure/index.js';
import type { DatagramSocketFactory } from './datagram-socket.js';
import type { FastPathEnd } from '../fast-path.js';
import type { NativeSealerHandle } from '../native.js';

export type TransportKind = 'udp' | 'tcp';

/** One peer as the server sees it. */
export interface PeerLink {
  readonly id: string;
  readonly transport: TransportKind;
  /** The peer's IP address (no port): what per-source limits count by. */
  readonly source: string;
  /** With --tls: the CN of the peer's verified certificate. */
  readonly identity?: string;
  /** With --tls: the SHA-256 fingerprint of the peer's certificate, what a resume is bound to. */
  readonly identityKey?: string;
  /**
   * Plain UDP: links are made per datagram and forgotten, so a stranger leaves no
   * state; the server retains the link of a peer it admitted (a valid hello).
   */
  retain?(): void;
  /** Sends one encoded control message; false if it was dropped. */
  send(message: Buffer): boolean;
  /** Sends data frames; returns how many were queued (the rest are drops). */
  sendFrames(frames: Buffer[]): number;
  /** Closes the link (TCP: the connection; UDP: forgets the peer). */
  close(): void;
  /** Plain UDP on the addon's batch socket, or plain TCP once the addon has the connection: the peer's address as the addon gives it (host-order IPv4, port), the server fast path's key. */
  readonly nativeAddress?: { ip: number; port: number };
  /** --tls over UDP with the addon: the session's sealer, which the server fast path seals and opens with. */
  readonly nativeSealer?: NativeSealerHandle;
  /** Plain TCP: hands the connection to the addon (once; native-stream.ts) and returns its end of the server fast path, or undefined where it cannot; TCP --tls: the addon's end once switched. */
  streamEnd?(): FastPathEnd | undefined;
  /** Feature flags this link can switch on at the welcome (TCP --tls: FEATURE_SEALED_STREAM); the welcome accepts the hello's offer of these only. */
  readonly features?: number;
  /** The welcome with `flags` was just sent: the link switches what they accepted; true if it did (its streamEnd changed). */
  welcomed?(flags: number): boolean;
}

/**
 * What a plain UDP datagram may cause to be sent back: at most one reply, of at most
 * as many bytes as the datagram had (no reflection, no amplification).
 */
export interface ReplyBudget {
  bytes: number;
  replies: number;
}

export interface ServerTransportHandlers {
  /** `budget` is set for plain UDP: the reply allowance of the datagram the message came in. */
  message(link: PeerLink, message: Message, budget?: ReplyBudget): void;
  /** A peer sent something that is not protocol; the link may be closed (TCP). */
  invalid(link: PeerLink, error: ProtocolError, budget?: ReplyBudget): void;
  closed(link: PeerLink): void;
  /**
   * With --tls: a peer was refused (its certificate is not from the CA, expired or
   * revoked, or it refused ours: `refusal` true), or its handshake failed otherwise.
   */
  refused?(peer: string, reason: string, refusal: boolean): void;
  /** With --tls: a datagram was dropped unopened (tampered, replayed, truncated, unknown or wrong key). */
  dropped?(reason: SealFailure): void;
  /** With --tls over UDP: a peer's datagrams authenticate from a new address now (NAT rebinding); its `nativeAddress` changed. */
  moved?(link: PeerLink): void;
  /** A TCP connection that never said hello was closed (timeout, or too many waiting). */
  pendingDropped?(peer: string, reason: 'timeout' | 'evicted'): void;
}

export interface ServerTransport {
  readonly kind: TransportKind;
  /** With --tls: new material for new connections; cuts live peers whose certificate is in `revoked`; returns how many. */
  reloadTls?(material: TlsMaterial, revoked: Set<string>): number;
  /** Datagrams dropped as garbage below JavaScript (the native UDP path), for the statistics. */
  filteredDatagrams?(): number;
  /** Plain UDP: peers the transport keeps (only those a valid hello admitted). */
  keptPeers?(): number;
  listen(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  /** Plain UDP on the addon's batch socket: the socket's end of the server's native fast path; plain TCP: none of its own (fd -1), each connection's comes with its session (PeerLink.streamEnd). */
  readonly fastPath?: FastPathEnd;
}

export interface ServerTransportOptions {
  host: string;
  port: number;
  handlers: ServerTransportHandlers;
  /** Bytes queued toward one TCP peer before frames are dropped; default 1 MiB. */
  maxQueueBytes?: number;
  /** Datagrams queued on the UDP socket before frames are dropped; default 1024. */
  maxQueueDatagrams?: number;
  /** Mutual TLS: TCP carries the frames inside TLS or, after the welcome, in sealed records; UDP handshakes on TCP and seals every datagram. */
  tls?: TlsMaterial;
  /** A TCP connection must say hello (UDP with --tls: send a sealed datagram) within this; default 5000 ms. */
  helloTimeoutMs?: number;
  /** Most TCP connections waiting for that at once; beyond, the oldest is closed. Default 128. */
  maxPending?: number;
  /** UDP: where the datagram socket comes from; default the addon's batch socket, else node:dgram (unit tests: an in-memory network). */
  datagrams?: DatagramSocketFactory;
}

export interface ClientLinkHandlers {
  message(message: Message): void;
  invalid(error: ProtocolError): void;
  /** `refusal` is set when TLS refused this client (exit code 5, no retry). */
  closed(reason: string, refusal?: CtunError): void;
  /** With --tls: a datagram was dropped unopened (tampered, replayed, wrong key). */
  dropped?(reason: SealFailure): void;
}

export interface ClientLink {
  readonly transport: TransportKind;
  /** With --tls: the CN of the server's verified certificate. */
  readonly identity?: string;
  send(message: Buffer): boolean;
  sendFrames(frames: Buffer[]): number;
  close(): void;
  /** Plain UDP on the addon's batch socket: the socket's end of the native data fast path; plain TCP: reading it hands the connection to the addon; TCP --tls: the addon's end once switched. */
  readonly fastPath?: FastPathEnd;
  /** Feature flags this link can switch on, for the hello (TCP --tls: FEATURE_SEALED_STREAM). */
  readonly offers?: number;
}

export interface ConnectOptions {
  host: string;
  port: number;
  transport: TransportKind;
  handlers: ClientLinkHandlers;
  /** TCP connect timeout; default 5000 ms. */
  connectTimeoutMs?: number;
  maxQueueBytes?: number;
  maxQueueDatagrams?: number;
  /** Mutual TLS; the server's certificate must name `host`. */
  tls?: TlsMaterial;
  /** TCP --tls: offer sealed records after the welcome (the client does with its fast path on). */
  sealedStream?: boolean;
  /** UDP: where the datagram socket comes from; default the addon's batch socket, else node:dgram (unit tests: an in-memory network). */
  datagrams?: DatagramSocketFactory;
}
