/**
 * Faults and floods between real namespaces: half-open connections and garbage
 * datagrams while a good client works, kill -9 of the server (the client is back
 * by itself after its return, its TAP never goes), kill -9 of clients (sessions freed
 * after the grace period, no leak over 100 cycles), and a peer that never reads
 * (memory stays bounded, drops counted). Every load is bounded in count and time.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DEAD_AFTER_MS, MIN_DEAD_AFTER_MS, RECONNECT_BACKOFF_CAP_MS, UDP_HELLO_REPEAT_MS } from '../../tools/tunnel/client.js';
import { netnsUnavailable, pcEvilSim, Scope, statsOf } from './harness/netns.js';
import { clientTlsArgs, makePki, removePki, serverTlsArgs } from './harness/pki.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

/** For the --tls runs: a CA with a server certificate for 10.79.0.2 and client alice. */
let pki = '';
beforeAll(async () => {
  if (!skip) pki = await makePki({ serverNames: ['10.79.0.2'], clients: ['alice'] });
});
afterAll(() => removePki(pki));

/**
 * The README's promise for a server that returns: the client is back by itself. Once
 * it has noticed the loss it waits at most its back-off cap before the next try (UDP
 * says its hello again every UDP_HELLO_REPEAT_MS meanwhile), so it is back within that
 * after the server listens; the 3 s on top are for a loaded machine and a TLS
 * handshake, not a speed figure (those are printed, and go to the benchmark).
 */
const BACK_WITHIN_MS = RECONNECT_BACKOFF_CAP_MS + UDP_HELLO_REPEAT_MS + 3000;

const setup = () => pcEvilSim(scope);

describe.skipIf(skip)('faults and floods', () => {
  it('TCP: 1000 half-open connections are closed (hello timeout, pending cap) while a good client keeps working', async () => {
    const { pc, evil, sim } = await setup();
    const server = scope.track(sim.spawnCtun(['server', '--transport', 'tcp', '--hello-timeout-ms', '2000']));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', 'tcp']));
    await client.waitFor(/client-connected/, 15_000);
    const flood = evil.hostile('half-open', '10.79.1.2', String(TUNNEL_DEFAULTS.port), '1000', '4000');
    await new Promise((r) => setTimeout(r, 500));
    // A new client gets in during the flood, and the old one still works.
    const late = await pc.probe('raw-tcp', '10.79.0.2', String(TUNNEL_DEFAULTS.port), helloHex(), '1500');
    expect(Buffer.from(late.reply as string, 'hex')[0]).toBe(3); // Welcome
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
    const r = await flood;
    expect(r.opened).toBe(1000);
    // Beyond 128 waiting the oldest go at once; the rest at the 2 s hello timeout.
    expect(r.closedByPeer).toBe(1000);
    const s = await statsOf(server);
    expect(s['security.pendingDropped']).toBeGreaterThanOrEqual(1000);
    expect(s.sessions).toBeLessThanOrEqual(2);
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
  });

  it('UDP: a flood of garbage datagrams is dropped while a good client keeps working', async () => {
    const { pc, evil, sim } = await setup();
    const server = scope.track(sim.spawnCtun(['server']));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', '10.79.0.2']));
    await client.waitFor(/client-connected/, 15_000);
    const flood = evil.hostile('udp-flood', '10.79.1.2', String(TUNNEL_DEFAULTS.port), '200000', '5000');
    await new Promise((r) => setTimeout(r, 300));
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress, 5)).toBe(true);
    const r = await flood;
    expect(r.sent as number).toBeGreaterThan(1000);
    const s = await statsOf(server);
    expect(s['clients.dropsInvalid']).toBeGreaterThan(0);
    expect(s.sessions).toBe(1);
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
    expect(client.output).not.toMatch(/link-lost/);
  });

  for (const transport of ['udp', 'tcp'] as const) {
    for (const tls of [false, true]) {
      const mode = `${transport}${tls ? ' --tls' : ''}`;
      it(`${mode}: after kill -9 of the server the client comes back by itself when it returns; its TAP never goes`, async () => {
        const { pc, sim } = await setup();
        const serverArgs = ['server', '--transport', transport, ...(tls ? serverTlsArgs(pki) : [])];
        let server = scope.track(sim.spawnCtun(serverArgs));
        await server.waitFor(/server-listening/, 15_000);
        // --dead-after-ms at its least: a UDP client notices the silent server in 2-3 s, not 4-5.
        const clientArgs = ['client', '10.79.0.2', '--transport', transport, '--dead-after-ms', String(MIN_DEAD_AFTER_MS)];
        const client = scope.track(pc.spawnCtun([...clientArgs, ...(tls ? clientTlsArgs(pki, 'alice') : [])]));
        await client.waitFor(/client-connected/, 15_000);
        const tapIndex = await pc.ifindex(TUNNEL_DEFAULTS.clientTap);
        expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
        const backTimes: number[] = [];
        const trafficTimes: number[] = [];
        for (let round = 0; round < 2; round++) {
          const killedAt = client.output.length;
          server.kill('SIGKILL');
          await server.exited;
          // Away until the client has noticed, in its own words: at once where a
          // connection closes (TCP, TLS's control connection), after --dead-after-ms of
          // silence on plain UDP.
          const lost = await client.waitFor(/link-lost .*/, DEFAULT_DEAD_AFTER_MS + 5000, killedAt);
          const silence = /server silent for ([\d.]+) ms/.exec(lost);
          if (transport === 'udp' && !tls) {
            expect(silence, lost).not.toBeNull();
            expect(Number(silence![1]), `the client gave up on the silent server after --dead-after-ms ${MIN_DEAD_AFTER_MS}, before the default ${DEFAULT_DEAD_AFTER_MS}: ${lost}`).toBeLessThan(DEFAULT_DEAD_AFTER_MS);
          } else {
            // Its tries are refused at once: away until it waits its back-off cap between them.
            await client.waitFor(/reconnect-scheduled .*attempt=4\b/, 15_000, killedAt);
          }
          expect(await pc.ifindex(TUNNEL_DEFAULTS.clientTap)).toBe(tapIndex);
          const from = client.output.length;
          server = scope.track(sim.spawnCtun(serverArgs));
          await server.waitFor(/server-listening/, 15_000);
          const listening = Date.now();
          // The client's own word that it is back, and the first ping answered through the tunnel.
          const [back, traffic] = await Promise.all([
            client.waitFor(/client-reconnected|session-unknown.*\n.*client-reconnected/, 10_000, from).then(() => Date.now() - listening),
            pc.pingUntilReply(TUNNEL_DEFAULTS.serverAddress, 15).then((ok) => (ok ? Date.now() - listening : Number.NaN)),
          ]);
          expect(traffic, 'a ping through the tunnel answered within 15 s of the server\'s return').not.toBeNaN();
          backTimes.push(back);
          trafficTimes.push(traffic);
          // With --tls the new session is mutual TLS again: the server names the client from its certificate.
          if (tls) await server.waitFor(/client-connected .*identity=alice/, 5000);
        }
        // How fast is a figure (a loaded CI machine stretches it): printed here; the
        // pass/fail line is the functional bound, BACK_WITHIN_MS. Measured: 0.1-1.1 s on every transport. (Plain UDP took 2-3 s
        // until the addon's UDP reader resumed polling after the ICMP error that the
        // client's hellos raise while the server is away.)
        console.log(`${mode}: client back ${backTimes.join(' ms, ')} ms, traffic back ${trafficTimes.join(' ms, ')} ms after the server's start line`);
        for (const back of backTimes) expect(back, `client back by itself within ${BACK_WITHIN_MS} ms of the server's return`).toBeLessThan(BACK_WITHIN_MS);
        expect(await pc.ifindex(TUNNEL_DEFAULTS.clientTap)).toBe(tapIndex);
        expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
      });
    }
  }

  it('kill -9 of clients: sessions are freed after the grace period; 100 cycles leak neither sessions nor memory', async () => {
    const { pc, evil, sim } = await setup();
    // The 100 cycles come from one address and overlap in their grace period: above the
    // default cap of sessions per source (16), which is not what this test is about.
    const server = scope.track(sim.spawnCtun(['server', '--transport', 'tcp', '--grace-ms', '500', '--max-sessions-per-source', '64']));
    await server.waitFor(/server-listening/, 15_000);
    // The real client, killed -9 three times.
    for (let i = 0; i < 3; i++) {
      const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', 'tcp']));
      await client.waitFor(/client-connected/, 15_000);
      client.kill('SIGKILL');
      await client.exited;
    }
    await server.waitFor(/session-ended .*grace period over(.|\n)*session-ended .*grace period over(.|\n)*session-ended .*grace period over/, 5000);
    // Private memory (RssAnon): what a leak grows. The whole resident set also counts
    // pages of the node executable read in as code runs for the first time (4-5 MiB
    // when these cycles take paths the real clients did not).
    const rss0 = server.privateMiB();
    // 100 more that vanish without a bye, as a killed client does; 40 ms apart, so
    // the sessions in their grace period stay below the server's 64.
    const cycles = await evil.hostile('hello-cycles', '10.79.1.2', String(TUNNEL_DEFAULTS.port), '100', '40');
    expect(cycles).toMatchObject({ ok: true, welcomed: 100 });
    // The last grace periods (500 ms) end at the server's next sweep: ask until its
    // tables are empty, 10 s at most; a leak leaves them full and fails below.
    let s = await statsOf(server);
    for (const until = Date.now() + 10_000; (s.sessions !== 0 || s.peers !== 0) && Date.now() < until; s = await statsOf(server)) {
      await new Promise((r) => setTimeout(r, 250));
    }
    const rss1 = server.privateMiB();
    console.log(`server private memory ${rss0.toFixed(1)} MiB before 100 kill-9 cycles, ${rss1.toFixed(1)} MiB after (resident set ${server.rssMiB().toFixed(1)} MiB); sessions ${s.sessions}`);
    // What a leak would cost: a session holds ~3.5 KiB (measured with 60 detached
    // sessions kept by a long grace), so one leaked per cycle is ~0.35 MiB after 100
    // cycles, inside the noise of a process's private memory. The server's own tables
    // are the bound that catches it (100 sessions or peers left instead of 0); private
    // memory catches a leak of 80 KiB or more per cycle (a receive buffer or a socket
    // per cycle).
    expect(s.sessions).toBe(0);
    expect(s.peers).toBe(0);
    expect(rss1 - rss0).toBeLessThan(8);
  });

  it('a peer that never reads: the queue toward it stays bounded, drops are counted, RSS stays bounded', async () => {
    const { evil, sim } = await setup();
    const server = scope.track(sim.spawnCtun(['server', '--transport', 'tcp']));
    await server.waitFor(/server-listening/, 15_000);
    const reader = evil.hostile('slow-reader', '10.79.1.2', String(TUNNEL_DEFAULTS.port), '9000');
    await server.waitFor(/client-connected/, 5000);
    const rss0 = server.rssMiB();
    // Broadcasts on the server's tunnel subnet are flooded to every session: ~70 MB toward the reader.
    const flood = await sim.hostile('udp-flood', '192.168.100.255', '9', '50000', '6000', 'broadcast');
    expect(flood.sent as number).toBeGreaterThan(5000);
    const s = await statsOf(server);
    const rss1 = server.rssMiB();
    console.log(`slow reader: server RSS ${rss0.toFixed(1)} MiB -> ${rss1.toFixed(1)} MiB after ${flood.sent} broadcasts; tap.framesIn ${s['tap.framesIn']}, frames out to the reader ${s['clients.framesOut']}, dropped ${s['clients.dropsQueue']}`);
    expect(s['clients.dropsQueue']).toBeGreaterThan(0);
    expect(rss1 - rss0).toBeLessThan(100);
    expect(await reader).toMatchObject({ welcomed: true });
  });
});

function helloHex(): string {
  const p = Buffer.alloc(32);
  p.write('CTUN', 0, 'ascii');
  p.writeUInt8(1, 4);
  p.writeUInt16BE(1400, 8);
  Buffer.from('0123456789abcdef').copy(p, 12);
  return Buffer.concat([Buffer.from([2, 0, 0, 32]), p]).toString('hex');
}
