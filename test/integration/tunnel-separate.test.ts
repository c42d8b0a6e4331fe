/**
 * Separate mode (the separated deployment): the server runs on the target's subnet,
 * not beside it. pc ── gw ── target: pc has no route to target until the client
 * names it with --dest; the server's kernel forwards and masquerades.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { link, netnsUnavailable, Scope } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

describe.skipIf(skip)('separate mode (separated deployment)', () => {
  for (const transport of ['udp', 'tcp'] as const) {
    it(`over ${transport}: pc reaches ports opened on the target after the tunnel came up`, async () => {
      const pc = await scope.ns('pc');
      const gw = await scope.ns('gw');
      const target = await scope.ns('tgt');
      await link(pc, '10.78.0.1/24', gw, '10.78.0.2/24');
      await link(gw, '172.31.9.1/24', target, '172.31.9.2/24');
      const targetIp = '172.31.9.2';

      await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
      // Before the tunnel: no route from pc to the target at all.
      const before = await pc.exec('ip', ['route', 'get', targetIp], { reject: false });
      expect(before.exitCode).not.toBe(0);
      expect(before.stderr).toMatch(/unreachable/i);

      const server = scope.track(gw.spawnCtun(['server', '--mode', 'separate', '--transport', transport]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', '10.78.0.2', '--transport', transport, '--dest', targetIp]));
      await client.waitFor(/route-added dest=172\.31\.9\.2 via=192\.168\.100\.1/, 15_000);

      // Opened only now, on random ports, on a host that has no route back to the
      // tunnel subnet: replies come back through the server's NAT.
      const tcp = await target.startProbe('tcp-server');
      const udp = await target.startProbe('udp-server');
      scope.track(tcp.daemon);
      scope.track(udp.daemon);
      expect(await pc.probe('tcp-send', targetIp, String(tcp.first.port), 'via-gw')).toMatchObject({ ok: true, reply: 'tcp-echo:via-gw' });
      expect(await pc.probe('udp-send', targetIp, String(udp.first.port), 'dgram')).toMatchObject({ ok: true, reply: 'udp-echo:dgram' });
      expect(await pc.ping(targetIp)).toBe(true);

      // The client removes its route when it stops; the server removes its NAT rules.
      expect(await client.stop()).toBe(0);
      expect((await pc.exec('ip', ['route', 'get', targetIp], { reject: false })).exitCode).not.toBe(0);
      expect(await server.stop()).toBe(0);
      const nat = await gw.exec('iptables', ['-t', 'nat', '-S', 'POSTROUTING']);
      expect(nat.stdout).not.toContain('ctun:');
    });
  }

  it('rejects a destination the server cannot reach, with exit code 5', async () => {
    const pc = await scope.ns('pc');
    const gw = await scope.ns('gw');
    await link(pc, '10.78.1.1/24', gw, '10.78.1.2/24');
    await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
    const server = scope.track(gw.spawnCtun(['server', '--mode', 'separate']));
    await server.waitFor(/server-listening/, 15_000);
    const r = await pc.ctun(['client', '10.78.1.2', '--dest', '172.31.99.9'], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toContain('ctun: error: the server rejected this client (DestinationRejected): the server has no route to destination 172.31.99.9');
  });
});
