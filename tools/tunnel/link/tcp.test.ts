/**
 * The TCP transport on loopback: messages cut anywhere on the stream arrive whole and
 * in order, garbage closes only its own connection, a connection that never says
 * hello is closed by the gate, and writes beyond the queue bound are dropped.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CtunError, ExitCode } from '../../common/index.js';
import { encode, ErrorCode, FEATURES_NONE, HEADER_SIZE, MessageType, PROTOCOL_VERSION, TunnelMode, type Data } from '../protocol.js';
import { connectClientLink } from './connect.js';
import { TcpServerTransport } from './tcp.js';
import { frameNumber, numberedFrame, recordClient, recordServer, waitUntil } from './testing.js';
import type { ServerTransportOptions } from './types.js';

const HOST = '127.0.0.1';
const stops: Array<() => unknown> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function listen(extra: Partial<ServerTransportOptions> = {}) {
  const server = recordServer();
  const transport = new TcpServerTransport({ host: HOST, port: 0, handlers: server.handlers, ...extra });
  const { port } = await transport.listen();
  stops.push(() => transport.close());
  return { server, transport, port };
}

async function connect(port: number, maxQueueBytes?: number) {
  const client = recordClient();
  const link = await connectClientLink({ host: HOST, port, transport: 'tcp', handlers: client.handlers, maxQueueBytes });
  stops.push(() => link.close());
  return { client, link };
}

function rawConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port }, () => resolve(s));
    s.once('error', reject);
    stops.push(() => s.destroy());
  });
}

const hello = encode({ type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Local, flags: FEATURES_NONE, mtu: 1400, sessionId: Buffer.alloc(16, 1), destination: undefined });
const ping = (nonce: bigint) => encode({ type: MessageType.Ping, nonce });

describe('TCP transport (loopback)', () => {
  it('reassembles messages cut at every byte and hands them on in order', async () => {
    const { server, port } = await listen();
    const raw = await rawConnection(port);
    raw.setNoDelay(true);
    const stream = Buffer.concat([hello, ping(1n), encode({ type: MessageType.Data, frame: numberedFrame(5) })]);
    for (let i = 0; i < stream.length; i++) {
      raw.write(stream.subarray(i, i + 1));
      if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await waitUntil('three messages', () => server.messages.length === 3);
    expect(server.messages.map((r) => r.message.type)).toEqual([MessageType.Hello, MessageType.Ping, MessageType.Data]);
    expect(frameNumber((server.messages[2]!.message as Data).frame)).toBe(5);
    expect(server.messages[0]!.budget).toBeUndefined();
    expect(server.messages[0]!.link).toMatchObject({ transport: 'tcp', source: HOST });
  });

  it('carries frames in order both ways between a client and the server', async () => {
    const { server, port } = await listen();
    const { client, link } = await connect(port);
    expect(link.send(hello)).toBe(true);
    await waitUntil('the hello', () => server.messages.length === 1);
    const peer = server.messages[0]!.link;
    const frames = Array.from({ length: 300 }, (_, i) => numberedFrame(i));
    expect(link.sendFrames(frames)).toBe(300);
    expect(peer.sendFrames(frames)).toBe(300);
    await waitUntil('300 frames each way', () => server.messages.length === 301 && client.messages.length === 300);
    const numbers = (ms: Array<{ type: MessageType }>) => ms.map((m) => frameNumber((m as Data).frame));
    expect(numbers(server.messages.slice(1).map((r) => r.message))).toEqual(frames.map((_, i) => i));
    expect(numbers(client.messages)).toEqual(frames.map((_, i) => i));
  });

  it('closes a connection that sends garbage, tells the handler once, and keeps serving the others', async () => {
    const { server, port } = await listen({ helloTimeoutMs: 60_000 }); // the close must come from the garbage, not the hello gate
    const { link } = await connect(port);
    link.send(hello);
    await waitUntil('the good hello', () => server.messages.length === 1);
    const raw = await rawConnection(port);
    const closed = new Promise<boolean>((resolve) => raw.on('close', () => resolve(true)));
    raw.on('error', () => {});
    raw.on('data', () => {});
    raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve(false), 3000))])).toBe(true);
    await waitUntil('the invalid report and the close', () => server.invalid.length === 1 && server.closed.length === 1);
    expect(ErrorCode[server.invalid[0]!.error.code]).toBe('TooLarge'); // 'GET ' read as a header claims a message far over the bound
    expect(server.closed[0]).toBe(server.invalid[0]!.link);
    expect(link.send(ping(9n))).toBe(true);
    await waitUntil('the good client still heard', () => server.messages.length === 2);
  });

  it('closes a connection that does not say hello in time, and not one that did', async () => {
    const { server, port } = await listen({ helloTimeoutMs: 300 });
    const { link, client } = await connect(port);
    link.send(hello);
    const raw = await rawConnection(port);
    const silentPeer = `${HOST}:${raw.localPort}`;
    raw.on('error', () => {});
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    await closed;
    expect(server.pendingDropped).toEqual([{ peer: silentPeer, reason: 'timeout' }]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(client.closed).toEqual([]);
    expect(link.send(ping(1n))).toBe(true);
    await waitUntil('the client that said hello still heard', () => server.messages.length === 2);
  });

  it('accepts only the frames that fit the queue bound and drops the rest', async () => {
    const { port } = await listen();
    const frame = Buffer.alloc(1400, 1);
    const maxQueueBytes = 3 * (1400 + HEADER_SIZE);
    const { link } = await connect(port, maxQueueBytes);
    expect(link.sendFrames(Array.from({ length: 10 }, () => frame))).toBe(3);
    expect(link.send(Buffer.alloc(4 * (1400 + HEADER_SIZE)))).toBe(false);
  });

  it('reports the close to the other side, with the reason on the client', async () => {
    const { server, transport, port } = await listen();
    const { client, link } = await connect(port);
    link.send(hello);
    await waitUntil('the hello', () => server.messages.length === 1);
    await transport.close();
    await waitUntil('the client told', () => client.closed.length === 1);
    expect(client.closed[0]).toBe('connection closed by the server');
    expect(link.sendFrames([numberedFrame(1)])).toBe(0);
  });

  it('turns a port in use into ADDRESS_IN_USE, exit code 3', async () => {
    const { port } = await listen();
    const error = await new TcpServerTransport({ host: HOST, port, handlers: recordServer().handlers }).listen().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CtunError);
    expect(error).toMatchObject({ code: 'ADDRESS_IN_USE', exitCode: ExitCode.AddressInUse });
  });
});
