/**
 * Protocol versions between real processes (issue 18): a v1 `ctun` (this repository
 * before protocol v2, out of git history: harness/v1.ts) against today's v2 one, both
 * ways, in network namespaces with real TAPs. pc (10.80.0.1) ── sim (10.80.0.2).
 *
 * - a v1 client is still served by a v2 server: it is welcomed in v1 and frames flow;
 * - a v2 client needs a v2 server: a v1 server answers VersionMismatch, and the client
 *   says to upgrade the server. On TCP the answer is trusted and the client exits 5;
 *   on plain UDP a v1 server cannot echo the session (anyone could have sent it), so
 *   the client says so and keeps retrying (PROTOCOL.md, Versions).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { link, netnsUnavailable, NODE, Scope, type Netns } from './harness/netns.js';
import { ADDON, v1Ctun } from './harness/v1.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

let V1 = '';
beforeAll(() => {
  if (skip === undefined) V1 = v1Ctun();
});

function spawnV1(ns: Netns, args: string[]) {
  return ns.spawn(NODE, [V1, ...args], { env: { CTUN_ADDON: ADDON }, label: `${ns.name}: ctun v1 ${args.join(' ')}` });
}

async function pcAndSim(): Promise<{ pc: Netns; sim: Netns }> {
  const pc = await scope.ns('pc');
  const sim = await scope.ns('sim');
  await link(pc, '10.80.0.1/24', sim, '10.80.0.2/24');
  await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
  return { pc, sim };
}

describe.skipIf(skip)('protocol v1 and v2 peers', () => {
  for (const transport of ['udp', 'tcp'] as const) {
    it(`a v1 client gets through a v2 server over ${transport}: welcomed in v1, frames flow`, async () => {
      const { pc, sim } = await pcAndSim();
      const server = scope.track(sim.spawnCtun(['server', '--transport', transport]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(spawnV1(pc, ['client', '10.80.0.2', '--transport', transport]));
      await client.waitFor(/client-connected/, 15_000);
      expect(await server.waitFor(/client-connected .*/, 5000)).toMatch(new RegExp(`transport=${transport} version=1 mode=local`));
      expect(await pc.pingUntilReply('192.168.100.1', 10)).toBe(true);
      expect(await client.stop()).toBe(0);
    });
  }

  it('a v2 client against a v1 server over tcp: exit 5, "upgrade the server"', async () => {
    const { pc, sim } = await pcAndSim();
    const server = scope.track(spawnV1(sim, ['server', '--transport', 'tcp']));
    await server.waitFor(/server-listening/, 15_000);
    const r = await pc.ctun(['client', '10.80.0.2', '--transport', 'tcp'], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toContain('ctun: error: the server rejected this client (VersionMismatch): protocol version 2 is not supported; this server speaks version 1');
    expect(r.stderr).toContain('ctun: hint: upgrade the server: it speaks protocol version 1 at most, this client 2');
  });

  it('a v2 client against a v1 server over udp: says "upgrade the server" and keeps retrying (an unechoed error may be spoofed)', async () => {
    const { pc, sim } = await pcAndSim();
    const server = scope.track(spawnV1(sim, ['server']));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', '10.80.0.2']));
    const line = await client.waitFor(/ERROR version-mismatch .*/, 15_000);
    expect(line).toContain('reason="protocol version 2 is not supported; this server speaks version 1"');
    expect(line).toContain('hint="upgrade the server: it speaks protocol version 1 at most, this client 2"');
    await client.waitFor(/reconnect-scheduled .*version mismatch/, 5000);
    expect(client.output).not.toContain('client-connected');
    expect(await client.stop()).toBe(0);
  });
});
