/**
 * The destinations' side of the aggregate bench's down direction: run in the target
 * namespace, it answers each client's flow from that client's destination — from
 * DEST:SINK_PORT to the address the server's NAT gave the flow (the server's underlay
 * address, the client's source port kept) — so the frames take the real return path:
 * the server's conntrack undoes the NAT, its kernel writes them to the TAP, the server
 * switches them to the client's session. Full-sized UDP datagrams, equal runs to each
 * client in turn (one GSO message each, the addon's batch socket), paced on the loss
 * in the server's namespace (bench/pacer.ts): its TAP's transmit drops (the server
 * reads too slowly) and UDP receive-buffer overflows (the generator's sockets).
 *
 *   tsx bench/downstream.ts --clients 8 --dests 10.251.0.10,... --nat 10.251.0.1 --watch-pid PID --tap ctun0 --seconds 8
 * prints JSON lines `sending`, then `done` with what it sent. Bounded by MAX_SECONDS.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { BatchUdpSocket, ipToInt } from '../tools/tunnel/link/batch-udp.js';
import { TUNNEL_DEFAULTS } from '../tools/common/index.js';
import { MAX_SECONDS } from './loadgen.js';
import { Pacer, txDropped, udpRcvbufErrors } from './pacer.js';
import { isMain, runAsProgram, type Report } from './program.js';
import { MAX_ACTIVE, SINK_PORT, SOURCE_PORT_BASE } from './traffic.js';

/** Datagrams per client per send call: one GSO run. */
const RUN = 16;
/** UDP payload that makes an IP packet of the tunnel MTU. */
const PAYLOAD = TUNNEL_DEFAULTS.mtu - 28;

interface DownOptions {
  clients: number;
  dests: string[];
  /** The server's underlay address, which the NAT gives every client's flow. */
  nat: string;
  /** A process in the server's namespace (the server), whose /proc shows that namespace's counters. */
  watchPid: number;
  tap: string;
  seconds: number;
  report?: Report;
  signal?: AbortSignal;
}

export async function runDownstream(o: DownOptions): Promise<{ sent: number; finalRate: number; seconds: number }> {
  if (!Number.isInteger(o.clients) || o.clients < 1 || o.clients > MAX_ACTIVE) throw new Error(`--clients must be 1-${MAX_ACTIVE}, got ${o.clients}`);
  if (o.dests.length === 0) throw new Error('--dests: give at least one destination address');
  if (!Number.isFinite(o.seconds) || o.seconds < 1 || o.seconds > MAX_SECONDS) throw new Error(`--seconds must be 1-${MAX_SECONDS}, got ${o.seconds}`);
  const sockets = new Map<string, BatchUdpSocket>();
  try {
    for (const d of new Set(o.dests.slice(0, o.clients))) sockets.set(d, BatchUdpSocket.bind(d, SINK_PORT));
    const run = new Array<Buffer>(RUN).fill(Buffer.alloc(PAYLOAD, 0x5a));
    const nat = ipToInt(o.nat);
    const flows = Array.from({ length: o.clients }, (_, i) => ({ socket: sockets.get(o.dests[i % o.dests.length]!)!, port: SOURCE_PORT_BASE + i }));
    const lost = (): number => txDropped(o.watchPid, o.tap) + udpRcvbufErrors(o.watchPid);
    const started = performance.now();
    const pacer = new Pacer(lost, started);
    const deadline = started + o.seconds * 1000;
    let sent = 0;
    let next = 0;
    o.report?.('sending', { flows: flows.length });
    while (performance.now() < deadline && o.signal?.aborted !== true) {
      const now = performance.now();
      for (let n = pacer.allowance(now, RUN); n > 0; n -= RUN) {
        const f = flows[next]!;
        next = (next + 1) % flows.length;
        sent += f.socket.sendDatagrams(run, nat, f.port);
      }
      pacer.adjust(now, sent);
      await yieldToLoop();
    }
    return { sent, finalRate: Math.round(pacer.rate), seconds: (performance.now() - started) / 1000 };
  } finally {
    for (const s of sockets.values()) s.close();
  }
}

function parseArgs(argv: string[]): DownOptions {
  const o: DownOptions = { clients: 1, dests: [], nat: '', watchPid: 0, tap: TUNNEL_DEFAULTS.serverTap, seconds: 10 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--clients') o.clients = Number(value);
    else if (flag === '--dests') o.dests = value.split(',').filter(Boolean);
    else if (flag === '--nat') o.nat = value;
    else if (flag === '--watch-pid') o.watchPid = Number(value);
    else if (flag === '--tap') o.tap = value;
    else if (flag === '--seconds') o.seconds = Number(value);
    else throw new Error(`unknown argument ${flag} (--clients, --dests, --nat, --watch-pid, --tap, --seconds)`);
  }
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(o.nat)) throw new Error(`--nat must be the server's underlay IPv4 address, got "${o.nat}"`);
  if (!Number.isInteger(o.watchPid) || o.watchPid < 1) throw new Error(`--watch-pid must be the server's process id, got ${o.watchPid}`);
  return o;
}

if (isMain(import.meta.url)) await runAsProgram('downstream', (report, signal) => runDownstream({ ...parseArgs(process.argv.slice(2)), report, signal }));
