import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeDatagram, encode, ErrorCode, MAX_FRAME, MessageType, ProtocolError, PROTOCOL_VERSION, StreamDecoder, TunnelMode, type Message } from './protocol.js';

const frame = (n: number, fill = 0x42): Buffer => Buffer.alloc(n, fill);
const sid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

const samples: Message[] = [
  { type: MessageType.Data, frame: frame(60) },
  { type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Separate, flags: 0, mtu: 1400, sessionId: sid, destination: '172.17.0.2' },
  { type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Local, flags: 0, mtu: 1400, sessionId: sid, destination: undefined },
  { type: MessageType.Welcome, version: PROTOCOL_VERSION, resumed: true, mtu: 1400, sessionId: sid, serverAddress: '192.168.100.1', prefix: 24, keepaliveMs: 1000 },
  { type: MessageType.Error, code: ErrorCode.DestinationRejected, reason: 'no route to 10.0.0.9' },
  { type: MessageType.Ping, nonce: 42n },
  { type: MessageType.Pong, nonce: 2n ** 63n },
  { type: MessageType.Bye, reason: 'stopped by SIGTERM' },
];

describe('protocol v1 codec', () => {
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
    const v2 = Buffer.from(hello);
    v2.writeUInt8(2, 8);
    expect(code(() => decodeDatagram(v2))).toBe(ErrorCode.VersionMismatch);
    expect(code(() => decodeDatagram(hello.subarray(0, hello.length - 1)))).toBe(ErrorCode.Malformed);
    expect(code(() => decodeDatagram(Buffer.from([99, 0, 0, 0])))).toBe(ErrorCode.Malformed);
    expect(code(() => decodeDatagram(encode({ type: MessageType.Data, frame: frame(MAX_FRAME + 1) })))).toBe(ErrorCode.TooLarge);
    expect(code(() => decodeDatagram(encode({ type: MessageType.Data, frame: frame(10) })))).toBe(ErrorCode.Malformed);
    expect(code(() => new StreamDecoder(1500).push(encode({ type: MessageType.Data, frame: frame(1600) }).subarray(0, 4)))).toBe(ErrorCode.TooLarge);
    expect(code(() => decodeDatagram(Buffer.alloc(0)))).toBe(ErrorCode.Malformed);
  });

  it('never buffers more than one message on a stream', () => {
    const d = new StreamDecoder(1500);
    const m = encode({ type: MessageType.Data, frame: frame(1500) });
    d.push(m.subarray(0, 1000));
    expect(d.buffered).toBe(1000);
    expect(d.push(m.subarray(1000))).toHaveLength(1);
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
