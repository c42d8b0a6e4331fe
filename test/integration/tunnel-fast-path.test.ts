/**
 * The native data fast path (native/fastpath.h, server_fastpath.h) of both ends
 * between real TAPs in namespaces, plain UDP, plain TCP (whose connection the addon
 * then reads and writes, native/stream_link.h) and --tls over UDP and TCP (sealed and
 * opened with the session's sealer in the addon, native/sealer.h; TCP's connection
 * switches from TLS to sealed records at the welcome): the frames really take it (its counters
 * cover the traffic while the frames JavaScript handled stay at the few sent before
 * the path knew the peer), the
 * statistics users see still count every frame (`ctun status`, the stats line), a
 * dead server is still detected and the client comes back with the path on again,
 * and in separate mode a destination the server did not admit stays unreachable
 * (the server's path takes only what its policy passes). `--fast-path off` keeps
 * every frame in JavaScript, on either end.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { link, netnsUnavailable, pcAndSim, Scope, statsOf, type Daemon, type Netns } from './harness/netns.js';
import { clientTlsArgs, makePki, removePki, serverTlsArgs } from './harness/pki.js';
import { tcpTransfer } from './harness/transfer.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

const METRICS = '127.0.0.1:19731';
const PINGS = 200;
const BULK_BYTES = 20 * 1024 * 1024;


/** PINGS echo requests through the tunnel, 5 ms apart; how many were answered. */
async function pings(pc: Netns, target: string): Promise<number> {
  const r = await pc.exec('ping', ['-c', String(PINGS), '-i', '0.005', '-W', '2', target], { timeout: 30_000, reject: false });
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

/**
 * PINGS echoes through a connected client and server; with the path on, every one
 * natively at the client, every request and reply at the server (JavaScript had only
 * the kernels' multicast), and BULK_BYTES intact each way through the addon. Off:
 * nothing counted natively at either end.
 */
async function bothEndsForward(pc: Netns, sim: Netns, client: Daemon, server: Daemon, fast: 'on' | 'off'): Promise<void> {
  expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
  const before = await Promise.all([statsOf(client), statsOf(server)]);
  expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
  const after = await Promise.all([statsOf(client), statsOf(server)]);
  const d = (end: 0 | 1, k: string): number => after[end][k]! - before[end][k]!;
  expect(d(0, 'framesOut')).toBeGreaterThanOrEqual(PINGS);
  expect(d(1, 'clients.framesIn')).toBeGreaterThanOrEqual(PINGS);
  if (fast === 'off') {
    for (const end of after) {
      expect(end.fastPathIn).toBe(0);
      expect(end.fastPathOut).toBe(0);
    }
    return;
  }
  expect(d(0, 'fastPathOut')).toBe(d(0, 'framesOut'));
  expect(d(0, 'fastPathIn')).toBe(d(0, 'framesIn'));
  expect(d(1, 'fastPathIn')).toBeGreaterThanOrEqual(PINGS);
  expect(d(1, 'fastPathOut')).toBeGreaterThanOrEqual(PINGS - 5);
  for (const [from, to, target] of [[pc, sim, TUNNEL_DEFAULTS.serverAddress], [sim, pc, TUNNEL_DEFAULTS.clientAddress.split('/')[0]!]] as const) {
    const { sent, received } = await tcpTransfer(scope, from, to, target, BULK_BYTES);
    expect(sent.error).toBeUndefined();
    expect(received).toEqual({ bytes: BULK_BYTES, sha256: sent.sha256 });
  }
  const bulk = await statsOf(client);
  expect(bulk.fastPathOut! - after[0].fastPathOut!).toBeGreaterThanOrEqual(BULK_BYTES / 1500);
  expect(bulk.fastPathIn! - after[0].fastPathIn!).toBeGreaterThanOrEqual(BULK_BYTES / 1500);
}

describe.skipIf(skip)('native fast path (plain UDP)', () => {
  it('data frames cross natively, the stats and `ctun status` count them; --fast-path off keeps them in JavaScript', async () => {
    const { pc, sim } = await pcAndSim(scope);
    const server = scope.track(sim.spawnCtun(['server']));
    await server.waitFor(/server-listening/, 15_000);
    for (const fast of ['on', 'off'] as const) {
      const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--fast-path', fast, '--metrics', METRICS]));
      await client.waitFor(/client-connected/, 15_000);
      const before = await statsOf(client);
      expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
      const after = await statsOf(client);
      const d = (k: string): number => after[k]! - before[k]!;
      // Every frame is counted whichever way it went.
      expect(d('framesOut')).toBeGreaterThanOrEqual(PINGS);
      expect(d('framesIn')).toBeGreaterThanOrEqual(PINGS - 5);
      expect(d('bytesOut')).toBeGreaterThanOrEqual(PINGS * 98);
      if (fast === 'on') {
        // All of them natively: JavaScript's share (frames minus native) did not move.
        expect(d('fastPathOut')).toBe(d('framesOut'));
        expect(d('fastPathIn')).toBe(d('framesIn'));
      } else {
        expect(after.fastPathOut).toBe(0);
        expect(after.fastPathIn).toBe(0);
      }
      // What a user reads: `ctun status` against the client's endpoint.
      const status = await pc.ctun(['status', '--metrics', METRICS]);
      console.log(`--fast-path ${fast}: $ ctun status --metrics ${METRICS}\n${status.stdout}${[...client.output.matchAll(/^.*INFO  stats .*$/gm)].pop()?.[0] ?? ''}`);
      const frames = /bytes in .* \((\d+) frames\), out .* \((\d+) frames\)/.exec(status.stdout);
      expect(Number(frames?.[2]), status.stdout).toBeGreaterThanOrEqual(after.framesOut!);
      if (fast === 'on') expect(status.stdout).toMatch(/of which native fast path: in \d+ frames, out \d+ frames/);
      else expect(status.stdout).not.toMatch(/fast path/);
      expect(await client.stop()).toBe(0);
      // The final line has the same totals (the last native counts are synced at stop).
      const final = /stats-final .*framesOut=(\d+).*fastPathOut=(\d+)/.exec(client.output);
      expect(Number(final?.[1])).toBeGreaterThanOrEqual(after.framesOut!);
    }
  });

  it('the server half: client frames to its TAP and the replies cross it natively, counted; --fast-path off keeps them in JavaScript', async () => {
    const { pc, sim } = await pcAndSim(scope);
    for (const fast of ['on', 'off'] as const) {
      const server = scope.track(sim.spawnCtun(['server', '--fast-path', fast, '--metrics', METRICS]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', '10.79.0.2']));
      await client.waitFor(/client-connected/, 15_000);
      // The first frames teach the server's switch the client's MAC (in JavaScript); then the path has it.
      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
      const before = await statsOf(server);
      expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
      const after = await statsOf(server);
      const d = (k: string): number => after[k]! - before[k]!;
      expect(d('clients.framesIn')).toBeGreaterThanOrEqual(PINGS);
      expect(d('tap.framesOut')).toBeGreaterThanOrEqual(PINGS);
      expect(d('clients.framesOut')).toBeGreaterThanOrEqual(PINGS - 5);
      if (fast === 'on') {
        // Every echo request and reply natively; JavaScript had only what the kernels
        // multicast meanwhile (IPv6 neighbour and listener messages: the switch floods those).
        expect(d('fastPathIn')).toBeGreaterThanOrEqual(PINGS);
        expect(d('fastPathOut')).toBeGreaterThanOrEqual(PINGS - 5);
        expect(d('clients.framesIn') - d('fastPathIn')).toBeLessThan(PINGS / 20);
      } else {
        expect(after.fastPathIn).toBe(0);
        expect(after.fastPathOut).toBe(0);
      }
      const status = await sim.ctun(['status', '--metrics', METRICS]);
      console.log(`server --fast-path ${fast}: $ ctun status --metrics ${METRICS}\n${status.stdout}`);
      if (fast === 'on') expect(status.stdout).toMatch(/of which native fast path: in \d+ frames, out \d+ frames/);
      else expect(status.stdout).not.toMatch(/fast path/);
      expect(await client.stop()).toBe(0);
      expect(await server.stop()).toBe(0);
      const final = /stats-final .*clients\.framesIn=(\d+).*fastPathIn=(\d+)/.exec(server.output);
      expect(Number(final?.[1])).toBeGreaterThanOrEqual(after['clients.framesIn']!);
    }
  });

  // The TAP side of a round trip's system calls: a lone frame (pings 5 ms apart find
  // each end asleep) is read from each end's TAP with one read, where the reader used
  // to read once more to find the queue empty. On UDP a datagram is received with
  // recvmmsg and sent with sendmmsg, which /proc/<pid>/io does not count, so an end's
  // reads are its TAP reads (and the few of the event loop's own wake-ups).
  it('a lone frame costs each end one TAP read, and a burst still crosses whole', async () => {
    const { pc, sim } = await pcAndSim(scope);
    const server = scope.track(sim.spawnCtun(['server']));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', '10.79.0.2']));
    await client.waitFor(/client-connected/, 15_000);
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
    const before = [client.ioCalls(), server.ioCalls()];
    expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
    const after = [client.ioCalls(), server.ioCalls()];
    for (const end of [0, 1]) {
      const reads = after[end]!.reads - before[end]!.reads;
      const writes = after[end]!.writes - before[end]!.writes;
      // Each echo wrote one frame into each end's TAP (the reply at the client, the request at the server) ...
      expect(writes, `end ${end}`).toBeGreaterThanOrEqual(PINGS - 5);
      // ... and took one out of the other direction: one read each (two before).
      console.log(`${end === 0 ? 'client' : 'server'}: ${reads} reads, ${writes} writes for ${PINGS} echoes`);
      expect(reads / PINGS, `end ${end}: ${reads} reads for ${PINGS} echoes`).toBeLessThan(1.4);
    }
    // Bursts: the first wake-up after a sleep reads one frame, the rest follow at once.
    const { sent, received } = await tcpTransfer(scope, pc, sim, TUNNEL_DEFAULTS.serverAddress, BULK_BYTES);
    expect(sent.error).toBeUndefined();
    expect(received).toEqual({ bytes: BULK_BYTES, sha256: sent.sha256 });
  });

  it('a dead server is detected (keepalive) and the client comes back with the path on', async () => {
    const { pc, sim } = await pcAndSim(scope);
    let server = scope.track(sim.spawnCtun(['server']));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', '10.79.0.2']));
    await client.waitFor(/client-connected/, 15_000);
    expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
    const from = client.output.length;
    server.kill('SIGKILL');
    await server.exited;
    // The TAP keeps sending into the path while the server is gone: it must not hide the silence.
    const sending = pc.exec('ping', ['-c', '40', '-i', '0.2', '-W', '1', TUNNEL_DEFAULTS.serverAddress], { timeout: 30_000, reject: false });
    await client.waitFor(/link-lost .*server silent for/, 10_000, from);
    await sending;
    server = scope.track(sim.spawnCtun(['server']));
    await server.waitFor(/server-listening/, 15_000);
    await client.waitFor(/client-reconnected/, 10_000, from);
    const before = await statsOf(client);
    expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
    const after = await statsOf(client);
    expect(after.fastPathOut! - before.fastPathOut!).toBeGreaterThanOrEqual(PINGS);
    expect(after.reconnects).toBeGreaterThanOrEqual(1);
  });

  for (const transport of ['udp', 'tcp'] as const) {
    it(`separate mode over ${transport}: a destination the server did not admit stays unreachable though the client forwards natively`, async () => {
      const pc = await scope.ns('pc');
      const gw = await scope.ns('gw');
      const target = await scope.ns('tgt');
      const other = await scope.ns('oth');
      await link(pc, '10.78.0.1/24', gw, '10.78.0.2/24');
      await link(gw, '172.31.9.1/24', target, '172.31.9.2/24');
      await link(gw, '172.31.8.1/24', other, '172.31.8.2/24');
      await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
      const server = scope.track(gw.spawnCtun(['server', '--mode', 'separate', '--transport', transport]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', '10.78.0.2', '--dest', '172.31.9.2', '--transport', transport]));
      await client.waitFor(/route-added dest=172\.31\.9\.2/, 15_000);
      expect(await pc.ping('172.31.9.2')).toBe(true);
      // The admitted destination crosses the server natively too.
      const admitted = await statsOf(server);
      expect(await pings(pc, '172.31.9.2')).toBeGreaterThanOrEqual(PINGS - 5);
      expect((await statsOf(server)).fastPathIn! - admitted.fastPathIn!).toBeGreaterThanOrEqual(PINGS - 5);
      // pc routes the other host through the tunnel by hand: the frames leave natively, the server refuses them.
      await pc.ip('route', 'add', '172.31.8.2/32', 'via', TUNNEL_DEFAULTS.serverAddress, 'dev', TUNNEL_DEFAULTS.clientTap);
      const before = await statsOf(client);
      expect(await pc.ping('172.31.8.2')).toBe(false);
      const after = await statsOf(client);
      expect(after.fastPathOut! - before.fastPathOut!).toBeGreaterThanOrEqual(3);
      // The server's path takes only what policy passes: the refused frames reached its policy and were dropped there.
      expect((await statsOf(server))['clients.dropsPolicy']).toBeGreaterThanOrEqual(3);
    });
  }
});

describe.skipIf(skip)('native fast path (TCP: the addon drives the connection, plain or sealed)', () => {
  it('both ends forward over the connection: every echo natively and counted at both ends, 20 MB intact each way; --fast-path off keeps them in JavaScript', async () => {
    const { pc, sim } = await pcAndSim(scope);
    for (const fast of ['on', 'off'] as const) {
      const server = scope.track(sim.spawnCtun(['server', '--transport', 'tcp', '--fast-path', fast, '--metrics', METRICS]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', 'tcp', '--fast-path', fast, '--metrics', METRICS]));
      await client.waitFor(/client-connected/, 15_000);
      await bothEndsForward(pc, sim, client, server, fast);
      expect(await client.stop()).toBe(0);
      expect(await server.stop()).toBe(0);
      // Nothing the connection carried went astray: no invalid message at either end.
      expect(server.output).not.toMatch(/invalid-message/);
      expect(/stats-final .*dropsInvalid=(\d+)/.exec(client.output)?.[1]).toBe('0');
    }
  });

  let pki = '';
  beforeAll(async () => {
    pki = await makePki({ serverNames: ['10.79.0.2'], clients: ['alice'] });
  });
  afterAll(() => removePki(pki));

  it.each(['plain', '--tls'])('%s: a cut connection: the client resumes its session over a new one, which the addon drives at both ends', async (security) => {
    const { pc, sim } = await pcAndSim(scope);
    const tls = security === '--tls';
    const server = scope.track(sim.spawnCtun(['server', '--transport', 'tcp', '--metrics', METRICS, ...(tls ? serverTlsArgs(pki) : [])]));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', 'tcp', ...(tls ? clientTlsArgs(pki, 'alice') : [])]));
    await client.waitFor(/client-connected/, 15_000);
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
    const from = client.output.length;
    // The client's kernel answers its own next segment with a reset: its connection
    // dies, the server's side of it does not know yet.
    const reject = ['OUTPUT', '-p', 'tcp', '--dport', String(TUNNEL_DEFAULTS.port), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
    await pc.exec('iptables', ['-A', ...reject]);
    await pc.exec('ping', ['-c', '3', '-i', '0.2', '-W', '1', TUNNEL_DEFAULTS.serverAddress], { reject: false });
    await client.waitFor(/reconnect-scheduled/, 10_000, from);
    await pc.exec('iptables', ['-D', ...reject]);
    await client.waitFor(/client-reconnected .*resumed=true/, 15_000, from);
    const before = await statsOf(server);
    expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
    const after = await statsOf(server);
    // One session, resumed; its frames cross the server natively on the new connection.
    expect(after.sessions).toBe(1);
    expect(after.fastPathIn! - before.fastPathIn!).toBeGreaterThanOrEqual(PINGS - 5);
    expect(after.fastPathOut! - before.fastPathOut!).toBeGreaterThanOrEqual(PINGS - 5);
  });

  it('the server killed: the client sees its connection end and comes back with the path on', async () => {
    const { pc, sim } = await pcAndSim(scope);
    let server = scope.track(sim.spawnCtun(['server', '--transport', 'tcp']));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', 'tcp']));
    await client.waitFor(/client-connected/, 15_000);
    expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
    const from = client.output.length;
    server.kill('SIGKILL');
    await server.exited;
    // Its kernel closes the connection: the addon reads the end and tells the client.
    await client.waitFor(/reconnect-scheduled .*reason="connection closed by the server"/, 10_000, from);
    server = scope.track(sim.spawnCtun(['server', '--transport', 'tcp']));
    await server.waitFor(/server-listening/, 15_000);
    await client.waitFor(/client-reconnected/, 15_000, from);
    const before = await statsOf(client);
    expect(await pings(pc, TUNNEL_DEFAULTS.serverAddress)).toBeGreaterThanOrEqual(PINGS - 5);
    const after = await statsOf(client);
    expect(after.fastPathOut! - before.fastPathOut!).toBeGreaterThanOrEqual(PINGS);
    expect(after.reconnects).toBeGreaterThanOrEqual(1);
  });
});

describe.skipIf(skip)('native fast path (--tls: the addon seals and opens with the session\'s sealer, UDP datagrams or TCP records)', () => {
  let pki = '';
  beforeAll(async () => {
    pki = await makePki({ serverNames: ['10.79.0.2'], clients: ['alice'] });
  });
  afterAll(() => removePki(pki));

  it.each(['udp', 'tcp'])('over %s both ends seal and open natively: every echo counted, 20 MB intact each way, nothing dropped unopened; --fast-path off keeps them in JavaScript', async (transport) => {
    const { pc, sim } = await pcAndSim(scope);
    for (const fast of ['on', 'off'] as const) {
      const server = scope.track(sim.spawnCtun(['server', '--transport', transport, '--fast-path', fast, '--metrics', METRICS, ...serverTlsArgs(pki)]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', transport, '--fast-path', fast, '--metrics', METRICS, ...clientTlsArgs(pki, 'alice')]));
      await client.waitFor(/client-connected/, 15_000);
      await bothEndsForward(pc, sim, client, server, fast);
      // The control messages JavaScript seals (pings, the stats) share the addon's counter:
      // a reused nonce would be a replay at the other end, a counted drop (on TCP, the end).
      await new Promise((r) => setTimeout(r, 2500));
      const end = await Promise.all([statsOf(client), statsOf(server)]);
      expect(end[0].dropsInvalid, 'client: datagrams dropped unopened').toBe(0);
      expect(end[1]['clients.dropsInvalid'], 'server: datagrams dropped unopened').toBe(0);
      expect(await client.stop()).toBe(0);
      expect(await server.stop()).toBe(0);
    }
  });
});
