/**
 * A TCP link's connection handed to the addon (native/stream_link.h), so that the
 * data fast path moves a lone request/response frame between the TAP and the
 * connection without a JavaScript call at either end, as it does on plain UDP: a
 * plain connection by `handOver`, a TLS one by `switchToSealed` (below).
 *
 * The handover happens once, when the fast path opens (the client on its welcome,
 * the server when it tracks the session), inside the turn that decoded the message:
 * Node stops reading the socket there and then, so not a byte is read twice or lost,
 * and what the decoder held of an unfinished message goes to the addon first. It is
 * refused (the link stays on Node's socket) while Node still holds unread or unsent
 * bytes, whose order the addon could not keep, and for an IPv6 peer (the fast path's
 * tables are IPv4). From then on the addon reads and writes the connection; Node's
 * socket only closes it.
 */
import { isIPv4, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastPathEnd } from '../fast-path.js';
import { loadAddon, type NativeStreamLink } from '../native.js';
import { createSealer, sealFailureOf, STREAM_EXPORTER_LABEL, tlsKeyDeriver, type SealFailure } from '../secure/index.js';
import { encodeDataBatchWithin, MAX_FRAME, type StreamDecoder } from '../protocol.js';
import { ipToInt } from './batch-udp.js';
import { releaseNow } from './read-release.js';

/** What libuv's TCP handle offers under Node's socket (stable since Node 0.x; Node's own http uses readStop). */
interface TcpHandle {
  fd?: number;
  reading?: boolean;
  readStart?(): number;
  readStop?(): number;
}

export interface HandedOver {
  stream: NativeStreamLink;
  /** The peer's address as the addon reports it: the server fast path's key. */
  address: { ip: number; port: number };
  end: FastPathEnd;
}

/** The IPv4 address of a peer, also when a dual-stack listener names it ::ffff:a.b.c.d. */
function peerIpv4(address: string | undefined): string | undefined {
  const v4 = address?.startsWith('::ffff:') ? address.slice(7) : address;
  return v4 !== undefined && isIPv4(v4) ? v4 : undefined;
}

/**
 * Hands `socket` to the addon, or returns undefined when it cannot be now. `onBytes`
 * gets the bytes of whole messages the fast path does not take (feed them to the
 * link's decoder, which is empty from now on); `onClosed` the end of the connection.
 */
export function handOver(socket: Socket, decoder: StreamDecoder, maxQueueBytes: number, onBytes: (bytes: Buffer) => void, onClosed: (reason: string) => void): HandedOver | undefined {
  const handle = (socket as unknown as { _handle?: TcpHandle })._handle;
  const ip = peerIpv4(socket.remoteAddress);
  const port = socket.remotePort;
  if (socket.destroyed || handle?.readStop === undefined || handle.fd === undefined || handle.fd < 0 || ip === undefined || port === undefined) return undefined;
  if (socket.readableLength > 0 || socket.writableLength > 0) return undefined;
  stopReading(socket, handle);
  const address = { ip: ipToInt(ip), port };
  const stream = new (loadAddon().fastPath.StreamLink)(handle.fd, address.ip, port, maxQueueBytes, MAX_FRAME, decoder.takeBuffered(), onBytes, onClosed);
  return handedOver(stream, address);
}

/** Node stops reading `socket` (its `handle`) for good: the addon is its reader from now on. */
function stopReading(socket: Socket, handle: TcpHandle): void {
  socket.pause();
  handle.reading = false;
  handle.readStop?.();
  // For good: Node's stream machinery asks for more whenever its buffer is short
  // (maybeReadMore after this very 'data' event), which would start the handle
  // reading again beside the addon: two readers of one stream tear its messages.
  handle.readStart = () => 0;
  (socket as unknown as { _read: () => void })._read = () => {};
}

function handedOver(stream: NativeStreamLink, address: { ip: number; port: number }): HandedOver {
  return { stream, address, end: { fd: -1, stream, attachFastPath: (path) => stream.attach(path) } };
}

/** Whether this TLS connection can switch to sealed records (TCP --tls after the welcome): what a link offers and accepts. */
export function canSwitchToSealed(secure: TLSSocket): boolean {
  if (peerIpv4(secure.remoteAddress) === undefined) return false;
  try {
    const addon = loadAddon();
    return addon.Sealer !== undefined && addon.fastPath.StreamLink !== undefined;
  } catch {
    return false;
  }
}

/**
 * TCP --tls: the switch from TLS to sealed records (PROTOCOL.md "Sealed stream"), at
 * the welcome that accepted FEATURE_SEALED_STREAM — the client when it decodes that
 * welcome, the server right after writing it. The TLS session stays (its exporter
 * keys the records; closing the socket ends both) but Node's TLS reader stops here,
 * in this turn: neither end sends anything more over TLS, and the server none of its
 * records before the client's first has opened (stream_link.h), so no record ever
 * meets a TLS reader. From then on the addon reads and writes the connection, sealing
 * and opening; `onBytes` gets the plaintext of the messages the fast path does not
 * take, `onClosed` the end (with the failure of a record that did not open). Returns
 * undefined where it cannot (an IPv6 peer: the fast path's tables are IPv4).
 */
export function switchToSealed(
  secure: TLSSocket,
  role: 'client' | 'server',
  maxQueueBytes: number,
  onBytes: (bytes: Buffer) => void,
  onClosed: (reason: string, failure?: SealFailure) => void,
): HandedOver | undefined {
  // Node's TLS handle (TLSWrap) names the TCP handle it wraps `_parent` (stable since
  // Node 0.11, _tls_wrap.js): its descriptor is the connection's.
  const tlsHandle = (secure as unknown as { _handle?: TcpHandle & { _parent?: TcpHandle } })._handle;
  const tcp = tlsHandle?._parent;
  const ip = peerIpv4(secure.remoteAddress);
  const port = secure.remotePort;
  if (secure.destroyed || tcp?.fd === undefined || tcp.fd < 0 || tlsHandle?.readStop === undefined || ip === undefined || port === undefined) return undefined;
  const sealer = createSealer({ keyId: STREAM_KEY_ID, sends: role === 'client' ? 'c2s' : 's2c', derive: tlsKeyDeriver(secure, STREAM_EXPORTER_LABEL) });
  if (sealer.native === undefined) return undefined;
  stopReading(secure, tlsHandle);
  const address = { ip: ipToInt(ip), port };
  const closed = (reason: string, code?: number): void => onClosed(reason, code === undefined ? undefined : sealFailureOf(code));
  const stream = new (loadAddon().fastPath.StreamLink)(tcp.fd, address.ip, port, maxQueueBytes, MAX_FRAME, Buffer.alloc(0), onBytes, closed, sealer.native, role);
  return handedOver(stream, address);
}

/** The key id of every sealed record: the connection names the session, so one id serves. */
const STREAM_KEY_ID = 0;

/** Frames as one batch of Data messages on the addon's connection; those past the queue bound are dropped. */
export function sendFramesToStream(stream: NativeStreamLink, frames: Buffer[], maxQueueBytes: number): number {
  const fits = encodeDataBatchWithin(frames, maxQueueBytes - stream.queued());
  if (fits === undefined) return 0;
  const written = stream.write(fits.batch);
  releaseNow(fits.batch); // the addon copied it
  return written ? fits.count : 0;
}
