/**
 * ctun protocol v1 (see PROTOCOL.md). Every message is a 4-byte header — type (u8),
 * flags (u8, reserved, 0), payload length (u16 big-endian) — then the payload. On UDP
 * a datagram holds one or more whole messages; on TCP they follow each other on the
 * byte stream. The u16 length bounds every message, so nothing allocates without bound.
 */
import { isIPv4 } from 'node:net';

export const PROTOCOL_VERSION = 1;
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
}

export interface Hello {
  type: MessageType.Hello;
  version: number;
  mode: TunnelMode;
  flags: number;
  mtu: number;
  /** 16 random bytes chosen by the client; a reconnect with the same id resumes. */
  sessionId: Buffer;
  /** Separate mode: the target the client wants to reach; undefined for none. */
  destination: string | undefined;
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
}

export interface ErrorMessage {
  type: MessageType.Error;
  code: ErrorCode;
  reason: string;
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
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const HELLO_SIZE = 32;
const WELCOME_SIZE = 32;

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

/** Encodes a data message: header and frame as two buffers, so the frame is not copied. */
export function encodeData(frame: Buffer): Buffer[] {
  return [header(MessageType.Data, frame.length), frame];
}

export function encode(message: Message): Buffer {
  switch (message.type) {
    case MessageType.Data:
      return Buffer.concat(encodeData(message.frame));
    case MessageType.Hello: {
      const p = Buffer.alloc(HELLO_SIZE);
      MAGIC.copy(p, 0);
      p.writeUInt8(message.version, 4);
      p.writeUInt8(message.mode, 5);
      p.writeUInt16BE(message.flags, 6);
      p.writeUInt16BE(message.mtu, 8);
      message.sessionId.copy(p, 12, 0, 16);
      ipv4ToBytes(message.destination, p, 28);
      return Buffer.concat([header(message.type, p.length), p]);
    }
    case MessageType.Welcome: {
      const p = Buffer.alloc(WELCOME_SIZE);
      MAGIC.copy(p, 0);
      p.writeUInt8(message.version, 4);
      p.writeUInt8(message.resumed ? 1 : 0, 5);
      p.writeUInt16BE(message.mtu, 6);
      message.sessionId.copy(p, 8, 0, 16);
      ipv4ToBytes(message.serverAddress, p, 24);
      p.writeUInt8(message.prefix, 28);
      p.writeUInt16BE(Math.min(message.keepaliveMs, 0xffff), 30);
      return Buffer.concat([header(message.type, p.length), p]);
    }
    case MessageType.Error: {
      const reason = Buffer.from(message.reason, 'utf8').subarray(0, MAX_REASON);
      const p = Buffer.alloc(2 + reason.length);
      p.writeUInt16BE(message.code, 0);
      reason.copy(p, 2);
      return Buffer.concat([header(message.type, p.length), p]);
    }
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
    case MessageType.Hello: {
      if (payload.length < 5 || !payload.subarray(0, 4).equals(MAGIC)) throw new ProtocolError(ErrorCode.BadMagic, 'hello without the CTUN magic: not a ctun client');
      const version = payload.readUInt8(4);
      if (version !== PROTOCOL_VERSION) throw new ProtocolError(ErrorCode.VersionMismatch, `protocol version ${version} is not supported; this server speaks version ${PROTOCOL_VERSION}`);
      if (payload.length !== HELLO_SIZE) throw new ProtocolError(ErrorCode.Malformed, `hello of ${payload.length} bytes, expected ${HELLO_SIZE}`);
      const mode = payload.readUInt8(5);
      if (mode !== TunnelMode.Local && mode !== TunnelMode.Separate) throw new ProtocolError(ErrorCode.Malformed, `unknown mode ${mode}`);
      const dest = bytesToIpv4(payload, 28);
      return {
        type: MessageType.Hello,
        version,
        mode,
        flags: payload.readUInt16BE(6),
        mtu: payload.readUInt16BE(8),
        sessionId: Buffer.from(payload.subarray(12, 28)),
        destination: dest === '0.0.0.0' ? undefined : dest,
      };
    }
    case MessageType.Welcome: {
      if (payload.length < 5 || !payload.subarray(0, 4).equals(MAGIC)) throw new ProtocolError(ErrorCode.BadMagic, 'welcome without the CTUN magic: not a ctun server');
      const version = payload.readUInt8(4);
      if (version !== PROTOCOL_VERSION) throw new ProtocolError(ErrorCode.VersionMismatch, `server speaks protocol version ${version}, this client ${PROTOCOL_VERSION}`);
      if (payload.length !== WELCOME_SIZE) throw new ProtocolError(ErrorCode.Malformed, `welcome of ${payload.length} bytes, expected ${WELCOME_SIZE}`);
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
    case MessageType.Error:
      if (payload.length < 2) throw new ProtocolError(ErrorCode.Malformed, 'error message without a code');
      return { type: MessageType.Error, code: payload.readUInt16BE(0), reason: payload.subarray(2, 2 + MAX_REASON).toString('utf8') };
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
 */
export class StreamDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxPayload: number = MAX_FRAME) {}

  /** Feeds bytes; returns the whole messages now available. Throws ProtocolError. */
  push(chunk: Buffer): Message[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: Message[] = [];
    let buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    let offset = 0;
    while (buf.length - offset >= HEADER_SIZE) {
      const type = buf.readUInt8(offset);
      const length = buf.readUInt16BE(offset + 2);
      if (length > this.maxPayload) throw new ProtocolError(ErrorCode.TooLarge, `message of ${length} bytes exceeds the limit of ${this.maxPayload}`);
      if (type < MessageType.Data || type > MessageType.Bye) throw new ProtocolError(ErrorCode.Malformed, `unknown message type ${type}`);
      const end = offset + HEADER_SIZE + length;
      if (end > buf.length) break;
      out.push(decodePayload(type, buf.subarray(offset + HEADER_SIZE, end)));
      offset = end;
    }
    buf = offset === buf.length ? Buffer.alloc(0) : buf.subarray(offset);
    this.pending = buf.length > 0 ? [buf] : [];
    this.pendingBytes = buf.length;
    return out;
  }

  /** Bytes waiting for the rest of a message. */
  get buffered(): number {
    return this.pendingBytes;
  }
}

export function describeError(code: number): string {
  return ErrorCode[code] ?? `code ${code}`;
}
