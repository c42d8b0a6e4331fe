/**
 * One datagram socket for every UDP transport (plain and sealed, server and client).
 * Three implementations: the addon's batch socket (recvmmsg/sendmmsg, one JavaScript
 * call per batch), node:dgram where the addon has no batch socket, and an in-memory
 * network for unit tests (memory-socket.ts). Which real one is used is decided in
 * one place: open-socket.ts.
 */
import type { FastPathEnd } from '../fast-path.js';

export type AddressFamily = 4 | 6;

/**
 * A peer's address and port as one socket names it: a number (the addon: ip * 65536
 * + port) or a string, cheap to compare and to key a Map by, so that receiving a
 * datagram makes no object and no string. `peerAddress` turns it into text.
 */
export type PeerKey = number | string;

export interface DatagramSocket {
  readonly family: AddressFamily;
  /** The bound address and port. */
  readonly address: string;
  readonly port: number;
  /** Datagrams dropped as garbage before they reached JavaScript (the addon's filter); 0 elsewhere. */
  readonly filtered: number;
  /**
   * Calls `handler` for every datagram with its sender. The datagram may be a view
   * of a receive buffer that the next wake-up refills: valid until the handler and
   * the microtasks it queued have run. Whoever keeps it longer copies it.
   */
  onDatagram(handler: (datagram: Buffer, from: PeerKey) => void): void;
  /** The address and port a key names. */
  peerAddress(peer: PeerKey): { address: string; port: number };
  /**
   * Sends whole datagrams to `to` (default: the connected peer); returns how many
   * left, the rest being drops (a full socket buffer or send queue). The buffers may
   * be reused once this returns.
   */
  sendDatagrams(datagrams: Buffer[], to?: PeerKey): number;
  /** Sends each frame as one Data message (PROTOCOL.md); same contract as sendDatagrams. */
  sendFrames(frames: Buffer[], to?: PeerKey): number;
  close(): Promise<void>;
  /** The addon's batch socket only: its end of the native data fast path (fast-path.ts). */
  readonly fastPath?: FastPathEnd;
}

export interface OpenDatagramOptions {
  family: AddressFamily;
  /** Address to bind; default: any address of the family. */
  host?: string;
  /** Port to bind; default 0 (any). */
  port?: number;
  /** An address (not a name) and port to talk to only: a client. Sends then need no peer. */
  connect?: { address: string; port: number };
  /** node:dgram only: datagrams queued in user space before sends drop; default 1024. The addon's bound is the kernel's socket buffer. */
  maxQueueDatagrams?: number;
}

/** Opens a bound (and, with `connect`, connected) socket; bind errors keep their errno `code` (EADDRINUSE, ...). */
export type DatagramSocketFactory = (options: OpenDatagramOptions) => Promise<DatagramSocket>;

/** The wildcard address of a family, what an unspecified host binds. */
export function anyAddress(family: AddressFamily): string {
  return family === 4 ? '0.0.0.0' : '::';
}
