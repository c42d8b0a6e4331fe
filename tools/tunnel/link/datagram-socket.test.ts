/**
 * The three datagram sockets keep one contract: the addon's batch socket and
 * node:dgram on loopback, the in-memory twin on its own network. What the transports
 * rely on: senders named by a key that turns back into the address, a connected
 * socket needing no peer, frames sent as Data messages, buffers reusable at once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeDatagram, encode, MessageType, type Data } from '../protocol.js';
import { AddonDatagramSocket } from './addon-socket.js';
import { BatchUdpSocket } from './batch-udp.js';
import type { DatagramSocket, DatagramSocketFactory, PeerKey } from './datagram-socket.js';
import { NodeDatagramSocket } from './dgram-socket.js';
import { MemoryDatagramNetwork } from './memory-socket.js';
import { numberedFrame, waitUntil } from './testing.js';

const HOST = '127.0.0.1';
const ping = (nonce: bigint) => encode({ type: MessageType.Ping, nonce });
const stops: Array<() => unknown> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const implementations: Array<[string, () => DatagramSocketFactory, boolean]> = [
  ['in-memory', () => new MemoryDatagramNetwork().open, true],
  ['node:dgram', () => (o) => NodeDatagramSocket.open({ ...o, host: o.host ?? '0.0.0.0' }), true],
  ['addon batch socket', () => (o) => AddonDatagramSocket.open({ ...o, host: o.host ?? '0.0.0.0' }), BatchUdpSocket.available()],
];

describe.each(implementations)('%s datagram socket', (_name, makeFactory, available) => {
  async function pair() {
    const open = makeFactory();
    const server = await open({ family: 4, host: HOST, port: 0 });
    stops.push(() => server.close());
    const client = await open({ family: 4, connect: { address: HOST, port: server.port } });
    stops.push(() => client.close());
    const heard: Array<{ datagram: Buffer; from: PeerKey }> = [];
    server.onDatagram((datagram, from) => heard.push({ datagram: Buffer.from(datagram), from }));
    const answers: Buffer[] = [];
    client.onDatagram((datagram) => answers.push(Buffer.from(datagram)));
    return { server, client, heard, answers };
  }

  it.skipIf(!available)('names the sender by a key that turns back into its address, and answers it there', async () => {
    const { server, client, heard, answers } = await pair();
    expect(server.port).toBeGreaterThan(0);
    const reused = ping(1n);
    expect(client.sendDatagrams([reused, ping(2n)])).toBe(2);
    ping(9n).copy(reused); // the socket owns what it sent once send returned
    await waitUntil('two datagrams', () => heard.length === 2);
    expect(heard.map((h) => h.datagram)).toEqual([ping(1n), ping(2n)]);
    expect(heard[0]!.from).toBe(heard[1]!.from);
    const { address, port } = server.peerAddress(heard[0]!.from);
    expect(address).toBe(HOST);
    expect(port).toBe(client.port);
    expect(server.sendDatagrams([ping(3n)], heard[0]!.from)).toBe(1);
    await waitUntil('the answer', () => answers.length === 1);
    expect(answers[0]).toEqual(ping(3n));
  });

  it.skipIf(!available)('hands garbage on or counts it as filtered, never loses it silently', async () => {
    const { server, client, heard } = await pair();
    client.sendDatagrams([Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
    await waitUntil('the garbage heard or filtered', () => heard.length + server.filtered === 1);
  });

  it.skipIf(!available)('sends each frame as one Data message, in order', async () => {
    const { client, heard } = await pair();
    const frames = Array.from({ length: 50 }, (_, i) => numberedFrame(i));
    expect(client.sendFrames(frames)).toBe(50);
    await waitUntil('50 frames', () => heard.length === 50);
    const decoded = heard.map((h) => decodeDatagram(h.datagram));
    expect(decoded.every((ms) => ms.length === 1 && ms[0]!.type === MessageType.Data)).toBe(true);
    expect(decoded.map((ms) => (ms[0] as Data).frame)).toEqual(frames);
  });

  it.skipIf(!available)('sends nothing once closed, and close twice is harmless', async () => {
    const { client } = await pair();
    await client.close();
    await client.close();
    expect(client.sendDatagrams([ping(1n)])).toBe(0);
  });

  it.skipIf(!available)('refuses a port in use with EADDRINUSE', async () => {
    const open = makeFactory();
    const first: DatagramSocket = await open({ family: 4, host: HOST, port: 0 });
    stops.push(() => first.close());
    await expect(open({ family: 4, host: HOST, port: first.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
