/**
 * UDP with --tls over the in-memory datagram network, its TLS control connection on
 * loopback: datagrams are sealed both ways, anything that does not open is dropped,
 * counted and never answered, and the session lives as long as its control connection.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { encode, MessageType, type Data } from '../protocol.js';
import { SEALED_MARKER } from '../secure/index.js';
import { connectClientLink } from './connect.js';
import { MemoryDatagramNetwork } from './memory-socket.js';
import { frameNumber, numberedFrame, recordClient, recordServer, undoAfterEach, useTestPki, waitUntil } from './testing.js';
import type { ServerTransportOptions } from './types.js';
import { UdpServerTransport } from './udp.js';

const HOST = '127.0.0.1';
const material = useTestPki(HOST);
const stops = undoAfterEach();

/** A TCP port free on loopback now: the control listener takes the number the datagram socket has. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, HOST, resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function setup(extra: Partial<ServerTransportOptions> = {}) {
  const network = new MemoryDatagramNetwork();
  const server = recordServer();
  const port = await freePort();
  const transport = new UdpServerTransport({ host: HOST, port, handlers: server.handlers, datagrams: network.open, tls: material('server'), ...extra });
  await transport.listen();
  stops.push(() => transport.close());
  const client = recordClient();
  const link = await connectClientLink({ host: HOST, port, transport: 'udp', handlers: client.handlers, datagrams: network.open, tls: material('alice') });
  stops.push(() => link.close());
  const raw = await network.open({ family: 4, host: '10.9.9.9' });
  stops.push(() => raw.close());
  const heardByRaw: Buffer[] = [];
  raw.onDatagram((d) => heardByRaw.push(Buffer.from(d)));
  return { network, server, transport, client, link, port, raw, heardByRaw, serverAt: `${HOST}:${port}` };
}

const ping = (nonce: bigint) => encode({ type: MessageType.Ping, nonce });
const numbers = (ms: Array<{ type: MessageType }>) => ms.map((m) => frameNumber((m as Data).frame));

describe('sealed UDP transport (in-memory datagrams, TLS on loopback)', () => {
  it('seals every datagram both ways: the server sees the certificate, frames arrive in order', async () => {
    const { server, client, link, network } = await setup();
    const onTheWire: Buffer[] = [];
    network.intercept = (d) => {
      onTheWire.push(Buffer.from(d)); // a copy: the receiver opens the datagram in place
      return d;
    };
    expect(link.identity).toBe('server');
    expect(link.send(ping(7n))).toBe(true);
    await waitUntil('the ping at the server', () => server.messages.length === 1);
    const peer = server.messages[0]!.link;
    expect(server.messages[0]!.message).toEqual({ type: MessageType.Ping, nonce: 7n });
    expect(server.messages[0]!.budget).toBeUndefined(); // authenticated: no reply budget
    expect(peer).toMatchObject({ transport: 'udp', identity: 'alice', source: '127.0.0.1' });
    const frames = Array.from({ length: 100 }, (_, i) => numberedFrame(i));
    expect(link.sendFrames(frames)).toBe(100);
    expect(peer.sendFrames(frames)).toBe(100);
    await waitUntil('100 frames each way', () => server.messages.length === 101 && client.messages.length === 100);
    expect(numbers(server.messages.slice(1).map((r) => r.message))).toEqual(frames.map((_, i) => i));
    expect(numbers(client.messages)).toEqual(frames.map((_, i) => i));
    expect(onTheWire.every((d) => d[0] === SEALED_MARKER)).toBe(true);
    expect(onTheWire.some((d) => d.includes(frames[42]!.subarray(0, 18)))).toBe(false);
  });

  it('drops tampered, replayed, unsealed and truncated datagrams, counts each by reason and answers none', async () => {
    const { server, client, link, network, raw, heardByRaw, serverAt } = await setup();
    let recorded: Buffer | undefined;
    let towardServer = 0;
    let towardClient = 0;
    const flipLastByte = (d: Buffer): Buffer => {
      const bad = Buffer.from(d);
      bad[bad.length - 1]! ^= 1;
      return bad;
    };
    network.intercept = (d, _from, to) => {
      if (to === serverAt) {
        towardServer++;
        if (towardServer === 1) recorded = Buffer.from(d);
        return towardServer === 2 ? flipLastByte(d) : d; // a fresh counter: only the tag can tell
      }
      return ++towardClient === 1 ? flipLastByte(d) : d;
    };
    link.send(ping(1n));
    link.send(ping(2n)); // tampered on its way
    await waitUntil('the first ping and the tampered one', () => server.messages.length === 1 && server.dropped.length === 1);
    raw.sendDatagrams([recorded!], serverAt); // replayed from elsewhere
    raw.sendDatagrams([ping(3n)], serverAt); // plain, not sealed
    raw.sendDatagrams([Buffer.from([SEALED_MARKER, 1, 2])], serverAt);
    await waitUntil('four drops at the server', () => server.dropped.length === 4);
    expect(server.dropped).toEqual(['bad-tag', 'replayed', 'not-sealed', 'truncated']);
    expect(server.messages).toHaveLength(1);

    const peer = server.messages[0]!.link;
    peer.send(ping(4n)); // tampered on its way
    peer.send(ping(5n));
    await waitUntil('the client heard the good one', () => client.messages.length === 1);
    expect(client.dropped).toEqual(['bad-tag']);
    expect(client.messages[0]).toEqual({ type: MessageType.Ping, nonce: 5n });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(heardByRaw).toEqual([]);
  });

  it('ends the session with its control connection, on either side', async () => {
    const { server, link, client } = await setup();
    link.send(ping(1n));
    await waitUntil('the ping', () => server.messages.length === 1);
    link.close();
    await waitUntil('the server told', () => server.closed.length === 1);
    expect(server.closed[0]).toBe(server.messages[0]!.link);
    expect(link.send(ping(2n))).toBe(false);
    expect(client.closed).toEqual([]); // its own close is not reported back to it

    const second = await setup();
    second.link.send(ping(1n));
    await waitUntil('the second ping', () => second.server.messages.length === 1);
    await second.transport.close();
    await waitUntil('the second client told', () => second.client.closed.length === 1);
    expect(second.client.closed[0]).toMatch(/closed the TLS control connection|ECONNRESET|socket hang up/);
  });

  it('closes a keyed session that never sends a sealed datagram within the hello timeout', async () => {
    const { server, client } = await setup({ helloTimeoutMs: 300 });
    await waitUntil('the gate to drop the silent session', () => server.pendingDropped.length === 1, 3000);
    expect(server.pendingDropped[0]!.reason).toBe('timeout');
    await waitUntil('the client told', () => client.closed.length === 1);
  });
});
