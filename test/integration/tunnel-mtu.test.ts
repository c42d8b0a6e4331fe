/**
 * Inner TCP through the tunnel never needs fragments and never meets a black hole:
 * 50 MB cross each transport, plain and with --tls (sealed datagrams are 29 bytes
 * longer), intact (sha256 of what was sent equals what arrived), and neither
 * namespace's kernel fragmented or reassembled a single outer packet.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { link, netnsUnavailable, Scope, type Netns } from './harness/netns.js';
import { clientTlsArgs, makePki, removePki, serverTlsArgs } from './harness/pki.js';
import { tcpTransfer } from './harness/transfer.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

const BYTES = 50 * 1024 * 1024;

/** Outer IP fragmentation and reassembly counters of a namespace's kernel. */
async function fragCounters(ns: Netns): Promise<{ fragCreates: number; reasmReqds: number }> {
  const snmp = (await ns.exec('cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = snmp[0]!.split(/\s+/);
  const values = snmp[1]!.split(/\s+/).map(Number);
  const get = (k: string): number => values[names.indexOf(k)]!;
  return { fragCreates: get('FragCreates'), reasmReqds: get('ReasmReqds') };
}


describe.skipIf(skip)('tunnel MTU', () => {
  let pki = '';
  beforeAll(async () => {
    pki = await makePki({ serverNames: ['10.78.0.2'], clients: ['alice'] });
  });
  afterAll(() => removePki(pki));

  for (const [transport, tls] of [['udp', false], ['tcp', false], ['udp', true], ['tcp', true]] as const) {
    it(`over ${transport}${tls ? ' --tls' : ''}: 50 MB of inner TCP arrive intact without a single fragment`, async () => {
      const sim = await scope.ns('sim');
      const pc = await scope.ns('pc');
      // The underlay is a plain 1500-byte Ethernet, as between a PC and a container host.
      await link(pc, '10.78.0.1/24', sim, '10.78.0.2/24');
      await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
      const server = scope.track(sim.spawnCtun(['server', '--transport', transport, ...(tls ? serverTlsArgs(pki) : [])]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', '10.78.0.2', '--transport', transport, ...(tls ? clientTlsArgs(pki, 'alice') : [])]));
      await client.waitFor(/client-connected/, 15_000);
      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);

      const before = [await fragCounters(pc), await fragCounters(sim)];
      const { sent, received } = await tcpTransfer(scope, pc, sim, TUNNEL_DEFAULTS.serverAddress, BYTES);

      expect(sent.error).toBeUndefined();
      expect(received).toEqual({ bytes: BYTES, sha256: sent.sha256 });
      const after = [await fragCounters(pc), await fragCounters(sim)];
      for (let i = 0; i < 2; i++) {
        expect(after[i]!.fragCreates - before[i]!.fragCreates).toBe(0);
        expect(after[i]!.reasmReqds - before[i]!.reasmReqds).toBe(0);
      }
    }, 180_000);
  }
});
