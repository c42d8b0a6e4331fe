/**
 * A TCP connection handed to the addon (native/stream_link.h) on loopback, with real
 * sockets: what the decoder held goes on, messages arrive whole and in order, writes
 * leave whole and past the queue bound are dropped (never cut), garbage still reaches
 * the decoder that reports it, the peer's end is reported, and the handover is
 * refused where it could lose or reorder bytes. (The fast path's forwarding through
 * it, between real TAPs, is test/integration/tunnel-fast-path.test.ts.)
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encode, MessageType, ProtocolError, StreamDecoder, type Message } from '../protocol.js';
import { handOver, sendFramesToStream, type HandedOver } from './native-stream.js';

const ping = (nonce: bigint): Buffer => encode({ type: MessageType.Ping, nonce });
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A loopback server and a client connected to it; `peer` is the server's side. */
async function connected(host = '127.0.0.1'): Promise<{ client: net.Socket; peer: net.Socket }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, host);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const peer = await accepted;
  cleanups.push(() => {
    client.destroy();
    peer.destroy();
    server.close();
  });
  return { client, peer };
}

/** Hands `client` over on its first 'data' (as the links do, inside the turn that decoded it); what the addon then reports. */
function handOverOnFirstData(client: net.Socket, maxQueueBytes = 1 << 20) {
  const decoder = new StreamDecoder();
  const seen: Message[] = [];
  const errors: ProtocolError[] = [];
  const closed: string[] = [];
  let native: HandedOver | undefined;
  const onBytes = (chunk: Buffer): void => {
    try {
      seen.push(...decoder.push(chunk));
    } catch (e) {
      errors.push(e as ProtocolError);
    }
  };
  const ready = new Promise<HandedOver>((resolve) => {
    client.on('data', (chunk: Buffer) => {
      onBytes(chunk);
      native ??= handOver(client, decoder, maxQueueBytes, onBytes, (reason) => closed.push(reason));
      if (native !== undefined) {
        cleanups.push(() => native!.stream.close());
        resolve(native);
      }
    });
  });
  return { seen, errors, closed, ready, decoder };
}

const until = async (what: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('a TCP connection handed to the addon', () => {
  it('goes on from a message cut in two, and delivers the rest whole and in order', async () => {
    const { client, peer } = await connected();
    const got = handOverOnFirstData(client);
    const second = ping(2n);
    peer.write(Buffer.concat([ping(1n), second.subarray(0, 5)]));
    const native = await got.ready;
    expect(native.address).toEqual({ ip: 0x7f000001, port: client.remotePort });
    expect(got.seen).toEqual([{ type: MessageType.Ping, nonce: 1n }]);
    // The cut message went to the addon: the decoder only ever sees whole messages now.
    expect(got.decoder.buffered).toBe(0);
    peer.write(Buffer.concat([second.subarray(5), ping(3n), ping(4n)]));
    await until(() => got.seen.length === 4);
    expect(got.seen.map((m) => m.type === MessageType.Ping && m.nonce)).toEqual([1n, 2n, 3n, 4n]);
    expect(got.errors).toEqual([]);
  });

  it('writes whole messages; past the queue bound frames are dropped, never cut', async () => {
    const { client, peer } = await connected();
    const bound = 64 * 1024;
    const got = handOverOnFirstData(client, bound);
    peer.write(ping(1n));
    const native = await got.ready;
    expect(native.stream.write(ping(9n))).toBe(true);
    // The peer reads nothing until the kernel's buffers and then our queue are full.
    peer.pause();
    const frame = Buffer.alloc(1500, 0xab);
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 40_000 && refused === 0; i++) {
      const n = sendFramesToStream(native.stream, [frame, frame], bound);
      accepted += n;
      refused += 2 - n;
    }
    expect(refused).toBeGreaterThan(0);
    expect(native.stream.queued()).toBeLessThanOrEqual(bound);
    // A message larger than what is left of the bound is refused whole.
    expect(native.stream.write(Buffer.alloc(bound))).toBe(false);
    const decoder = new StreamDecoder();
    const received: Message[] = [];
    peer.on('data', (chunk: Buffer) => received.push(...decoder.push(chunk)));
    peer.resume();
    await until(() => received.length === accepted + 1, 20_000);
    expect(received[0]).toEqual({ type: MessageType.Ping, nonce: 9n });
    expect(received.slice(1).every((m) => m.type === MessageType.Data && m.frame.equals(frame))).toBe(true);
    expect(decoder.buffered).toBe(0);
  });

  it('hands garbage on to the decoder, which reports it', async () => {
    const { client, peer } = await connected();
    const got = handOverOnFirstData(client);
    peer.write(ping(1n));
    await got.ready;
    peer.write(Buffer.from([0x63, 0, 0, 4, 1, 2, 3, 4]));
    await until(() => got.errors.length > 0);
    expect(got.errors[0]).toBeInstanceOf(ProtocolError);
    expect(got.errors[0]!.message).toMatch(/unknown message type 99/);
  });

  it('reports the end of the connection once', async () => {
    const { client, peer } = await connected();
    const got = handOverOnFirstData(client);
    peer.write(ping(1n));
    await got.ready;
    peer.end(ping(2n));
    await until(() => got.closed.length > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(got.closed).toEqual(['connection closed by the peer']);
    expect(got.seen).toHaveLength(2);
  });

  it('is refused while Node still holds bytes to send, whose order the addon could not keep', async () => {
    const { client } = await connected();
    client.cork();
    client.write(ping(1n));
    expect(client.writableLength).toBeGreaterThan(0);
    expect(handOver(client, new StreamDecoder(), 1 << 20, () => {}, () => {})).toBeUndefined();
  });

  it('is refused for an IPv6 peer (the fast path keys peers by IPv4)', async (ctx) => {
    const v6 = await connected('::1').catch(() => undefined);
    if (v6 === undefined) return ctx.skip();
    expect(handOver(v6.client, new StreamDecoder(), 1 << 20, () => {}, () => {})).toBeUndefined();
  });
});
