/**
 * A plain TCP link's connection handed to the addon (native/stream_link.h), so that
 * the data fast path moves a lone request/response frame between the TAP and the
 * connection without a JavaScript call at either end, as it does on plain UDP.
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
import type { FastPathEnd } from '../fast-path.js';
import { loadAddon, type NativeStreamLink } from '../native.js';
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
  socket.pause();
  handle.reading = false;
  handle.readStop();
  // For good: Node's stream machinery asks for more whenever its buffer is short
  // (maybeReadMore after this very 'data' event), which would start the handle
  // reading again beside the addon: two readers of one stream tear its messages.
  handle.readStart = () => 0;
  (socket as unknown as { _read: () => void })._read = () => {};
  const address = { ip: ipToInt(ip), port };
  const stream = new (loadAddon().fastPath.StreamLink)(handle.fd, address.ip, port, maxQueueBytes, MAX_FRAME, decoder.takeBuffered(), onBytes, onClosed);
  return { stream, address, end: { fd: -1, stream, attachFastPath: (path) => stream.attach(path) } };
}

/** Frames as one batch of Data messages on the addon's connection; those past the queue bound are dropped. */
export function sendFramesToStream(stream: NativeStreamLink, frames: Buffer[], maxQueueBytes: number): number {
  const fits = encodeDataBatchWithin(frames, maxQueueBytes - stream.queued());
  if (fits === undefined) return 0;
  const written = stream.write(fits.batch);
  releaseNow(fits.batch); // the addon copied it
  return written ? fits.count : 0;
}
