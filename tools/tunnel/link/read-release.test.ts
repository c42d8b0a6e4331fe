/**
 * A chunk read from a socket is released after the turn of the event loop that read
 * it — its frames stay intact through the handler's microtasks (where TickBatch writes
 * them) — and only a chunk that owns its whole buffer is.
 */
import { describe, expect, it } from 'vitest';
import { releaseAfterTurn, releaseWhenWritten } from './read-release.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('releaseAfterTurn', () => {
  it('frees a whole-buffer chunk after the turn, not before its microtasks ran', async () => {
    const chunk = Buffer.allocUnsafeSlow(65_536).fill(7);
    const frame = chunk.subarray(100, 1600);
    releaseAfterTurn(chunk);
    const seen = await new Promise<number>((resolve) => queueMicrotask(() => resolve(frame[0]! + frame.length)));
    expect(seen).toBe(7 + 1500);
    await turn();
    expect(chunk.buffer.byteLength).toBe(0);
    expect(frame.length).toBe(0);
  });

  it('leaves a view into a larger buffer to the garbage collector', async () => {
    const whole = Buffer.allocUnsafeSlow(4096).fill(1);
    releaseAfterTurn(whole.subarray(0, 1024));
    releaseAfterTurn(Buffer.from('small, from the pool'));
    await turn();
    expect(whole.buffer.byteLength).toBe(4096);
  });
});

/** A socket twin: `queued` bytes stay in its queue until `drain()` completes the writes. */
function socketTwin(queued: number) {
  const callbacks: Array<() => void> = [];
  return {
    writableLength: 0,
    write(data: Buffer, done: () => void): boolean {
      this.writableLength = queued;
      callbacks.push(done);
      return queued === 0;
    },
    drain(): void {
      this.writableLength = 0;
      for (const done of callbacks.splice(0)) done();
    },
  };
}

describe('releaseWhenWritten', () => {
  it('frees a batch the socket took in full at once, and once only', () => {
    const socket = socketTwin(0);
    const sent = Buffer.allocUnsafeSlow(8192).fill(3);
    releaseWhenWritten(socket, sent);
    expect(sent.buffer.byteLength).toBe(0);
    expect(() => socket.drain()).not.toThrow();
  });

  it('frees a queued batch when its write completes, not before', () => {
    const socket = socketTwin(8192);
    const queued = Buffer.allocUnsafeSlow(8192).fill(3);
    releaseWhenWritten(socket, queued);
    expect(queued.buffer.byteLength).toBe(8192);
    expect(queued[100]).toBe(3);
    socket.drain();
    expect(queued.buffer.byteLength).toBe(0);
  });
});
