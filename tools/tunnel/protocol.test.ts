import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decodeDatagram,
  decodePayload,
  echoOfSession,
  encode,
  encodeDataBatch,
  encodeDataBatchWithin,
  encodeErrorWithin,
  ErrorCode,
  HEADER_SIZE,
  HELLO_V2_PADDED,
  MAX_FRAME,
  MessageType,
  ProtocolError,
  PROTOCOL_VERSION,
  StreamDecoder,
  TunnelMode,
  type Message,
} from './protocol.js';

const frame = (n: number, fill = 0x42): Buffer => Buffer.alloc(n, fill);
const sid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

const token = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');
const samples: Message[] = [
  { type: MessageType.Data, frame: frame(60) },
  { type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Separate, flags: 0, mtu: 1400, sessionId: sid, destination: '172.17.0.2', resumeToken: undefined },
  { type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Local, flags: 0, mtu: 1400, sessionId: sid, destination: undefined, resumeToken: token },
  // Issue 18's IPv6 --dest already fits the v2 hello.
  { type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Separate, flags: 1, mtu: 1400, sessionId: sid, destination: 'fd00::1:2', resumeToken: undefined },
  { type: MessageType.Hello, version: 1, mode: TunnelMode.Separate, flags: 0, mtu: 1400, sessionId: sid, destination: '172.17.0.2' },
  { type: MessageType.Welcome, version: PROTOCOL_VERSION, resumed: true, mtu: 1400, sessionId: sid, serverAddress: '192.168.100.1', prefix: 24, keepaliveMs: 1000, flags: 0, resumeToken: token },
  { type: MessageType.Welcome, version: 1, resumed: false, mtu: 1400, sessionId: sid, serverAddress: '192.168.100.1', prefix: 24, keepaliveMs: 1000 },
  { type: MessageType.Error, code: ErrorCode.DestinationRejected, reason: 'no route to 10.0.0.9' },
  { type: MessageType.Error, code: ErrorCode.ResumeRefused, reason: 'not yours', echo: echoOfSession(sid) },
  { type: MessageType.Ping, nonce: 42n },
  { type: MessageType.Pong, nonce: 2n ** 63n },
  { type: MessageType.Bye, reason: 'stopped by SIGTERM' },
];

describe('protocol v2 codec (serving v1)', () => {
  it('round-trips every message type, in datagrams and on a stream', () => {
    for (const m of samples) expect(decodeDatagram(encode(m))).toEqual([m]);
    const all = Buffer.concat(samples.map(encode));
    expect(decodeDatagram(all)).toEqual(samples);
  });

  it('reassembles a stream cut at every byte boundary', () => {
    const all = Buffer.concat(samples.map(encode));
    for (let cut = 0; cut <= all.length; cut++) {
      const d = new StreamDecoder();
      const got = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))];
      expect(got).toEqual(samples);
      expect(d.buffered).toBe(0);
    }
  });

  it('rejects what is not ctun, with the code the peer is told', () => {
    const code = (f: () => unknown): ErrorCode | undefined => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
        return (e as ProtocolError).code;
      }
      return undefined;
    };
    const hello = encode(samples[1]!);
    const badMagic = Buffer.from(hello);
    badMagic.write('XXXX', 4);
    expect(code(() => decodeDatagram(badMagic))).toBe(ErrorCode.BadMagic);
    const v9 = Buffer.from(hello);
    v9.writeUInt8(9, 8);
    expect(code(() => decodeDatagram(v9))).toBe(ErrorCode.VersionMismatch);
    const v0 = Buffer.from(hello);
    v0.writeUInt8(0, 8);
    expect(code(() => decodeDatagram(v0))).toBe(ErrorCode.VersionMismatch);
    expect(code(() => decodeDatagram(hello.subarray(0, hello.length - 1)))).toBe(ErrorCode.Malformed);
    expect(code(() => decodeDatagram(Buffer.from([99, 0, 0, 0])))).toBe(ErrorCode.Malformed);
    expect(code(() => decodeDatagram(encode({ type: MessageType.Data, frame: frame(MAX_FRAME + 1) })))).toBe(ErrorCode.TooLarge);
    expect(code(() => decodeDatagram(encode({ type: MessageType.Data, frame: frame(10) })))).toBe(ErrorCode.Malformed);
    expect(code(() => new StreamDecoder(1500).push(encode({ type: MessageType.Data, frame: frame(1600) }).subarray(0, 4)))).toBe(ErrorCode.TooLarge);
    expect(code(() => decodeDatagram(Buffer.alloc(0)))).toBe(ErrorCode.Malformed);
  });

  it('keeps the session id where every version has it, so an error to any hello can echo it', () => {
    const hello = encode(samples[1]!);
    hello.writeUInt8(7, HEADER_SIZE + 4); // a future version
    try {
      decodeDatagram(hello);
      expect.unreachable();
    } catch (e) {
      expect((e as ProtocolError).code).toBe(ErrorCode.VersionMismatch);
      expect((e as ProtocolError).message).toBe('v7 unsupported, server speaks v1-2: upgrade the server');
      expect((e as ProtocolError).echo).toEqual(echoOfSession(sid));
    }
    // A v2 hello is padded, so an error answering it has room for its reason.
    expect(hello.length).toBe(HEADER_SIZE + HELLO_V2_PADDED);
    // Padding beyond the fixed part is ignored, not required.
    const unpadded = encode(samples[2]!).subarray(0, HEADER_SIZE + 64);
    unpadded.writeUInt16BE(64, 2);
    expect(decodeDatagram(unpadded)).toEqual([samples[2]]);
  });

  it('fits an error into the bytes of the datagram it answers, never more', () => {
    const long = { type: MessageType.Error, code: ErrorCode.VersionMismatch, reason: 'é'.repeat(100), echo: echoOfSession(sid) } as const;
    for (let limit = 0; limit < 260; limit++) {
      const b = encodeErrorWithin(long, limit);
      if (b === undefined) {
        expect(limit).toBeLessThan(HEADER_SIZE + 2);
        continue;
      }
      expect(b.length).toBeLessThanOrEqual(limit);
      const [m] = decodeDatagram(b);
      expect(m).toMatchObject({ type: MessageType.Error, code: ErrorCode.VersionMismatch });
      expect((m as { reason: string }).reason).not.toContain('\ufffd'); // cut on a character boundary
    }
    // A 9-byte hello of another version (the smallest) gets at most 9 bytes back.
    expect(encodeErrorWithin(long, 9)!.length).toBeLessThanOrEqual(9);
  });

  it('reads a v1 peer as v1: hello and welcome of 32 bytes', () => {
    const v1 = encode(samples[4]!);
    expect(v1.length).toBe(HEADER_SIZE + 32);
    expect(decodePayload(MessageType.Hello, v1.subarray(HEADER_SIZE))).toMatchObject({ version: 1, destination: '172.17.0.2' });
    expect(encode(samples[6]!).length).toBe(HEADER_SIZE + 32);
  });

  it('never buffers more than one message on a stream', () => {
    const d = new StreamDecoder(1500);
    const m = encode({ type: MessageType.Data, frame: frame(1500) });
    d.push(m.subarray(0, 1000));
    expect(d.buffered).toBe(1000);
    expect(d.push(m.subarray(1000))).toHaveLength(1);
  });

  it('encodes a batch of frames as the Data messages one by one would be', () => {
    const frames = [frame(60, 1), frame(1500, 2), frame(14), frame(MAX_FRAME, 3)];
    const batch = encodeDataBatch(frames);
    expect(batch.equals(Buffer.concat(frames.map((f) => encode({ type: MessageType.Data, frame: f }))))).toBe(true);
    expect(new StreamDecoder().push(batch)).toEqual(frames.map((f) => ({ type: MessageType.Data, frame: f })));
    expect(encodeDataBatch([]).length).toBe(0);
  });

  it('batches only the leading frames that fit a queue bound, whole', () => {
    const frames = [frame(100, 1), frame(200, 2), frame(300, 3)];
    const room = HEADER_SIZE + 100 + HEADER_SIZE + 200;
    expect(encodeDataBatchWithin(frames, room)).toEqual({ batch: encodeDataBatch(frames.slice(0, 2)), count: 2 });
    expect(encodeDataBatchWithin(frames, room - 1)?.count).toBe(1);
    expect(encodeDataBatchWithin(frames, HEADER_SIZE + 99)).toBeUndefined();
    expect(encodeDataBatchWithin(frames, 10_000)?.count).toBe(3);
  });

  it('decodes in place and copies only the message that straddles two reads', () => {
    const released: Buffer[] = [];
    const d = new StreamDecoder(1500, (b) => released.push(b));
    const one = encode({ type: MessageType.Data, frame: frame(1000, 1) });
    const two = encode({ type: MessageType.Data, frame: frame(1500, 2) });
    const chunk = Buffer.concat([one, two.subarray(0, 2)]);
    const [first] = d.push(chunk);
    // A view of the read, not a copy: freeing the read after its turn frees it too.
    expect(first!.type === MessageType.Data && first!.frame.buffer).toBe(chunk.buffer);
    expect(d.buffered).toBe(2);
    expect(d.push(two.subarray(2, 700))).toEqual([]);
    const rest = Buffer.concat([two.subarray(700), one]);
    const [second, third] = d.push(rest);
    expect(second).toEqual({ type: MessageType.Data, frame: frame(1500, 2) });
    // The straddler had a buffer of its own size, handed over to be freed after its turn.
    expect(released.map((b) => b.length)).toEqual([two.length]);
    expect(second!.type === MessageType.Data && second!.frame.buffer).toBe(released[0]!.buffer);
    expect(third!.type === MessageType.Data && third!.frame.buffer).toBe(rest.buffer);
    expect(d.buffered).toBe(0);
  });

  it('turns 20 000 random and mutated inputs into messages or typed errors only', () => {
    const valid = samples.map(encode);
    for (let i = 0; i < 20_000; i++) {
      let input: Buffer;
      if (i % 2 === 0) input = randomBytes(i % 97);
      else {
        input = Buffer.from(valid[i % valid.length]!);
        const at = i % input.length;
        input[at] = input[at]! ^ (1 + (i % 255));
      }
      try {
        decodeDatagram(input);
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
      }
      try {
        new StreamDecoder().push(input);
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
      }
    }
  });
});
