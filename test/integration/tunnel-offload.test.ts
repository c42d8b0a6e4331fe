/**
 * The TAP offloads (--offload) between real TAPs in namespaces: 50 MB of inner TCP
 * cross intact both ways (sha256 of what was sent equals what arrived) and a UDP
 * stream arrives with every datagram intact and no checksum error at the receiver,
 * with offloads on at both ends, off at both, and on at one end only, neither
 * namespace fragmenting an outer packet. The TAPs' own counters show the offloads
 * were really used: an end with them reads and writes packets far larger than a
 * frame (super-segments); an end without, frames.
 *
 * The matrix covers each axis without the full product: offloads (on/on, off/off,
 * client off, server off) × transport (udp, tcp) × --tls (on, off) × inner (TCP
 * always, UDP on two rows, inner TCP over IPv6 on one).
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { netnsUnavailable, NODE, pcAndSim, Scope, type Netns } from './harness/netns.js';
import { clientTlsArgs, makePki, removePki, serverTlsArgs } from './harness/pki.js';
import { lastJson, tcpTransfer } from './harness/transfer.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

const BYTES = 50 * 1024 * 1024;
const FRAME_MAX = TUNNEL_DEFAULTS.mtu + 14;

// UDP: each datagram is [sha256 of the rest (32 bytes)][sequence (4)][random]; the
// receiver counts the ones that arrive and the ones whose hash does not match.
const UDP_RECEIVER = `
const dgram = require('node:dgram'); const crypto = require('node:crypto');
let received = 0, damaged = 0, bytes = 0;
const s = dgram.createSocket('udp4');
s.on('message', (m) => {
  if (m.length === 1) { console.log(JSON.stringify({ received, damaged, bytes })); process.exit(0); }
  received++; bytes += m.length;
  if (!crypto.createHash('sha256').update(m.subarray(32)).digest().equals(m.subarray(0, 32))) damaged++;
});
setTimeout(() => { console.log(JSON.stringify({ received, damaged, bytes, timeout: true })); process.exit(0); }, 30000).unref();
s.bind(0, '0.0.0.0', () => console.log(JSON.stringify({ port: s.address().port })));
`;

// Sends COUNT datagrams of 36..1335 bytes (each fits the TAP MTU whole: no inner fragment), paced in bursts,
// then an end marker a few times.
const UDP_SENDER = `
const dgram = require('node:dgram'); const crypto = require('node:crypto');
const [host, port, count] = process.argv.slice(1);
const s = dgram.createSocket('udp4'); let i = 0;
const burst = () => {
  for (let k = 0; k < 20 && i < Number(count); k++, i++) {
    const body = crypto.randomBytes(4 + (i * 97) % 1300); body.writeUInt32BE(i, 0);
    s.send(Buffer.concat([crypto.createHash('sha256').update(body).digest(), body]), Number(port), host);
  }
  if (i < Number(count)) return setTimeout(burst, 2);
  let n = 0; const end = setInterval(() => { s.send(Buffer.from([0]), Number(port), host); if (++n === 5) { clearInterval(end); setTimeout(() => process.exit(0), 100); } }, 200);
};
burst();
`;

const UDP_COUNT = 4000;

/** Outer IP fragmentation and reassembly counters, and UDP checksum errors, of a namespace's kernel. */
async function counters(ns: Netns): Promise<{ fragCreates: number; reasmReqds: number; udpCsumErrors: number }> {
  const lines = (await ns.exec('cat', ['/proc/net/snmp'])).stdout.split('\n');
  const table = (prefix: string): ((k: string) => number) => {
    const rows = lines.filter((l) => l.startsWith(prefix));
    const names = rows[0]!.split(/\s+/);
    const values = rows[1]!.split(/\s+/).map(Number);
    return (k) => values[names.indexOf(k)]!;
  };
  const ip = table('Ip:');
  const udp = table('Udp:');
  return { fragCreates: ip('FragCreates'), reasmReqds: ip('ReasmReqds'), udpCsumErrors: udp('InCsumErrors') };
}

/** A TAP's packet and byte counters: tx is what the kernel handed ctun (ctun's reads), rx what ctun wrote. */
async function tapCounters(ns: Netns, tap: string): Promise<{ txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }> {
  const read = async (k: string): Promise<number> => Number((await ns.exec('cat', [`/sys/class/net/${tap}/statistics/${k}`])).stdout.trim());
  return { txPackets: await read('tx_packets'), txBytes: await read('tx_bytes'), rxPackets: await read('rx_packets'), rxBytes: await read('rx_bytes') };
}


interface Row {
  client: 'on' | 'off';
  server: 'on' | 'off';
  transport: 'udp' | 'tcp';
  tls: boolean;
  udp: boolean;
  /** Also 50 MB of inner TCP over IPv6 (TSO6), one way. */
  v6?: boolean;
}

const ROWS: Row[] = [
  { client: 'on', server: 'on', transport: 'udp', tls: false, udp: true, v6: true },
  { client: 'on', server: 'on', transport: 'tcp', tls: true, udp: false },
  { client: 'off', server: 'on', transport: 'udp', tls: true, udp: false },
  { client: 'on', server: 'off', transport: 'tcp', tls: false, udp: true },
  { client: 'off', server: 'off', transport: 'udp', tls: false, udp: false },
];

describe.skipIf(skip)('tunnel offloads', () => {
  let pki = '';
  beforeAll(async () => {
    pki = await makePki({ serverNames: ['10.79.0.2'], clients: ['alice'] });
  });
  afterAll(() => removePki(pki));

  for (const row of ROWS) {
    const title = `client --offload ${row.client}, server --offload ${row.server}, over ${row.transport}${row.tls ? ' --tls' : ''}`;
    it(`${title}: 50 MB of TCP intact both ways${row.udp ? ', a UDP stream intact' : ''}, no fragment, super-segments only where on`, async () => {
      const { pc, sim } = await pcAndSim(scope);
      const tls = (role: 'server' | 'client'): string[] => (row.tls ? (role === 'server' ? serverTlsArgs(pki) : clientTlsArgs(pki, 'alice')) : []);
      const server = scope.track(sim.spawnCtun(['server', '--transport', row.transport, '--offload', row.server, ...tls('server')]));
      await server.waitFor(/server-listening/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', row.transport, '--offload', row.client, ...tls('client')]));
      await client.waitFor(/client-connected/, 15_000);
      // Each end says what it got.
      expect(server.output).toMatch(new RegExp(`tap-offload.*offload[=":]+${row.server}`));
      expect(client.output).toMatch(new RegExp(`tap-offload.*offload[=":]+${row.client}`));
      expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);

      const taps: [Netns, string, 'on' | 'off'][] = [[pc, TUNNEL_DEFAULTS.clientTap, row.client], [sim, TUNNEL_DEFAULTS.serverTap, row.server]];
      const before = await Promise.all([counters(pc), counters(sim)]);
      // 50 MB each way: from the sending end's TAP (read by its ctun) to the receiving one's (written by its ctun).
      for (const [from, to, target] of [[pc, sim, TUNNEL_DEFAULTS.serverAddress], [sim, pc, TUNNEL_DEFAULTS.clientAddress.split('/')[0]!]] as const) {
        const tapsBefore = await Promise.all(taps.map(([ns, tap]) => tapCounters(ns, tap)));
        const { sent, received } = await tcpTransfer(scope, from, to, target, BYTES);
        expect(sent.error).toBeUndefined();
        expect(received).toEqual({ bytes: BYTES, sha256: sent.sha256 });

        const tapsAfter = await Promise.all(taps.map(([ns, tap]) => tapCounters(ns, tap)));
        const sendingTap = from === pc ? 0 : 1;
        const receivingTap = 1 - sendingTap;
        // Mean size of what the sending ctun read, and of what the receiving ctun wrote.
        const read = (tapsAfter[sendingTap]!.txBytes - tapsBefore[sendingTap]!.txBytes) / (tapsAfter[sendingTap]!.txPackets - tapsBefore[sendingTap]!.txPackets);
        const written = (tapsAfter[receivingTap]!.rxBytes - tapsBefore[receivingTap]!.rxBytes) / (tapsAfter[receivingTap]!.rxPackets - tapsBefore[receivingTap]!.rxPackets);
        if (taps[sendingTap]![2] === 'on') expect(read).toBeGreaterThan(2 * FRAME_MAX);
        else expect(read).toBeLessThanOrEqual(FRAME_MAX);
        if (taps[receivingTap]![2] === 'on') expect(written).toBeGreaterThan(2 * FRAME_MAX);
        else expect(written).toBeLessThanOrEqual(FRAME_MAX);
      }

      if (row.v6) {
        // Inner TCP over IPv6 between the TAPs: super-segments of TSO6, cut and coalesced.
        await pc.exec('ip', ['-6', 'addr', 'add', 'fd79::1/64', 'dev', TUNNEL_DEFAULTS.clientTap, 'nodad']);
        await sim.exec('ip', ['-6', 'addr', 'add', 'fd79::2/64', 'dev', TUNNEL_DEFAULTS.serverTap, 'nodad']);
        const tapBefore = await tapCounters(pc, TUNNEL_DEFAULTS.clientTap);
        const { sent, received } = await tcpTransfer(scope, pc, sim, 'fd79::2', BYTES, '::');
        expect(sent.error).toBeUndefined();
        expect(received).toEqual({ bytes: BYTES, sha256: sent.sha256 });
        const tapAfter = await tapCounters(pc, TUNNEL_DEFAULTS.clientTap);
        expect((tapAfter.txBytes - tapBefore.txBytes) / (tapAfter.txPackets - tapBefore.txPackets)).toBeGreaterThan(2 * FRAME_MAX);
      }

      if (row.udp) {
        for (const [from, to, target] of [[pc, sim, TUNNEL_DEFAULTS.serverAddress], [sim, pc, TUNNEL_DEFAULTS.clientAddress.split('/')[0]!]] as const) {
          const receiver = scope.track(to.spawn(NODE, ['-e', UDP_RECEIVER], { label: 'udp receiver' }));
          const port = JSON.parse(await receiver.waitFor(/\{"port":\d+\}/, 10_000)).port as number;
          await from.exec(NODE, ['-e', UDP_SENDER, target, String(port), String(UDP_COUNT)], { timeout: 30_000 });
          await receiver.waitFor(/"received"/, 10_000);
          const got = lastJson(receiver.output) as { received: number; damaged: number };
          // UDP may drop under load; what arrives must be whole.
          expect(got.damaged).toBe(0);
          expect(got.received).toBeGreaterThan(UDP_COUNT / 2);
        }
      }

      const after = await Promise.all([counters(pc), counters(sim)]);
      for (let i = 0; i < 2; i++) {
        expect(after[i]!.fragCreates - before[i]!.fragCreates).toBe(0);
        expect(after[i]!.reasmReqds - before[i]!.reasmReqds).toBe(0);
        expect(after[i]!.udpCsumErrors - before[i]!.udpCsumErrors).toBe(0);
      }
    }, 240_000);
  }
});
