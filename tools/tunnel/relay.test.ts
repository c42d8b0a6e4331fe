/**
 * The server facing strangers and rogue clients (issue 13), in one process: in-memory
 * TAP twins, a recording twin of iptables/ip, real sockets on loopback for the
 * attacker (127.0.0.2 and .3 play other addresses). Replies never outgrow the
 * datagram that asked, strangers leave no sessions beyond the caps, resumes are bound
 * to their creator, separate mode forwards a session only toward its destination.
 */
import dgram from 'node:dgram';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initCa, issueClient, issueServer, revoke } from '../certs/index.js';
import { createMemoryLogger } from '../common/index.js';
import { TunnelClient, versionHint } from './client.js';
import { createMemoryDevicePair, type MemoryDevice } from './device.js';
import { decodeDatagram, echoOfSession, encode, ErrorCode, HEADER_SIZE, MessageType, TunnelMode, type ErrorMessage, type Message } from './protocol.js';
import { loadTlsMaterial } from './secure/index.js';
import { stableMac, TunnelServer, type ServerOptions } from './server.js';
import { connectClientLink } from './link/index.js';
import { tempDir } from '../lab/testing.js';
import { recordingNet } from './testing.js';

const stops: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

let nextPort = 25000 + (process.pid % 2000) * 4;

async function startServer(extra: Partial<ServerOptions> & { routes?: Record<string, string>; leftovers?: string } = {}) {
  const [simTap, simKernel] = createMemoryDevicePair(['ctun0', 'kernel']);
  const rec = recordingNet(extra.routes, extra.leftovers);
  const log = createMemoryLogger();
  const server = new TunnelServer({ listen: '127.0.0.1', port: nextPort++, transport: 'udp', deadAfterMs: 1500, logger: log, openDevice: () => simTap, ...extra, net: rec.net });
  const bound = await server.start();
  stops.push(() => server.stop());
  return { server, port: bound.port, kernel: simKernel, log, ...rec };
}

async function startClient(port: number, o: { dest?: string; transport?: 'udp' | 'tcp' } = {}) {
  const [pcTap, pcKernel] = createMemoryDevicePair(['dstap0', 'pc-kernel']);
  const rec = recordingNet();
  const log = createMemoryLogger();
  const client = new TunnelClient({ host: '127.0.0.1', port, transport: o.transport ?? 'udp', dest: o.dest, logger: log, openDevice: () => pcTap, checkTap: false, net: rec.net, keepaliveMs: 200, deadAfterMs: 1000, backoff: { initialMs: 50, maxMs: 200 } });
  await client.start();
  stops.push(() => client.stop());
  await client.waitConnected(3000);
  return { client, kernel: pcKernel, log, calls: rec.calls };
}

/** Polls `done` every 20 ms; fails saying what it awaited after `timeoutMs`. */
async function waitUntil(done: () => boolean, timeoutMs: number, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A stranger's UDP socket on `address`: sends datagrams and collects what comes back. */
async function stranger(address = '127.0.0.1') {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, address, r));
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  stops.push(() => new Promise<void>((r) => socket.close(() => r())));
  return {
    got,
    /** Sends one datagram and returns what came back within `ms`. */
    async ask(datagram: Buffer, port: number, ms = 150): Promise<Buffer[]> {
      const from = got.length;
      socket.send(datagram, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, ms));
      return got.slice(from);
    },
  };
}

const SID = Buffer.from('5e551011d0000000000000000000beef', 'hex');

function hello(o: { version?: number; dest?: string; sessionId?: Buffer; token?: Buffer; padded?: boolean } = {}): Buffer {
  const m = encode({ type: MessageType.Hello, version: o.version ?? 2, mode: o.dest ? TunnelMode.Separate : TunnelMode.Local, flags: 0, mtu: 1400, sessionId: o.sessionId ?? SID, destination: o.dest, resumeToken: o.token });
  if (o.padded !== false || (o.version ?? 2) === 1) return m;
  const unpadded = Buffer.from(m.subarray(0, HEADER_SIZE + 64));
  unpadded.writeUInt16BE(64, 2);
  return unpadded;
}

function only(replies: Buffer[]): Message {
  expect(replies).toHaveLength(1);
  const [m] = decodeDatagram(replies[0]!);
  return m!;
}

/** An Ethernet frame carrying an IPv4 header toward `dst` (enough for the separate-mode check). */
function ipv4Frame(dstMac: string, srcMac: string, dst: string): Buffer {
  const ip = Buffer.alloc(28);
  ip[0] = 0x45;
  ip.writeUInt16BE(28, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from([192, 168, 100, 100]).copy(ip, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ip, 16);
  return Buffer.concat([Buffer.from(dstMac.replace(/:/g, ''), 'hex'), Buffer.from(srcMac.replace(/:/g, ''), 'hex'), Buffer.from([0x08, 0x00]), ip, Buffer.alloc(18)]);
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('no reflection, no amplification (plain UDP)', () => {
  it('answers each kind of hello and stray message with at most one reply, never larger than the datagram', async () => {
    const { port } = await startServer();
    const evil = await stranger();
    const oldVersion = Buffer.from([MessageType.Hello, 0, 0, 5, ...Buffer.from('CTUN'), 9]); // the 9-byte probe of the review
    const pings = Buffer.concat([1n, 2n, 3n].map((nonce) => encode({ type: MessageType.Ping, nonce })));
    const kinds: Record<string, { send: Buffer; code?: ErrorCode; type?: MessageType }> = {
      'other version, 9 bytes': { send: oldVersion, code: ErrorCode.VersionMismatch },
      'v1 hello with --dest to a local server': { send: hello({ version: 1, dest: '10.1.2.3', sessionId: Buffer.alloc(16, 1) }), code: ErrorCode.ModeMismatch },
      'v2 hello with --dest, unpadded': { send: hello({ dest: '10.1.2.3', padded: false, sessionId: Buffer.alloc(16, 2) }), code: ErrorCode.ModeMismatch },
      'three pings from a stranger in one datagram': { send: pings, code: ErrorCode.NoSession },
      'data from a stranger': { send: encode({ type: MessageType.Data, frame: Buffer.alloc(14, 0xff) }), code: ErrorCode.NoSession },
      // Room for three whole answers, still one reply.
      'three frames from a stranger in one datagram': { send: Buffer.concat([1, 2, 3].map((i) => encode({ type: MessageType.Data, frame: Buffer.alloc(100, i) }))), code: ErrorCode.NoSession },
      'valid v1 hello': { send: hello({ version: 1, sessionId: Buffer.alloc(16, 3) }), type: MessageType.Welcome },
      'valid v2 hello, unpadded': { send: hello({ padded: false, sessionId: Buffer.alloc(16, 4) }), type: MessageType.Welcome },
    };
    const ratios: Record<string, number> = {};
    for (const [kind, k] of Object.entries(kinds)) {
      const replies = await evil.ask(k.send, port);
      const m = only(replies);
      if (k.code !== undefined) expect(m, kind).toMatchObject({ type: MessageType.Error, code: k.code });
      else expect(m.type, kind).toBe(k.type);
      ratios[kind] = replies[0]!.length / k.send.length;
    }
    for (const [kind, ratio] of Object.entries(ratios)) expect(ratio, kind).toBeLessThanOrEqual(1);
    // The hello of another version still says what to do, in the bytes it has.
    const padded = Buffer.concat([oldVersion.subarray(0, 4), Buffer.from('CTUN'), Buffer.from([9]), Buffer.alloc(150)]);
    padded.writeUInt16BE(155, 2);
    expect((only(await evil.ask(padded, port)) as ErrorMessage).reason).toBe('v9 unsupported, server speaks v1-2: upgrade the server');
  });

  it('rate-limits replies per source: a burst of 100 hellos gets at most a burst of answers', async () => {
    const { port, server } = await startServer();
    const evil = await stranger();
    const probe = Buffer.from([MessageType.Hello, 0, 0, 5, ...Buffer.from('CTUN'), 9]);
    for (let i = 0; i < 100; i++) await evil.ask(probe, port, 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(evil.got.length).toBeGreaterThan(0);
    expect(evil.got.length).toBeLessThanOrEqual(11);
    expect(server.stats().security.repliesSuppressed + server.stats().security.hellosRefused).toBeGreaterThanOrEqual(89);
  });

  it('keeps nothing for a stranger: 600 pings, data and garbage from 30 ports leave no peer and no session', async () => {
    const { port, server } = await startServer();
    const strangers = await Promise.all(Array.from({ length: 30 }, () => stranger()));
    for (let i = 0; i < 600; i++) {
      const d = [encode({ type: MessageType.Ping, nonce: BigInt(i) }), encode({ type: MessageType.Data, frame: Buffer.alloc(60, i) }), Buffer.alloc(33, i)][i % 3]!;
      await strangers[i % 30]!.ask(d, port, 0);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(server.stats()).toMatchObject({ peers: 0, sessions: 0 });
    const good = await startClient(port);
    expect(good.client.connected).toBe(true);
    expect(server.stats()).toMatchObject({ peers: 1, sessions: 1 });
  });
});

describe('state before authentication', () => {
  it('caps sessions per source address, and a full server makes room by dropping hellos never confirmed', async () => {
    const { port, server } = await startServer({ maxSessionsPerSource: 3, maxSessions: 4 });
    const evil = await stranger('127.0.0.2');
    const answers: Message[] = [];
    for (let i = 0; i < 6; i++) answers.push(only(await evil.ask(hello({ sessionId: Buffer.alloc(16, 10 + i) }), port, 60)));
    expect(answers.filter((m) => m.type === MessageType.Welcome)).toHaveLength(3);
    const full = answers.find((m) => m.type === MessageType.Error) as ErrorMessage;
    expect(full).toMatchObject({ code: ErrorCode.ServerFull, reason: '127.0.0.2 has its maximum of 3 sessions' });
    expect(full.echo).toEqual(echoOfSession(Buffer.alloc(16, 13)));
    expect(server.sessionCount).toBe(3);
    const other = await stranger('127.0.0.3');
    expect(only(await other.ask(hello({ sessionId: Buffer.alloc(16, 30) }), port)).type).toBe(MessageType.Welcome);
    // Full now (4). A real client still gets in: an unconfirmed (spoofed) session goes.
    const good = await startClient(port);
    expect(good.client.connected).toBe(true);
    expect(server.stats().security.unconfirmedEvicted).toBe(1);
  });

  it('--max-clients: the client beyond is refused with ServerFull (echoed to it), retries, and gets in when a seat frees', async () => {
    const { port, server, log } = await startServer({ maxSessions: 2, maxSessionsPerSource: 16 });
    const first = await startClient(port);
    await startClient(port);
    const evil = await stranger('127.0.0.2');
    const refused = only(await evil.ask(hello({ sessionId: Buffer.alloc(16, 60) }), port)) as ErrorMessage;
    expect(refused).toMatchObject({ code: ErrorCode.ServerFull, reason: 'server has its maximum of 2 clients (--max-clients)' });
    expect(refused.echo).toEqual(echoOfSession(Buffer.alloc(16, 60)));
    // A real client beyond the maximum: told why, keeps trying, never counted as a session.
    const [pcTap] = createMemoryDevicePair(['dstap0', 'pc-kernel']);
    const thirdLog = createMemoryLogger();
    const third = new TunnelClient({ host: '127.0.0.1', port, transport: 'udp', logger: thirdLog, openDevice: () => pcTap, checkTap: false, net: recordingNet().net, keepaliveMs: 200, deadAfterMs: 1000, backoff: { initialMs: 50, maxMs: 200 } });
    await third.start();
    stops.push(() => third.stop());
    await waitUntil(() => thirdLog.lines.some((l) => l.event === 'reconnect-scheduled' && String(l.fields.reason).includes('server refused for now (ServerFull): server has its maximum of 2 clients')), 3000, 'the third client to be refused');
    expect(server.sessionCount).toBe(2);
    expect(log.lines.find((l) => l.event === 'client-rejected')?.fields).toMatchObject({ code: 'ServerFull' });
    await first.client.stop();
    await third.waitConnected(3000);
    expect(server.sessionCount).toBe(2);
  });

  it('--max-clients must be a whole number from 1: anything else is a usage error before anything starts', () => {
    for (const bad of [0, -1, 2.5, Number.NaN]) {
      const opened: string[] = [];
      expect(() => new TunnelServer({ maxSessions: bad, logger: createMemoryLogger(), openDevice: (n) => (opened.push(n), createMemoryDevicePair(['x', 'y'])[0]) })).toThrow(
        expect.objectContaining({ code: 'USAGE', exitCode: 1, message: `--max-clients must be a whole number from 1 to 65536, got ${bad}` }),
      );
      expect(opened).toEqual([]);
    }
  });

  it('caches route lookups: hellos naming one destination run `ip route get` once', async () => {
    const { port, calls } = await startServer({ mode: 'separate', routes: { '172.31.0.5': 'eth0' } });
    const evil = await stranger();
    for (let i = 0; i < 5; i++) await evil.ask(hello({ dest: '172.31.0.5', sessionId: Buffer.alloc(16, 40 + i) }), port, 30);
    for (let i = 0; i < 3; i++) await evil.ask(hello({ dest: '172.31.0.9', sessionId: Buffer.alloc(16, 50 + i) }), port, 30);
    expect(calls.filter((c) => c.includes('route get 172.31.0.5'))).toHaveLength(1);
    expect(calls.filter((c) => c.includes('route get 172.31.0.9'))).toHaveLength(1);
  });
});

describe('resume is bound to the session creator', () => {
  it('plain: refuses another address, and the same address without the welcome\'s token; the owner stays', async () => {
    const { port, server, log } = await startServer();
    const a = await startClient(port);
    const state = a.client as unknown as { sessionId: Buffer; resumeToken: Buffer };
    expect(state.resumeToken).toHaveLength(16);
    const elsewhere = await stranger('127.0.0.2');
    const m1 = only(await elsewhere.ask(hello({ sessionId: state.sessionId, token: state.resumeToken }), port)) as ErrorMessage;
    expect(m1).toMatchObject({ code: ErrorCode.ResumeRefused, reason: 'session belongs to another address; start a new one' });
    const sameHost = await stranger('127.0.0.1');
    const m2 = only(await sameHost.ask(hello({ sessionId: state.sessionId }), port)) as ErrorMessage;
    expect(m2).toMatchObject({ code: ErrorCode.ResumeRefused, reason: "resume without the session's token; start a new one" });
    const m3 = only(await sameHost.ask(hello({ sessionId: state.sessionId, token: Buffer.alloc(16, 7) }), port)) as ErrorMessage;
    expect(m3.code).toBe(ErrorCode.ResumeRefused);
    // A v1 hello cannot downgrade a v2 session out of its token.
    const m4 = only(await sameHost.ask(hello({ version: 1, sessionId: state.sessionId }), port)) as ErrorMessage;
    expect(m4.code).toBe(ErrorCode.ResumeRefused);
    expect(server.stats().security.resumeRefused).toBe(4);
    expect(log.lines.filter((l) => l.event === 'client-resumed')).toHaveLength(0);
    // The owner was never detached: its frames still flow.
    const atSim: Buffer[] = [];
    const sim = (server as unknown as { device: MemoryDevice }).device;
    sim.peer!.onFrames((f) => atSim.push(...f));
    a.kernel.writeFrames([ipv4Frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a', '192.168.100.1')]);
    await until(() => atSim.length === 1);
    expect(a.client.connected).toBe(true);
  });

  it('plain: the owner with its token resumes from a new port (what its reconnect does)', async () => {
    const { port, log } = await startServer();
    const a = await startClient(port);
    const state = a.client as unknown as { sessionId: Buffer; resumeToken: Buffer };
    const again = await stranger('127.0.0.1');
    expect(only(await again.ask(hello({ sessionId: state.sessionId, token: state.resumeToken }), port))).toMatchObject({ type: MessageType.Welcome, resumed: true });
    expect(log.lines.some((l) => l.event === 'client-resumed')).toBe(true);
  });

  it('a plain UDP client ignores an Error that does not echo its session (spoofed), and obeys one that does', async () => {
    const { port } = await startServer();
    const a = await startClient(port);
    const inject = (m: Message): void => (a.client as unknown as { onMessage(m: Message): void }).onMessage(m);
    inject({ type: MessageType.Error, code: ErrorCode.ModeMismatch, reason: 'spoofed' });
    inject({ type: MessageType.Error, code: ErrorCode.NotAuthorized, reason: 'spoofed', echo: Buffer.alloc(8, 1) });
    await new Promise((r) => setTimeout(r, 300));
    expect(a.client.connected).toBe(true);
    expect(a.client.unverifiedErrors).toBe(2);
    const sid = (a.client as unknown as { sessionId: Buffer }).sessionId;
    inject({ type: MessageType.Error, code: ErrorCode.ModeMismatch, reason: 'the server says so', echo: echoOfSession(sid) });
    expect(await a.client.done).toMatchObject({ code: 'REJECTED', exitCode: 5 });
  });

  it('a client whose resume is refused starts a new session instead of giving up', async () => {
    const { port, server } = await startServer();
    const a = await startClient(port);
    const state = a.client as unknown as { sessionId: Buffer; onMessage(m: Message): void };
    const before = state.sessionId;
    state.onMessage({ type: MessageType.Error, code: ErrorCode.ResumeRefused, reason: 'not yours', echo: echoOfSession(before) });
    await until(() => server.sessionCount === 2);
    expect(state.sessionId.equals(before)).toBe(false);
    await until(() => a.client.connected);
  });
});

describe('separate mode forwards a session only toward its destination', () => {
  const SERVER_MAC = stableMac('192.168.100.1');

  it('in the data path and in the kernel rules; the rule goes with the last session using it', async () => {
    const s = await startServer({ mode: 'separate', routes: { '172.31.0.5': 'eth0', '172.31.0.6': 'eth0' } });
    expect(s.calls).toContain('iptables -w -t filter -A FORWARD -i ctun0 -j DROP -m comment --comment ctun:ctun0');
    expect(s.calls.some((c) => / -A FORWARD -i ctun0 -j ACCEPT/.test(c))).toBe(false);
    const atSim: Buffer[] = [];
    s.kernel.onFrames((f) => atSim.push(...f));
    const c = await startClient(s.port, { dest: '172.31.0.5' });
    expect(s.calls).toContain('iptables -w -t filter -I FORWARD 1 -i ctun0 -d 172.31.0.5/32 -j ACCEPT -m comment --comment ctun:ctun0');
    c.kernel.writeFrames([
      ipv4Frame(SERVER_MAC, '02:00:00:00:00:0a', '172.31.0.5'), // its destination: passes
      ipv4Frame(SERVER_MAC, '02:00:00:00:00:0a', '172.31.0.6'), // another host the server routes to: dropped
      ipv4Frame(SERVER_MAC, '02:00:00:00:00:0a', '192.168.100.1'), // the server itself: passes
      ipv4Frame('02:00:00:00:00:0b', '02:00:00:00:00:0a', '192.168.100.101'), // another client: dropped
    ]);
    await until(() => atSim.length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(atSim.map((f) => f.subarray(30, 34).join('.'))).toEqual(['172.31.0.5', '192.168.100.1']);
    expect(s.server.stats().clients.dropsPolicy).toBe(2);
    await c.client.stop();
    await until(() => s.calls.includes('iptables -w -t filter -D FORWARD -i ctun0 -d 172.31.0.5/32 -j ACCEPT -m comment --comment ctun:ctun0'));
  });

  it('--allow-dest refuses a destination outside it before any route lookup', async () => {
    const s = await startServer({ mode: 'separate', allowDest: ['10.0.0.0/8'], routes: { '172.31.0.5': 'eth0' } });
    const c = new TunnelClient({ host: '127.0.0.1', port: s.port, dest: '172.31.0.5', logger: createMemoryLogger(), openDevice: () => createMemoryDevicePair()[0], checkTap: false, net: recordingNet().net });
    await c.start();
    stops.push(() => c.stop());
    await expect(c.waitConnected(3000)).rejects.toMatchObject({ exitCode: 5, message: expect.stringContaining('not admitted by this server (--allow-dest 10.0.0.0/8)') });
    expect(s.calls.some((c) => c.includes('route get'))).toBe(false);
  });

  it('--allow-dest takes IPv6 ranges too: fd00:17::/64 admits fd00:17::5 and refuses fd00:18::5 before any route lookup', async () => {
    const s = await startServer({ mode: 'separate', allowDest: ['172.31.0.0/16', 'fd00:17::/64'], routes: { 'fd00:17::5': 'eth0' } });
    const client = async (dest: string) => {
      const net = recordingNet({}, '', { links: { dstap0: ['192.168.100.100/24'] } }).net;
      const c = new TunnelClient({ host: '127.0.0.1', port: s.port, dest, logger: createMemoryLogger(), openDevice: () => createMemoryDevicePair()[0], checkTap: false, net });
      await c.start();
      stops.push(() => c.stop());
      return c;
    };
    await expect((await client('fd00:18::5')).waitConnected(3000)).rejects.toMatchObject({
      exitCode: 5,
      message: expect.stringContaining('destination fd00:18::5 is not admitted by this server (--allow-dest 172.31.0.0/16, fd00:17::/64)'),
    });
    expect(s.calls.some((c) => c.includes('route get'))).toBe(false);
    await (await client('fd00:17::5')).waitConnected(3000);
    expect(s.calls).toContain('ip6tables -w -t filter -I FORWARD 1 -i ctun0 -d fd00:17::5/128 -j ACCEPT -m comment --comment ctun:ctun0');
  });

  it('an --allow-dest that is no address range is bad usage', () => {
    expect(() => new TunnelServer({ mode: 'separate', allowDest: ['fd00:17::/129'], logger: createMemoryLogger(), openDevice: () => createMemoryDevicePair()[0] })).toThrow(
      expect.objectContaining({ code: 'BAD_ADDRESS', exitCode: 1, message: '--allow-dest "fd00:17::/129" is not an IPv6 address with an optional /prefix (1-128)' }),
    );
  });

  it('removes rules a crashed server left for its TAP, and turns forwarding back off at exit', async () => {
    const leftovers = ['-P FORWARD ACCEPT', '-A FORWARD -i ctun0 -m comment --comment ctun:ctun0 -j ACCEPT', '-A FORWARD -i other0 -m comment --comment ctun:other0 -j ACCEPT'].join('\n');
    const s = await startServer({ mode: 'separate', leftovers });
    expect(s.calls).toContain('iptables -w -t filter -D FORWARD -i ctun0 -m comment --comment ctun:ctun0 -j ACCEPT');
    expect(s.calls.some((c) => c.includes('-D FORWARD -i other0'))).toBe(false);
    expect(s.log.lines.find((l) => l.event === 'leftover-rules-removed')?.fields).toMatchObject({ rules: 1 });
    expect(readFileSync(s.forwarding, 'utf8').trim()).toBe('1');
    await s.server.stop();
    expect(readFileSync(s.forwarding, 'utf8').trim()).toBe('0');
  });
});

describe('start-up line of a plain server', () => {
  it('says what anyone reaching it can do, unless it listens on loopback only', async () => {
    const s = await startServer({ listen: '0.0.0.0', mode: 'separate', allowDest: ['172.31.0.0/16'] });
    expect(s.log.lines.find((l) => l.event === 'plain-mode-exposed')?.fields.reason).toMatch(
      /^plain mode on 0\.0\.0\.0:\d+: anyone who reaches UDP port \d+ can, without credentials, reach, through this server's NAT, any host in 172\.31\.0\.0\/16 \(one --dest per session\); use --tls/,
    );
    const local = await startServer();
    expect(local.log.lines.some((l) => l.event === 'plain-mode-exposed')).toBe(false);
  });
});

describe('with --tls: resume bound to the certificate, CRL reloaded', () => {
  let pki = '';
  const material = (name: string) => loadTlsMaterial({ ca: join(pki, 'ca.crt'), cert: join(pki, `${name}.crt`), key: join(pki, `${name}.key`), crl: name === 'server' ? join(pki, 'ca.crl') : undefined });

  beforeAll(async () => {
    pki = tempDir('relay-pki');
    await initCa({ out: pki });
    await issueServer({ out: pki, names: ['127.0.0.1'] });
    for (const name of ['alice', 'bob']) await issueClient({ out: pki, name });
    await revoke({ out: pki }); // an empty CRL to start with
  });
  afterAll(() => rmSync(pki, { recursive: true, force: true }));

  function tlsClient(port: number, name: string, transport: 'udp' | 'tcp') {
    const log = createMemoryLogger();
    const client = new TunnelClient({ host: '127.0.0.1', port, transport, tls: material(name), logger: log, openDevice: () => createMemoryDevicePair()[0], checkTap: false, net: recordingNet().net, keepaliveMs: 200, deadAfterMs: 1000, backoff: { initialMs: 50, maxMs: 200 } });
    stops.push(() => client.stop());
    return { client, log };
  }

  for (const transport of ['tcp', 'udp'] as const) {
    it(`${transport}: a hello with another client's session id from another certificate is refused; the owner stays`, async () => {
      const s = await startServer({ transport, tls: material('server') });
      const alice = tlsClient(s.port, 'alice', transport);
      await alice.client.start();
      await alice.client.waitConnected(5000);
      const sid = (alice.client as unknown as { sessionId: Buffer }).sessionId;
      const token = (alice.client as unknown as { resumeToken: Buffer }).resumeToken;
      const heard: Message[] = [];
      const bob = await connectClientLink({ host: '127.0.0.1', port: s.port, transport, tls: material('bob'), handlers: { message: (m) => heard.push(m), invalid: () => {}, closed: () => {} } });
      stops.push(() => bob.close());
      bob.send(hello({ sessionId: sid, token }));
      await until(() => heard.length > 0);
      expect(heard[0]).toMatchObject({ type: MessageType.Error, code: ErrorCode.ResumeRefused, reason: 'session belongs to another certificate' });
      expect(s.server.stats().security.resumeRefused).toBe(1);
      await new Promise((r) => setTimeout(r, 300));
      expect(alice.client.connected).toBe(true);
      expect(s.log.lines.some((l) => l.event === 'client-resumed')).toBe(false);
    });
  }

  it('SIGHUP\'s reload: a client revoked meanwhile is cut and refused, without a restart; the others stay', async () => {
    const s = await startServer({ transport: 'udp', tls: material('server') });
    const alice = tlsClient(s.port, 'alice', 'udp');
    const bob = tlsClient(s.port, 'bob', 'udp');
    await alice.client.start();
    await bob.client.start();
    await alice.client.waitConnected(5000);
    await bob.client.waitConnected(5000);
    await revoke({ out: pki, certs: [join(pki, 'bob.crt')] });
    expect(await s.server.reloadTls()).toEqual({ revoked: 1, cut: 1 });
    expect(await bob.client.done).toMatchObject({ exitCode: 5, message: expect.stringContaining('revoked') });
    expect(s.server.stats().security.refused).toBeGreaterThanOrEqual(1);
    expect(alice.client.connected).toBe(true);
  });
});

describe('version mismatch', () => {
  it('tells which side to upgrade, from what a v1 or a v2 server says', () => {
    expect(versionHint('protocol version 2 is not supported; this server speaks version 1')).toBe('upgrade the server: it speaks protocol version 1 at most, this client 2');
    expect(versionHint('v3 unsupported, server speaks v3-4: upgrade the client')).toBe('upgrade the client: the server speaks protocol version 3-4, this client 2');
  });

  it('a plain UDP client facing a v1 server (un-echoed VersionMismatch) says so and keeps trying, never stops for good', async () => {
    const v1 = dgram.createSocket('udp4');
    await new Promise<void>((r) => v1.bind(0, '127.0.0.1', r));
    stops.push(() => new Promise<void>((r) => v1.close(() => r())));
    v1.on('message', (_d, from) => v1.send(encode({ type: MessageType.Error, code: ErrorCode.VersionMismatch, reason: 'protocol version 2 is not supported; this server speaks version 1' }), from.port, from.address));
    const log = createMemoryLogger();
    const client = new TunnelClient({ host: '127.0.0.1', port: v1.address().port, logger: log, openDevice: () => createMemoryDevicePair()[0], checkTap: false, net: recordingNet().net, backoff: { initialMs: 20, maxMs: 50 } });
    await client.start();
    stops.push(() => client.stop());
    await until(() => log.lines.filter((l) => l.event === 'version-mismatch').length >= 2);
    expect(log.lines.find((l) => l.event === 'version-mismatch')?.fields.hint).toBe('upgrade the server: it speaks protocol version 1 at most, this client 2');
    let stopped = false;
    void client.done.then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(stopped).toBe(false);
  });
});
