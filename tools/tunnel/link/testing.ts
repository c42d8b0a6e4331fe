/** For the transports' unit tests: handlers that record what a transport reports, a bounded wait, a test CA. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { initCa, issueClient, issueServer } from '../../certs/index.js';
import { MessageType, type ProtocolError, type Message } from '../protocol.js';
import { loadTlsMaterial, type SealFailure, type TlsMaterial } from '../secure/index.js';
import type { ClientLinkHandlers, PeerLink, ReplyBudget, ServerTransportHandlers } from './types.js';

export interface ServerRecord {
  handlers: ServerTransportHandlers;
  messages: Array<{ link: PeerLink; message: Message; budget: ReplyBudget | undefined }>;
  invalid: Array<{ link: PeerLink; error: ProtocolError }>;
  closed: PeerLink[];
  dropped: SealFailure[];
  pendingDropped: Array<{ peer: string; reason: string }>;
  refused: Array<{ peer: string; reason: string }>;
}

/**
 * A record outlives the turn of the event loop, and a data frame is a view of the
 * transport's read buffer, valid only until then (TCP releases it, UDP reads into it
 * again): so the record keeps a copy, as the tunnel does when it keeps a frame.
 */
const kept = (m: Message): Message => (m.type === MessageType.Data ? { ...m, frame: Buffer.from(m.frame) } : m);

export function recordServer(): ServerRecord {
  const r: Omit<ServerRecord, 'handlers'> = { messages: [], invalid: [], closed: [], dropped: [], pendingDropped: [], refused: [] };
  const handlers: ServerTransportHandlers = {
    message: (link, message, budget) => r.messages.push({ link, message: kept(message), budget }),
    invalid: (link, error) => r.invalid.push({ link, error }),
    closed: (link) => r.closed.push(link),
    dropped: (reason) => r.dropped.push(reason),
    pendingDropped: (peer, reason) => r.pendingDropped.push({ peer, reason }),
    refused: (peer, reason) => r.refused.push({ peer, reason }),
  };
  return { ...r, handlers };
}

export interface ClientRecord {
  handlers: ClientLinkHandlers;
  messages: Message[];
  invalid: ProtocolError[];
  closed: string[];
  dropped: SealFailure[];
}

export function recordClient(): ClientRecord {
  const r: Omit<ClientRecord, 'handlers'> = { messages: [], invalid: [], closed: [], dropped: [] };
  const handlers: ClientLinkHandlers = {
    message: (m) => r.messages.push(kept(m)),
    invalid: (e) => r.invalid.push(e),
    closed: (reason) => r.closed.push(reason),
    dropped: (reason) => r.dropped.push(reason),
  };
  return { ...r, handlers };
}

/** Polls `done` every 5 ms; fails after `timeoutMs` saying what it waited for. */
export async function waitUntil(what: string, done: () => boolean, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!done()) {
    if (Date.now() - start > timeoutMs) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A minimal Ethernet frame (broadcast, EtherType IPv4) whose payload names `n`, to check order. */
export function numberedFrame(n: number): Buffer {
  const frame = Buffer.alloc(60);
  frame.fill(0xff, 0, 6);
  frame.writeUInt16BE(0x0800, 12);
  frame.writeUInt32BE(n, 14);
  return frame;
}

export function frameNumber(frame: Buffer): number {
  return frame.readUInt32BE(14);
}

/**
 * For a test file of the --tls transports: a private CA in a temporary folder (made
 * before the file's tests, removed after them) with a server certificate for `host`
 * and a client one, `alice`. Returns the material of a name, valid inside tests.
 */
export function useTestPki(host: string): (name: string) => TlsMaterial {
  let dir = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctun-test-pki-'));
    await initCa({ out: dir });
    await issueServer({ out: dir, names: [host] });
    await issueClient({ out: dir, name: 'alice' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return (name) => loadTlsMaterial({ ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
}

/** What a test registers to undo (servers, links, relays), undone after each test, last first. */
export function undoAfterEach(): Array<() => unknown> {
  const stops: Array<() => unknown> = [];
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s();
  });
  return stops;
}
