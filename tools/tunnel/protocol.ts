/**
 * ctun protocol v2, serving v1 peers too (see PROTOCOL.md). Every message is a 4-byte header — type (u8),
 * flags (u8, reserved, 0), payload length (u16 big-endian) — then the payload. On UDP
 * a datagram holds one or more whole messages; on TCP they follow each other on the
 * byte stream. The u16 length bounds every message, so nothing allocates without bound.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The version this end speaks; it also serves (and, as a client, is understood by) MIN_PROTOCOL_VERSION. */
export const PROTOCOL_VERSION = 2;
/** The oldest version a server still serves: v1 clients keep working (without resume tokens). */
export const MIN_PROTOCOL_VERSION = 1;
export const MAGIC = Buffer.from('CTUN', 'ascii');
export const HEADER_SIZE = 4;
/** Largest payload a header can describe. */
export const MAX_PAYLOAD = 0xffff;
/** Ethernet frame bounds: a header (14 bytes) up to a jumbo frame. */
export const MIN_FRAME = 14;
export const MAX_FRAME = 9216;
/** Error reasons longer than this are cut, so an error never exceeds a datagram. */
export const MAX_REASON = 512;

export enum MessageType {
  Data = 1,
  Hello = 2,
  Welcome = 3,
  Error = 4,
  Ping = 5,
  Pong = 6,
  Bye = 7,
}

export enum TunnelMode {
  Local = 0,
  Separate = 1,
}

/** Error codes carried in Error messages; stable across versions. */
export enum ErrorCode {
  BadMagic = 1,
  VersionMismatch = 2,
  Malformed = 3,
  TooLarge = 4,
  NoSession = 5,
  DestinationRejected = 6,
  ModeMismatch = 7,
  ServerFull = 8,
  ShuttingDown = 9,
  /** --tls: the client's certificate was refused (not from the CA, expired, revoked). */
  NotAuthorized = 10,
  /**
   * A hello named a session that belongs to another peer (another certificate, or in
   * plain mode another address or no matching resume token). The client starts a new
   * session; nothing of the old one is given away.
   */
  ResumeRefused = 11,
}

/**
 * Set in an Error's code when 8 bytes of the hello's session id follow the code (v2
 * servers do it for every error answering a hello of version 2 or later): a plain-UDP
 * client acts only on errors that echo its own session, so an off-path spoofer cannot
 * stop it.
 */
export const ERROR_ECHO_FLAG = 0x8000;
export const ERROR_ECHO_SIZE = 8;

/** Destination address family in a v2 hello (and the server address's in a v2 welcome). */
export enum AddressFamily {
  None = 0,
  IPv4 = 4,
  IPv6 = 6,
}

/** Feature flags (u16) in hello and welcome: a client offers, the welcome says which the server accepted; unknown bits are ignored. */
export const FEATURES_NONE = 0;
/** TCP --tls: after the welcome the connection carries sealed records, not TLS (PROTOCOL.md "Sealed stream"). */
export const FEATURE_SEALED_STREAM = 1 << 0;

export interface Hello {
  type: MessageType.Hello;
  /** 1 or 2; a v2 server answers a v1 hello in v1. */
  version: number;
  mode: TunnelMode;
  /** Feature flags the client offers (FEATURES_NONE). */
  flags: number;
  mtu: number;
  /** 16 random bytes chosen by the client; a reconnect with the same id resumes. */
  sessionId: Buffer;
  /** Separate mode: the target the client wants to reach; undefined for none. */
  destination: string | undefined;
  /** v2: the token of the welcome that created the session (resume), undefined on a first hello. */
  resumeToken?: Buffer | undefined;
}

export interface Welcome {
  type: MessageType.Welcome;
  version: number;
  resumed: boolean;
  mtu: number;
  sessionId: Buffer;
  /** The server's tunnel address, the next hop for `--dest` routes. */
  serverAddress: string;
  prefix: number;
  keepaliveMs: number;
  /** v2: feature flags the server accepted (a subset of the hello's). */
  flags?: number;
  /** v2: 16 random bytes; a resume must present them (plain mode). */
  resumeToken?: Buffer | undefined;
}

export interface ErrorMessage {
  type: MessageType.Error;
  code: ErrorCode;
  reason: string;
  /** First 8 bytes of the session id of the hello this error answers (v2), if echoed. */
  echo?: Buffer | undefined;
}

export interface Data {
  type: MessageType.Data;
  frame: Buffer;
}

export interface PingPong {
  type: MessageType.Ping | MessageType.Pong;
  nonce: bigint;
}

export interface Bye {
  type: MessageType.Bye;
  reason: string;
}

export type Message = Hello | Welcome | ErrorMessage | Data | PingPong | Bye;

/** A decode failure: what was wrong, as the code the peer will be told. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For a hello of another version: the session id bytes to echo (at the offset every version keeps). */
    readonly echo?: Buffer,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** v1 hello and welcome payloads. */
const HELLO_V1_SIZE = 32;
const WELCOME_V1_SIZE = 32;
/**
 * v2 hello payload: at least this, and a client may pad it (zeros) so that an error
 * answering it can carry a whole reason: the server never answers with more bytes
 * than the datagram that asked.
 */
export const HELLO_V2_SIZE = 64;
/** What a v2 client pads its hello to. */
export const HELLO_V2_PADDED = 192;
const WELCOME_V2_SIZE = 64;
/** Every version keeps the magic at 0, the version at 4 and the session id at 12..28 of its hello. */
const SESSION_ID_OFFSET = 12;
export const RESUME_TOKEN_SIZE = 16;
const ZERO_TOKEN = Buffer.alloc(RESUME_TOKEN_SIZE);

function header(type: MessageType, length: number): Buffer {
  if (length > MAX_PAYLOAD) throw new RangeError(`payload of ${length} bytes exceeds ${MAX_PAYLOAD}`);
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  h.writeUInt8(type, 0);
  h.writeUInt8(0, 1);
  h.writeUInt16BE(length, 2);
  return h;
}

function ipv4ToBytes(address: string | undefined, target: Buffer, offset: number): void {
  if (address === undefined) {
    target.writeUInt32BE(0, offset);
    return;
  }
  if (!isIPv4(address)) throw new RangeError(`not an IPv4 address: ${address}`);
  address.split('.').forEach((part, i) => target.writeUInt8(Number(part), offset + i));
}

function bytesToIpv4(source: Buffer, offset: number): string {
  return [0, 1, 2, 3].map((i) => source.readUInt8(offset + i)).join('.');
}

function ipv6ToBytes(address: string): Buffer {
  // Expand "::" and an embedded IPv4 tail into eight groups.
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, v4.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** RFC 5952 text: lowest-case hex, the longest run of two or more zero groups as "::". */
export function bytesToIpv6(b: Buffer): string {
  const groups = [0, 2, 4, 6, 8, 10, 12, 14].map((i) => b.readUInt16BE(i));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Encodes a data message: header and frame as two buffers, so the frame is not copied. */
export function encodeData(frame: Buffer): Buffer[] {
  return [header(MessageType.Data, frame.length), frame];
}

/**
 * Data messages for the frames, back to back in one buffer of their exact size (what
 * a stream link writes per turn): the frames are copied once, with no header
 * buffers or part lists to collect afterwards.
 */
export function encodeDataBatch(frames: readonly Buffer[]): Buffer {
  let total = 0;
  for (const frame of frames) total += HEADER_SIZE + frame.length;
  const batch = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const frame of frames) {
    if (frame.length > MAX_PAYLOAD) throw new RangeError(`payload of ${frame.length} bytes exceeds ${MAX_PAYLOAD}`);
    batch[at] = MessageType.Data;
    batch[at + 1] = 0;
    batch.writeUInt16BE(frame.length, at + 2);
    at += HEADER_SIZE + frame.copy(batch, at + HEADER_SIZE);
  }
  return batch;
}

/**
 * The leading frames whose Data messages fit in `room` bytes, encoded as one batch
 * (a stream link's send queue bound: frames past it are dropped, never cut); undefined
 * when not even the first fits.
 */
export function encodeDataBatchWithin(frames: readonly Buffer[], room: number): { batch: Buffer; count: number } | undefined {
  let count = 0;
  for (const frame of frames) {
    room -= HEADER_SIZE + frame.length;
    if (room < 0) break;
    count++;
  }
  if (count === 0) return undefined;
  return { batch: encodeDataBatch(count === frames.length ? frames : frames.slice(0, count)), count };
}

export function encode(message: Message): Buffer {
  switch (message.type) {
    case MessageType.Data:
      return Buffer.concat(encodeData(message.frame));
    case MessageType.Hello:
      return message.version === 1 ? encodeHelloV1(message) : encodeHelloV2(message);
    case MessageType.Welcome:
      return message.version === 1 ? encodeWelcomeV1(message) : encodeWelcomeV2(message);
    case MessageType.Error:
      return encodeError(message);
    case MessageType.Ping:
    case MessageType.Pong: {
      const p = Buffer.alloc(8);
      p.writeBigUInt64BE(message.nonce, 0);
      return Buffer.concat([header(message.type, p.length), p]);
    }
    case MessageType.Bye: {
      const reason = Buffer.from(message.reason, 'utf8').subarray(0, MAX_REASON);
      return Buffer.concat([header(message.type, reason.length), reason]);
    }
  }
}

function encodeHelloV1(m: Hello): Buffer {
  const p = Buffer.alloc(HELLO_V1_SIZE);
  MAGIC.copy(p, 0);
  p.writeUInt8(1, 4);
  p.writeUInt8(m.mode, 5);
  p.writeUInt16BE(m.flags, 6);
  p.writeUInt16BE(m.mtu, 8);
  m.sessionId.copy(p, SESSION_ID_OFFSET, 0, 16);
  ipv4ToBytes(m.destination, p, 28);
  return Buffer.concat([header(MessageType.Hello, p.length), p]);
}

function writeAddress(address: string | undefined, p: Buffer, familyAt: number, addressAt: number): void {
  if (address === undefined) {
    p.writeUInt8(AddressFamily.None, familyAt);
    return;
  }
  if (isIPv4(address)) {
    p.writeUInt8(AddressFamily.IPv4, familyAt);
    ipv4ToBytes(address, p, addressAt);
    return;
  }
  if (isIPv6(address)) {
    p.writeUInt8(AddressFamily.IPv6, familyAt);
    ipv6ToBytes(address).copy(p, addressAt);
    return;
  }
  throw new RangeError(`not an IP address: ${address}`);
}

function readAddress(p: Buffer, familyAt: number, addressAt: number, what: string): string | undefined {
  const family = p.readUInt8(familyAt);
  if (family === AddressFamily.None) return undefined;
  if (family === AddressFamily.IPv4) return bytesToIpv4(p, addressAt);
  if (family === AddressFamily.IPv6) return bytesToIpv6(p.subarray(addressAt, addressAt + 16));
  throw new ProtocolError(ErrorCode.Malformed, `${what} has unknown address family ${family}`);
}

function encodeHelloV2(m: Hello): Buffer {
  const p = Buffer.alloc(HELLO_V2_PADDED);
  MAGIC.copy(p, 0);
  p.writeUInt8(m.version, 4);
  p.writeUInt8(m.mode, 5);
  p.writeUInt16BE(m.flags, 6);
  p.writeUInt16BE(m.mtu, 8);
  m.sessionId.copy(p, SESSION_ID_OFFSET, 0, 16);
  (m.resumeToken ?? ZERO_TOKEN).copy(p, 28, 0, RESUME_TOKEN_SIZE);
  writeAddress(m.destination, p, 10, 44);
  return Buffer.concat([header(MessageType.Hello, p.length), p]);
}

function encodeWelcomeV1(m: Welcome): Buffer {
  const p = Buffer.alloc(WELCOME_V1_SIZE);
  MAGIC.copy(p, 0);
  p.writeUInt8(1, 4);
  p.writeUInt8(m.resumed ? 1 : 0, 5);
  p.writeUInt16BE(m.mtu, 6);
  m.sessionId.copy(p, 8, 0, 16);
  ipv4ToBytes(m.serverAddress, p, 24);
  p.writeUInt8(m.prefix, 28);
  p.writeUInt16BE(Math.min(m.keepaliveMs, 0xffff), 30);
  return Buffer.concat([header(MessageType.Welcome, p.length), p]);
}

function encodeWelcomeV2(m: Welcome): Buffer {
  const p = Buffer.alloc(WELCOME_V2_SIZE);
  MAGIC.copy(p, 0);
  p.writeUInt8(m.version, 4);
  p.writeUInt8(m.resumed ? 1 : 0, 5);
  p.writeUInt16BE(m.mtu, 6);
  m.sessionId.copy(p, 8, 0, 16);
  p.writeUInt16BE(Math.min(m.keepaliveMs, 0xffff), 24);
  p.writeUInt16BE(m.flags ?? FEATURES_NONE, 26);
  (m.resumeToken ?? ZERO_TOKEN).copy(p, 28, 0, RESUME_TOKEN_SIZE);
  writeAddress(m.serverAddress, p, 44, 48);
  p.writeUInt8(m.prefix, 45);
  return Buffer.concat([header(MessageType.Welcome, p.length), p]);
}

function encodeError(m: ErrorMessage): Buffer {
  const reason = Buffer.from(m.reason, 'utf8').subarray(0, MAX_REASON);
  const echo = m.echo === undefined ? Buffer.alloc(0) : m.echo.subarray(0, ERROR_ECHO_SIZE);
  if (m.echo !== undefined && echo.length !== ERROR_ECHO_SIZE) throw new RangeError(`an error echo is ${ERROR_ECHO_SIZE} bytes`);
  const p = Buffer.alloc(2 + echo.length + reason.length);
  p.writeUInt16BE(m.code | (m.echo === undefined ? 0 : ERROR_ECHO_FLAG), 0);
  echo.copy(p, 2);
  reason.copy(p, 2 + echo.length);
  return Buffer.concat([header(MessageType.Error, p.length), p]);
}

/**
 * An Error that fits in `limit` bytes on the wire (its reason cut, on a UTF-8
 * boundary), or undefined when not even the code fits: a UDP reply is never larger
 * than the datagram that caused it (PROTOCOL.md, "No reflection").
 */
export function encodeErrorWithin(m: ErrorMessage, limit: number): Buffer | undefined {
  const fixed = HEADER_SIZE + 2 + (m.echo === undefined ? 0 : ERROR_ECHO_SIZE);
  if (limit < fixed) return m.echo === undefined ? undefined : encodeErrorWithin({ ...m, echo: undefined }, limit);
  let reason = Buffer.from(m.reason, 'utf8').subarray(0, Math.min(MAX_REASON, limit - fixed));
  // Never cut inside a UTF-8 sequence.
  while (reason.length > 0 && (reason[reason.length - 1]! & 0xc0) === 0x80) reason = reason.subarray(0, reason.length - 1);
  if (reason.length > 0 && reason[reason.length - 1]! >= 0xc0) reason = reason.subarray(0, reason.length - 1);
  return encodeError({ ...m, reason: reason.toString('utf8') });
}

/** The session id bytes an error should echo for a hello payload of any version, if it has them. */
function echoOf(payload: Buffer): Buffer | undefined {
  if (payload.length < SESSION_ID_OFFSET + ERROR_ECHO_SIZE) return undefined;
  return Buffer.from(payload.subarray(SESSION_ID_OFFSET, SESSION_ID_OFFSET + ERROR_ECHO_SIZE));
}

/** The 8 bytes of a session id that errors echo. */
export function echoOfSession(sessionId: Buffer): Buffer {
  return Buffer.from(sessionId.subarray(0, ERROR_ECHO_SIZE));
}

function decodeHello(payload: Buffer): Hello {
  if (payload.length < 5 || !payload.subarray(0, 4).equals(MAGIC)) throw new ProtocolError(ErrorCode.BadMagic, 'hello without the CTUN magic: not a ctun client');
  const version = payload.readUInt8(4);
  if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
    const side = version > PROTOCOL_VERSION ? 'upgrade the server' : 'upgrade the client';
    throw new ProtocolError(ErrorCode.VersionMismatch, `v${version} unsupported, server speaks v${MIN_PROTOCOL_VERSION}-${PROTOCOL_VERSION}: ${side}`, version > 1 ? echoOf(payload) : undefined);
  }
  if (version === 1 && payload.length !== HELLO_V1_SIZE) throw new ProtocolError(ErrorCode.Malformed, `hello of ${payload.length} bytes, expected ${HELLO_V1_SIZE}`);
  if (version >= 2 && payload.length < HELLO_V2_SIZE) throw new ProtocolError(ErrorCode.Malformed, `hello of ${payload.length} bytes, expected at least ${HELLO_V2_SIZE}`, echoOf(payload));
  const mode = payload.readUInt8(5);
  if (mode !== TunnelMode.Local && mode !== TunnelMode.Separate) throw new ProtocolError(ErrorCode.Malformed, `unknown mode ${mode}`);
  const sessionId = Buffer.from(payload.subarray(SESSION_ID_OFFSET, SESSION_ID_OFFSET + 16));
  if (version === 1) {
    const dest = bytesToIpv4(payload, 28);
    return { type: MessageType.Hello, version, mode, flags: payload.readUInt16BE(6), mtu: payload.readUInt16BE(8), sessionId, destination: dest === '0.0.0.0' ? undefined : dest };
  }
  const token = payload.subarray(28, 28 + RESUME_TOKEN_SIZE);
  return {
    type: MessageType.Hello,
    version,
    mode,
    flags: payload.readUInt16BE(6),
    mtu: payload.readUInt16BE(8),
    sessionId,
    resumeToken: token.equals(ZERO_TOKEN) ? undefined : Buffer.from(token),
    destination: readAddress(payload, 10, 44, 'hello'),
  };
}

function decodeWelcome(payload: Buffer): Welcome {
  if (payload.length < 5 || !payload.subarray(0, 4).equals(MAGIC)) throw new ProtocolError(ErrorCode.BadMagic, 'welcome without the CTUN magic: not a ctun server');
  const version = payload.readUInt8(4);
  if (version === 1) {
    if (payload.length !== WELCOME_V1_SIZE) throw new ProtocolError(ErrorCode.Malformed, `welcome of ${payload.length} bytes, expected ${WELCOME_V1_SIZE}`);
    return {
      type: MessageType.Welcome,
      version,
      resumed: payload.readUInt8(5) === 1,
      mtu: payload.readUInt16BE(6),
      sessionId: Buffer.from(payload.subarray(8, 24)),
      serverAddress: bytesToIpv4(payload, 24),
      prefix: payload.readUInt8(28),
      keepaliveMs: payload.readUInt16BE(30),
    };
  }
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(ErrorCode.VersionMismatch, `server speaks protocol version ${version}, this client ${PROTOCOL_VERSION}: ${version > PROTOCOL_VERSION ? 'upgrade the client' : 'upgrade the server'}`);
  }
  if (payload.length < WELCOME_V2_SIZE) throw new ProtocolError(ErrorCode.Malformed, `welcome of ${payload.length} bytes, expected at least ${WELCOME_V2_SIZE}`);
  const serverAddress = readAddress(payload, 44, 48, 'welcome');
  if (serverAddress === undefined) throw new ProtocolError(ErrorCode.Malformed, 'welcome without the server address');
  const token = payload.subarray(28, 28 + RESUME_TOKEN_SIZE);
  return {
    type: MessageType.Welcome,
    version,
    resumed: (payload.readUInt8(5) & 1) === 1,
    mtu: payload.readUInt16BE(6),
    sessionId: Buffer.from(payload.subarray(8, 24)),
    keepaliveMs: payload.readUInt16BE(24),
    flags: payload.readUInt16BE(26),
    resumeToken: token.equals(ZERO_TOKEN) ? undefined : Buffer.from(token),
    serverAddress,
    prefix: payload.readUInt8(45),
  };
}

function decodeError(payload: Buffer): ErrorMessage {
  if (payload.length < 2) throw new ProtocolError(ErrorCode.Malformed, 'error message without a code');
  const raw = payload.readUInt16BE(0);
  if ((raw & ERROR_ECHO_FLAG) === 0) return { type: MessageType.Error, code: raw, reason: payload.subarray(2, 2 + MAX_REASON).toString('utf8') };
  if (payload.length < 2 + ERROR_ECHO_SIZE) throw new ProtocolError(ErrorCode.Malformed, 'error message with a truncated echo');
  return {
    type: MessageType.Error,
    code: raw & ~ERROR_ECHO_FLAG,
    echo: Buffer.from(payload.subarray(2, 2 + ERROR_ECHO_SIZE)),
    reason: payload.subarray(2 + ERROR_ECHO_SIZE, 2 + ERROR_ECHO_SIZE + MAX_REASON).toString('utf8'),
  };
}

/**
 * Decodes one payload whose header said `type`. Throws ProtocolError for anything
 * malformed; never returns a partly parsed message.
 */
export function decodePayload(type: number, payload: Buffer): Message {
  switch (type) {
    case MessageType.Data:
      if (payload.length < MIN_FRAME) throw new ProtocolError(ErrorCode.Malformed, `frame of ${payload.length} bytes is shorter than an Ethernet header`);
      if (payload.length > MAX_FRAME) throw new ProtocolError(ErrorCode.TooLarge, `frame of ${payload.length} bytes exceeds ${MAX_FRAME}`);
      return { type: MessageType.Data, frame: payload };
    case MessageType.Hello:
      return decodeHello(payload);
    case MessageType.Welcome:
      return decodeWelcome(payload);
    case MessageType.Error:
      return decodeError(payload);
    case MessageType.Ping:
    case MessageType.Pong:
      if (payload.length !== 8) throw new ProtocolError(ErrorCode.Malformed, `${type === MessageType.Ping ? 'ping' : 'pong'} of ${payload.length} bytes, expected 8`);
      return { type, nonce: payload.readBigUInt64BE(0) };
    case MessageType.Bye:
      return { type: MessageType.Bye, reason: payload.subarray(0, MAX_REASON).toString('utf8') };
    default:
      throw new ProtocolError(ErrorCode.Malformed, `unknown message type ${type}`);
  }
}

/**
 * Splits a datagram into its messages. A datagram that is not whole messages is
 * rejected entirely: a partial parse would act on garbage.
 */
export function decodeDatagram(datagram: Buffer): Message[] {
  const messages: Message[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    if (datagram.length - offset < HEADER_SIZE) throw new ProtocolError(ErrorCode.Malformed, `datagram ends inside a message header at byte ${offset}`);
    const type = datagram.readUInt8(offset);
    const length = datagram.readUInt16BE(offset + 2);
    const end = offset + HEADER_SIZE + length;
    if (end > datagram.length) throw new ProtocolError(ErrorCode.Malformed, `message at byte ${offset} claims ${length} bytes, datagram has ${datagram.length - offset - HEADER_SIZE}`);
    messages.push(decodePayload(type, datagram.subarray(offset + HEADER_SIZE, end)));
    offset = end;
  }
  if (messages.length === 0) throw new ProtocolError(ErrorCode.Malformed, 'empty datagram');
  return messages;
}

/**
 * Reassembles messages from a TCP byte stream. `maxPayload` is the negotiated bound:
 * a header announcing more is a protocol violation and the connection is closed.
 *
 * Messages are decoded in place, as views of the chunk. Only the one message that
 * straddles two reads is copied, into a buffer of its own size: concatenating the
 * rest of one read with the whole next one (as this did) made a 64 KiB buffer per
 * read at full rate, garbage until the next collection. `release` is told of each
 * such buffer once the messages decoded from it are handed out (link/read-release.ts
 * frees it after the handlers have run).
 */
export class StreamDecoder {
  /** The message that straddles reads: header bytes, then (its size known) the whole message. */
  private partial: Buffer | undefined;
  private filled = 0;

  constructor(
    private readonly maxPayload: number = MAX_FRAME,
    private readonly release: (completed: Buffer) => void = () => {},
  ) {}

  /** Feeds bytes; returns the whole messages now available. Throws ProtocolError. */
  push(chunk: Buffer): Message[] {
    const out: Message[] = [];
    let offset = this.partial === undefined ? 0 : this.complete(chunk, out);
    while (chunk.length - offset >= HEADER_SIZE) {
      const length = this.payloadLength(chunk, offset);
      const end = offset + HEADER_SIZE + length;
      if (end > chunk.length) break;
      out.push(decodePayload(chunk.readUInt8(offset), chunk.subarray(offset + HEADER_SIZE, end)));
      offset = end;
    }
    if (offset < chunk.length) this.begin(chunk.subarray(offset));
    return out;
  }

  /** Bytes waiting for the rest of a message. */
  get buffered(): number {
    return this.filled;
  }

  /** Hands over the bytes waiting for the rest of a message (a reader that takes the stream on); the decoder starts afresh. */
  takeBuffered(): Buffer {
    const bytes = this.partial === undefined ? Buffer.alloc(0) : Buffer.from(this.partial.subarray(0, this.filled));
    this.partial = undefined;
    this.filled = 0;
    return bytes;
  }

  /** The payload length a header announces; throws on what is not a ctun message. */
  private payloadLength(buf: Buffer, offset: number): number {
    const type = buf.readUInt8(offset);
    const length = buf.readUInt16BE(offset + 2);
    if (length > this.maxPayload) throw new ProtocolError(ErrorCode.TooLarge, `message of ${length} bytes exceeds the limit of ${this.maxPayload}`);
    if (type < MessageType.Data || type > MessageType.Bye) throw new ProtocolError(ErrorCode.Malformed, `unknown message type ${type}`);
    return length;
  }

  /** Keeps the start of a message whose rest comes in a later read. */
  private begin(rest: Buffer): void {
    if (rest.length < HEADER_SIZE) {
      this.partial = Buffer.alloc(HEADER_SIZE);
      this.filled = rest.copy(this.partial);
      return;
    }
    this.partial = Buffer.allocUnsafeSlow(HEADER_SIZE + this.payloadLength(rest, 0));
    this.filled = rest.copy(this.partial);
  }

  /** Fills the straddling message from `chunk`; returns the bytes of `chunk` it took. */
  private complete(chunk: Buffer, out: Message[]): number {
    let taken = 0;
    if (this.filled < HEADER_SIZE) {
      taken = chunk.copy(this.partial!, this.filled, 0, HEADER_SIZE - this.filled);
      this.filled += taken;
      if (this.filled < HEADER_SIZE) return taken;
      const header = this.partial!;
      this.partial = Buffer.allocUnsafeSlow(HEADER_SIZE + this.payloadLength(header, 0));
      header.copy(this.partial);
    }
    const message = this.partial!;
    const copied = chunk.copy(message, this.filled, taken, taken + message.length - this.filled);
    this.filled += copied;
    taken += copied;
    if (this.filled < message.length) return taken;
    this.partial = undefined;
    this.filled = 0;
    out.push(decodePayload(message.readUInt8(0), message.subarray(HEADER_SIZE)));
    this.release(message);
    return taken;
  }
}

export function describeError(code: number): string {
  return ErrorCode[code] ?? `code ${code}`;
}
