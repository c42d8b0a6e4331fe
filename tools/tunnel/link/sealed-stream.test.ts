/**
 * TCP with --tls and the switch to sealed records at the welcome (PROTOCOL.md "Sealed
 * stream"), with real sockets on loopback and a relay between the ends that records
 * (and, when told, alters) the bytes: after the welcome both directions are sealed
 * records, not TLS and not plaintext; messages and frames arrive whole and in order; a
 * record altered on the way closes the connection and is counted by reason; without
 * the offer the connection stays TLS.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { encode, FEATURE_SEALED_STREAM, FEATURES_NONE, MessageType, PROTOCOL_VERSION, TunnelMode, type Data, type Message } from '../protocol.js';
import { SEALED_MARKER } from '../secure/index.js';
import { connectClientLink } from './connect.js';
import { TcpServerTransport } from './tcp.js';
import type { PeerLink } from './types.js';
import { frameNumber, numberedFrame, recordClient, recordServer, undoAfterEach, useTestPki, waitUntil } from './testing.js';

const HOST = '127.0.0.1';
const material = useTestPki(HOST);
const stops = undoAfterEach();

/** A TCP relay on loopback to `port`: records each direction's bytes; `alter` may change a chunk toward the server. */
async function relayTo(port: number) {
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];
  const relay = { toServer, toClient, alter: undefined as ((chunk: Buffer) => Buffer) | undefined, port: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(port, HOST);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.on('data', (chunk: Buffer) => {
      toServer.push(Buffer.from(chunk));
      outbound.write(relay.alter?.(chunk) ?? chunk);
    });
    outbound.on('data', (chunk: Buffer) => {
      toClient.push(Buffer.from(chunk));
      inbound.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  relay.port = (server.address() as net.AddressInfo).port;
  stops.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return relay;
}

const hello = (flags: number): Buffer =>
  encode({ type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Local, flags, mtu: 1500, sessionId: Buffer.alloc(16, 7), destination: undefined });
const welcome = (flags: number): Message => ({
  type: MessageType.Welcome,
  version: PROTOCOL_VERSION,
  resumed: false,
  mtu: 1500,
  sessionId: Buffer.alloc(16, 7),
  serverAddress: '10.200.0.1',
  prefix: 24,
  keepaliveMs: 1000,
  flags,
  resumeToken: Buffer.alloc(16, 9),
});
const ping = (nonce: bigint) => encode({ type: MessageType.Ping, nonce });
const numbers = (ms: Message[]) => ms.map((m) => frameNumber((m as Data).frame));

/** Server, relay and client; the hello and welcome as the tunnel exchanges them (the server's answer is the test's). */
async function setup(sealedStream: boolean, serverKnowsSealedStream = true, inWelcomeTurn?: (peer: PeerLink) => void) {
  const server = recordServer();
  const transport = new TcpServerTransport({ host: HOST, port: 0, handlers: server.handlers, tls: material('server') });
  const { port } = await transport.listen();
  stops.push(() => transport.close());
  const relay = await relayTo(port);
  const client = recordClient();
  const link = await connectClientLink({ host: HOST, port: relay.port, transport: 'tcp', handlers: client.handlers, tls: material('alice'), sealedStream });
  stops.push(() => link.close());
  link.send(hello(link.offers ?? FEATURES_NONE));
  await waitUntil('the hello at the server', () => server.messages.length === 1);
  // The client sends nothing more over TLS: what follows toward the server is records.
  const tlsToServer = bytesOf(relay.toServer);
  const peer = server.messages[0]!.link;
  // A server of before the sealed stream accepts no flag (it masks with FEATURES_NONE).
  const accepted = serverKnowsSealedStream ? (peer.features ?? FEATURES_NONE) : FEATURES_NONE;
  const flags = (server.messages[0]!.message as { flags: number }).flags & accepted;
  peer.send(encode(welcome(flags)));
  const switched = peer.welcomed?.(flags) ?? false;
  inWelcomeTurn?.(peer);
  await waitUntil('the welcome at the client', () => client.messages.length >= 1);
  // And the server nothing before the client's first record has reached it.
  const tlsToClient = bytesOf(relay.toClient);
  return { server, client, link, peer, relay, switched, flags, tlsToServer, tlsToClient };
}

/** The bytes seen after the first `skip` bytes of a direction. */
const after = (chunks: Buffer[], skip: number): Buffer => Buffer.concat(chunks).subarray(skip);
const bytesOf = (chunks: Buffer[]): number => chunks.reduce((n, c) => n + c.length, 0);

/** The bytes after the TLS records at the start of `bytes` (content types 20-23, version 3.x). */
function afterTlsRecords(bytes: Buffer): Buffer {
  let at = 0;
  while (bytes.length - at >= 5 && bytes[at]! >= 0x14 && bytes[at]! <= 0x17 && bytes[at + 1] === 0x03) at += 5 + bytes.readUInt16BE(at + 3);
  return bytes.subarray(at);
}

/** Walks sealed records (u16 length | sealed datagram): their count, or undefined where the bytes are not records. */
function sealedRecords(bytes: Buffer): number | undefined {
  let at = 0;
  let n = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 2) return undefined;
    const len = bytes.readUInt16BE(at);
    if (bytes[at + 2] !== SEALED_MARKER || at + 2 + len > bytes.length) return undefined;
    at += 2 + len;
    n++;
  }
  return n;
}

describe('TCP --tls: sealed records after the welcome (real sockets on loopback)', () => {
  it('switches both ends at the welcome: records, not TLS, both ways; messages and frames whole and in order', async () => {
    const { server, client, link, peer, relay, switched, flags, tlsToServer, tlsToClient } = await setup(true);
    expect(link.offers).toBe(FEATURE_SEALED_STREAM);
    expect(flags).toBe(FEATURE_SEALED_STREAM);
    expect(switched).toBe(true);
    expect(client.messages[0]).toMatchObject({ type: MessageType.Welcome, flags: FEATURE_SEALED_STREAM });
    expect(link.fastPath).toBeDefined(); // the addon has the connection
    expect(peer.streamEnd?.()).toBeDefined();

    expect(link.send(ping(7n))).toBe(true);
    await waitUntil('the ping at the server', () => server.messages.length === 2);
    expect(server.messages[1]!.message).toEqual({ type: MessageType.Ping, nonce: 7n });
    const frames = Array.from({ length: 500 }, (_, i) => numberedFrame(i));
    expect(link.sendFrames(frames)).toBe(500);
    expect(peer.sendFrames(frames)).toBe(500);
    expect(peer.send(ping(8n))).toBe(true);
    await waitUntil('500 frames each way', () => server.messages.length === 502 && client.messages.length === 502);
    expect(numbers(server.messages.slice(2).map((r) => r.message))).toEqual(frames.map((_, i) => i));
    expect(numbers(client.messages.slice(1, 501))).toEqual(frames.map((_, i) => i));
    expect(client.messages[501]).toEqual({ type: MessageType.Ping, nonce: 8n });

    // On the wire after the switch: sealed records only (the client's starts with its
    // empty announcing one), and not a frame's bytes in the clear.
    const c2s = after(relay.toServer, tlsToServer);
    const s2c = after(relay.toClient, tlsToClient);
    expect(sealedRecords(c2s)).toBeGreaterThan(1);
    expect(sealedRecords(s2c)).toBeGreaterThan(0);
    expect(c2s.readUInt16BE(0)).toBe(13 + 16); // the empty first record: header and tag
    expect(c2s.includes(frames[42]!.subarray(0, 18))).toBe(false);
    expect(s2c.includes(frames[42]!.subarray(0, 18))).toBe(false);
    expect(server.dropped).toEqual([]);
    expect(client.dropped).toEqual([]);
  });

  it('holds what the server sends in the welcome\'s turn until the client\'s first record, then delivers it', async () => {
    // Sent before the client can have switched: a record on the wire now would meet its TLS reader.
    const { client, relay } = await setup(true, true, (peer) => expect(peer.send(ping(9n))).toBe(true));
    await waitUntil('the held ping at the client', () => client.messages.length === 2);
    expect(client.messages[1]).toEqual({ type: MessageType.Ping, nonce: 9n });
    // Toward the client: TLS up to the welcome, then the ping as one sealed record.
    expect(sealedRecords(afterTlsRecords(Buffer.concat(relay.toClient)))).toBe(1);
    expect(client.dropped).toEqual([]);
  });

  it('closes the connection at a record altered on its way, and counts it', async () => {
    const { server, client, link, relay } = await setup(true);
    link.send(ping(1n));
    await waitUntil('the first ping', () => server.messages.length === 2);
    relay.alter = (chunk) => {
      const bad = Buffer.from(chunk);
      bad[bad.length - 1]! ^= 1; // the record's tag
      return bad;
    };
    link.send(ping(2n));
    await waitUntil('the server to drop the connection', () => server.closed.length === 1);
    expect(server.dropped).toEqual(['bad-tag']);
    expect(server.messages).toHaveLength(2); // the altered ping never arrived
    await waitUntil('the client told', () => client.closed.length === 1);
  });

  it('stays TLS when the client does not offer (its fast path off), and the server accepts only what was offered', async () => {
    const { server, client, link, peer, relay, switched, flags } = await setup(false);
    expect(link.offers).toBe(FEATURES_NONE);
    expect(flags).toBe(FEATURES_NONE);
    expect(switched).toBe(false);
    const before = bytesOf(relay.toServer);
    expect(link.send(ping(3n))).toBe(true);
    expect(peer.send(ping(4n))).toBe(true);
    await waitUntil('the pings', () => server.messages.length === 2 && client.messages.length === 2);
    expect(after(relay.toServer, before)[0]).toBe(0x17); // a TLS application-data record
    expect(link.fastPath).toBeUndefined();
  });

  it('stays TLS when the server does not accept the offer (a server of before the sealed stream)', async () => {
    const { server, client, link, peer, relay, switched, flags } = await setup(true, false);
    expect(link.offers).toBe(FEATURE_SEALED_STREAM);
    expect(flags).toBe(FEATURES_NONE);
    expect(switched).toBe(false);
    const before = { c2s: bytesOf(relay.toServer), s2c: bytesOf(relay.toClient) };
    expect(link.send(ping(5n))).toBe(true);
    expect(peer.send(ping(6n))).toBe(true);
    await waitUntil('the pings', () => server.messages.length === 2 && client.messages.length === 2);
    expect(client.messages[1]).toEqual({ type: MessageType.Ping, nonce: 6n });
    expect(after(relay.toServer, before.c2s)[0]).toBe(0x17);
    expect(after(relay.toClient, before.s2c)[0]).toBe(0x17);
    expect(link.fastPath).toBeUndefined();
  });
});
