/**
 * What the native data fast path (native/fastpath.cc) takes from a datagram, on
 * Buffers: a datagram of Data messages only is forwarded frame by frame to the TAP;
 * anything else (a control message, a mixed datagram, a torn or flagged one) must go
 * to TypeScript whole, so nothing the control plane decides is skipped.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadAddon } from './native.js';
import { encode, MessageType } from './protocol.js';

const { fastPath } = loadAddon();
const frame = (size: number): Buffer => randomBytes(size);
const data = (f: Buffer): Buffer => encode({ type: MessageType.Data, frame: f });

describe('fast path: which datagrams it forwards', () => {
  it('a datagram of one Data message: its frame, byte for byte', () => {
    const f = frame(1514);
    expect(fastPath.dataFrames(data(f))).toEqual([f]);
  });

  it('a chain of Data messages: every frame, in order', () => {
    const frames = [frame(60), frame(1514), frame(98)];
    expect(fastPath.dataFrames(Buffer.concat(frames.map(data)))).toEqual(frames);
  });

  it('control messages, alone or mixed with data, go to TypeScript whole', () => {
    const ping = encode({ type: MessageType.Ping, nonce: 7n });
    expect(fastPath.dataFrames(ping)).toBeNull();
    expect(fastPath.dataFrames(Buffer.concat([data(frame(100)), ping]))).toBeNull();
    expect(fastPath.dataFrames(Buffer.concat([ping, data(frame(100))]))).toBeNull();
    expect(fastPath.dataFrames(encode({ type: MessageType.Bye, reason: 'x' }))).toBeNull();
  });

  it('a torn, padded, flagged or empty datagram goes to TypeScript (which counts it as invalid)', () => {
    const d = data(frame(200));
    expect(fastPath.dataFrames(d.subarray(0, d.length - 1))).toBeNull();
    expect(fastPath.dataFrames(Buffer.concat([d, Buffer.from([0])]))).toBeNull();
    const flagged = Buffer.from(d);
    flagged[1] = 1;
    expect(fastPath.dataFrames(flagged)).toBeNull();
    expect(fastPath.dataFrames(Buffer.alloc(0))).toBeNull();
    expect(fastPath.dataFrames(Buffer.from([1, 0, 0, 0]))).toBeNull();
  });
});
