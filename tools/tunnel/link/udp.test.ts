/**
 * The UDP transport over the in-memory datagram network: what a datagram becomes on
 * each side, what a stranger leaves behind, and what the bounds drop.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CtunError, ExitCode } from '../../common/index.js';
import { encode, ErrorCode, MessageType, type Data } from '../protocol.js';
import { connectClientLink } from './connect.js';
import { anyAddress, type DatagramSocketFactory } from './datagram-socket.js';
import { NodeDatagramSocket } from './dgram-socket.js';
import { MemoryDatagramNetwork } from './memory-socket.js';
import { frameNumber, numberedFrame, recordClient, recordServer, waitUntil } from './testing.js';
import type { ClientLink } from './types.js';
import { UdpServerTransport } from './udp.js';

const SERVER = '10.0.0.1';
const stops: Array<() => unknown> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function setup(extra: { maxQueueDatagrams?: number } = {}) {
  const network = new MemoryDatagramNetwork({ localAddress: '10.0.0.2' });
  const server = recordServer();
  const transport = new UdpServerTransport({ host: SERVER, port: 1723, handlers: server.handlers, datagrams: network.open, ...extra });
  const bound = await transport.listen();
  stops.push(() => transport.close());
  const client = recordClient();
  const link: ClientLink = await connectClientLink({ host: SERVER, port: bound.port, transport: 'udp', handlers: client.handlers, datagrams: network.open, ...extra });
  stops.push(() => link.close());
  return { network, server, transport, bound, client, link };
}

const ping = (nonce: bigint) => encode({ type: MessageType.Ping, nonce });

describe('UDP transport (in-memory datagrams)', () => {
  it('carries control messages with a reply budget of the datagram, and frames in order both ways', async () => {
    const { server, client, link, bound } = await setup();
    expect(bound).toEqual({ address: SERVER, port: 1723 });
    expect(link.send(ping(7n))).toBe(true);
    await waitUntil('the ping at the server', () => server.messages.length === 1);
    const [first] = server.messages;
    expect(first!.message).toEqual({ type: MessageType.Ping, nonce: 7n });
    expect(first!.budget).toEqual({ bytes: ping(7n).length, replies: 1 });
    expect(first!.link).toMatchObject({ transport: 'udp', source: '10.0.0.2' });
    expect(first!.link.id).toMatch(/^10\.0\.0\.2:\d+$/);

    const frames = Array.from({ length: 200 }, (_, i) => numberedFrame(i));
    expect(link.sendFrames(frames)).toBe(200);
    expect(first!.link.sendFrames(frames)).toBe(200);
    await waitUntil('200 frames each way', () => server.messages.length === 201 && client.messages.length === 200);
    const order = (ms: Array<{ type: MessageType }>) => ms.map((m) => frameNumber((m as Data).frame));
    expect(order(server.messages.slice(1).map((r) => r.message))).toEqual(frames.map((_, i) => i));
    expect(order(client.messages)).toEqual(frames.map((_, i) => i));
  });

  it('acts on a datagram of several messages as a whole, and on none of a datagram with garbage in it', async () => {
    const { network, server } = await setup();
    const raw = await network.open({ family: 4, host: '10.0.0.9' });
    stops.push(() => raw.close());
    raw.sendDatagrams([Buffer.concat([ping(1n), ping(2n)])], `${SERVER}:1723`);
    raw.sendDatagrams([Buffer.concat([ping(3n), Buffer.from([0xde, 0xad, 0xbe])])], `${SERVER}:1723`);
    raw.sendDatagrams([Buffer.from('GET / HTTP/1.1\r\n\r\n')], `${SERVER}:1723`);
    await waitUntil('two messages and two invalid datagrams', () => server.messages.length === 2 && server.invalid.length === 2);
    expect(server.messages.map((r) => (r.message as { nonce: bigint }).nonce)).toEqual([1n, 2n]);
    expect(server.invalid.every((r) => r.link.source === '10.0.0.9')).toBe(true);
    expect(server.invalid.map((r) => [ErrorCode[r.error.code], r.error.message])).toEqual([
      ['Malformed', 'datagram ends inside a message header at byte 12'],
      ['Malformed', 'message at byte 0 claims 21536 bytes, datagram has 14'],
    ]);
  });

  it('keeps no peer until the server retains it, the same link after, and none once it is closed', async () => {
    const { server, transport, link } = await setup();
    link.send(ping(1n));
    await waitUntil('the first ping', () => server.messages.length === 1);
    expect(transport.keptPeers()).toBe(0);
    server.messages[0]!.link.retain?.();
    expect(transport.keptPeers()).toBe(1);
    link.send(ping(2n));
    await waitUntil('the second ping', () => server.messages.length === 2);
    expect(server.messages[1]!.link).toBe(server.messages[0]!.link);
    server.messages[0]!.link.close();
    expect(transport.keptPeers()).toBe(0);
  });

  it('drops what does not fit the send queue and counts it by what send returns', async () => {
    const { link } = await setup({ maxQueueDatagrams: 8 });
    expect(link.sendFrames(Array.from({ length: 20 }, (_, i) => numberedFrame(i)))).toBe(8);
    expect(link.send(ping(1n))).toBe(false);
  });

  it('frees its socket on close; a closed client sends nothing', async () => {
    const { network, transport, link, server } = await setup();
    expect(network.size).toBe(2);
    link.close();
    expect(link.send(ping(1n))).toBe(false);
    expect(link.sendFrames([numberedFrame(1)])).toBe(0);
    await transport.close();
    expect(network.size).toBe(0);
    expect(server.messages).toEqual([]);
  });

  it('turns a port in use into ADDRESS_IN_USE, exit code 3, with a hint', async () => {
    const { network } = await setup();
    const second = new UdpServerTransport({ host: SERVER, port: 1723, handlers: recordServer().handlers, datagrams: network.open });
    const error = await second.listen().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CtunError);
    expect(error).toMatchObject({ code: 'ADDRESS_IN_USE', exitCode: ExitCode.AddressInUse, message: `UDP port 1723 on ${SERVER} is already in use` });
    expect((error as CtunError).hint).toMatch(/--port/);
  });

  it('runs the same over node:dgram on loopback (the path without the addon)', async () => {
    const server = recordServer();
    const viaDgram: DatagramSocketFactory = (o) => NodeDatagramSocket.open({ ...o, host: o.host ?? anyAddress(o.family) });
    const transport = new UdpServerTransport({ host: '127.0.0.1', port: 0, handlers: server.handlers, datagrams: viaDgram });
    const { port } = await transport.listen();
    stops.push(() => transport.close());
    const client = recordClient();
    const link = await connectClientLink({ host: '127.0.0.1', port, transport: 'udp', handlers: client.handlers, datagrams: viaDgram });
    stops.push(() => link.close());
    link.send(ping(1n));
    await waitUntil('the ping', () => server.messages.length === 1);
    const frames = Array.from({ length: 50 }, (_, i) => numberedFrame(i));
    expect(server.messages[0]!.link.sendFrames(frames)).toBe(50);
    await waitUntil('50 frames', () => client.messages.length === 50);
    expect(client.messages.map((m) => frameNumber((m as Data).frame))).toEqual(frames.map((_, i) => i));
  });
});
