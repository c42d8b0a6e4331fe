/**
 * The tunnel against the real kernel: namespaces stand for the user's PC and the
 * simulator's host, joined only by a veth; the real `ctun` CLI runs in each.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { link, netnsUnavailable, Scope, type Netns } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

/** pc ── veth ── sim, a configured TAP in pc, a local-mode server in sim, a connected client. */
async function localTunnel(transport: 'udp' | 'tcp', clients = 1) {
  const sim = await scope.ns('sim');
  const pcs: Netns[] = [];
  for (let i = 0; i < clients; i++) {
    const pc = await scope.ns(`pc${i}`);
    await link(pc, `10.77.${i}.1/24`, sim, `10.77.${i}.2/24`);
    const configured = await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, `192.168.100.${100 + i}`, '--non-interactive']);
    expect(configured.stdout).toContain(`dstap0 has 192.168.100.${100 + i}/24`);
    pcs.push(pc);
  }
  const server = scope.track(sim.spawnCtun(['server', '--transport', transport]));
  await server.waitFor(/server-listening/, 15_000);
  // The second client logs JSON, so both formats are exercised.
  const clientDaemons = pcs.map((pc, i) => scope.track(pc.spawnCtun(['client', `10.77.${i}.2`, '--transport', transport, ...(i === 1 ? ['--log-format', 'json'] : [])])));
  for (const c of clientDaemons) await c.waitFor(/client-connected/, 15_000);
  return { sim, pcs, server, clients: clientDaemons };
}

describe.skipIf(skip)('local mode (integrated deployment)', () => {
  for (const transport of ['udp', 'tcp'] as const) {
    it(`over ${transport}: ports opened after the tunnel is up are reachable, broadcast and ping cross it`, async () => {
      const { sim, pcs } = await localTunnel(transport);
      const pc = pcs[0]!;
      // Servers on random ports chosen only now, after the tunnel came up.
      const tcp = await sim.startProbe('tcp-server');
      const udp = await sim.startProbe('udp-server');
      scope.track(tcp.daemon);
      scope.track(udp.daemon);

      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
      expect(await pc.probe('tcp-send', TUNNEL_DEFAULTS.serverAddress, String(tcp.first.port), 'hello')).toMatchObject({ ok: true, reply: 'tcp-echo:hello' });
      expect(await pc.probe('udp-send', TUNNEL_DEFAULTS.serverAddress, String(udp.first.port), 'hi')).toMatchObject({ ok: true, reply: 'udp-echo:hi' });

      const listener = await sim.startProbe('udp-listen', '47808', '10000');
      scope.track(listener.daemon);
      await pc.probe('udp-broadcast', '192.168.100.255', '47808', 'who-is-there', '10');
      await listener.daemon.waitFor(/"data":"who-is-there"/, 10_000);
      expect(listener.daemon.output).toContain('"from":"192.168.100.100"');
    });
  }

  it('two clients on one server reach each other and the server side', async () => {
    const { sim, pcs, server, clients } = await localTunnel('udp', 2);
    const [pc0, pc1] = pcs as [Netns, Netns];
    expect(await pc0.ping('192.168.100.101')).toBe(true);
    expect(await pc1.ping(TUNNEL_DEFAULTS.clientAddress)).toBe(true);
    expect(await pc1.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
    const onPc1 = await pc1.startProbe('tcp-server');
    scope.track(onPc1.daemon);
    expect(await pc0.probe('tcp-send', '192.168.100.101', String(onPc1.first.port), 'peer')).toMatchObject({ ok: true, reply: 'tcp-echo:peer' });
    const onSim = await sim.startProbe('udp-server');
    scope.track(onSim.daemon);
    expect(await pc1.probe('udp-send', TUNNEL_DEFAULTS.serverAddress, String(onSim.first.port), 'x')).toMatchObject({ ok: true, reply: 'udp-echo:x' });

    // Statistics on request (SIGUSR1) and at exit, in JSON when asked.
    server.kill('SIGUSR1');
    const stats = await server.waitFor(/INFO\s+stats sessions=2 .*/, 5000);
    expect(Number(/clients\.framesIn=(\d+)/.exec(stats)![1])).toBeGreaterThan(0);
    const jsonClient = clients[1]!;
    expect(await jsonClient.stop()).toBe(0);
    const final = jsonClient.output.split('\n').filter((l) => l.includes('"event":"stats-final"'));
    expect(final).toHaveLength(1);
    expect(JSON.parse(final[0]!)).toMatchObject({ level: 'info', event: 'stats-final', reconnects: 0 });
    expect(JSON.parse(final[0]!).framesOut).toBeGreaterThan(0);
  });

  for (const transport of ['udp', 'tcp'] as const) {
    it(`over ${transport}: the client reconnects by itself after the server is killed and restarted`, async () => {
      const { sim, pcs, server, clients } = await localTunnel(transport);
      const pc = pcs[0]!;
      const client = clients[0]!;
      const ifindexBefore = await pc.ifindex(TUNNEL_DEFAULTS.clientTap);
      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);

      server.kill('SIGKILL');
      await server.exited;
      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress, 1)).toBe(false);
      const mark = client.output.length;
      const restarted = scope.track(sim.spawnCtun(['server', '--transport', transport]));
      await restarted.waitFor(/server-listening/, 15_000);

      const line = await client.waitFor(/client-reconnected .*outageMs=\d+/, 20_000, mark);
      expect(Number(/outageMs=(\d+)/.exec(line)![1])).toBeGreaterThan(0);
      expect(await pc.ifindex(TUNNEL_DEFAULTS.clientTap)).toBe(ifindexBefore);
      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
      const tcp = await sim.startProbe('tcp-server');
      scope.track(tcp.daemon);
      expect(await pc.probe('tcp-send', TUNNEL_DEFAULTS.serverAddress, String(tcp.first.port), 'again')).toMatchObject({ ok: true, reply: 'tcp-echo:again' });
    });
  }
});
