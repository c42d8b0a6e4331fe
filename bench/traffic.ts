/**
 * The active load generator (issue 18, aggregate throughput): one process speaking
 * the tunnel protocol for N separate-mode clients, each naming its own `--dest` in
 * its hello and then sending real frames — IPv4/UDP packets of the tunnel MTU, as a
 * client's kernel would write them to its TAP — as fast as the load allows. The
 * server's kernel forwards and masquerades them like any client's; what arrives at
 * the destinations is the aggregate throughput (bench/aggregate.ts counts it there).
 *
 * Why not N real `ctun client` processes with iperf3 behind them: 32 Node processes
 * and 64 iperf3 processes on two cores would measure the machine's scheduling, not
 * the server; and the sending side would cost more with every client. Here the
 * sending side is one process whose work per frame is the same for 1 or 32 clients
 * (each client's socket is the real client's: the addon's batch socket, connected,
 * frames sent in equal-sized runs as one GSO message), so any difference between 1
 * and 32 clients is the server's.
 *
 * The clients send as a TCP sender would: as fast as the server takes it. The signal
 * is the server's: its socket's receive buffer overflowing (UDP RcvbufErrors of this
 * network namespace, which the generator shares with the server). The total rate grows
 * while (almost) nothing overflows and shrinks by a fraction when more did (AIMD), shared
 * evenly by the clients in equal runs of frames. Sending blindly instead would drop
 * nine frames of ten at the server's socket, and the kernel work of those drops would
 * take the CPU the server needs.
 *
 * Each client has its own loopback source address (a few per address, as loadgen.ts),
 * its own MAC and tunnel address, and answers ARP for that address. Bounded: at most
 * MAX_ACTIVE clients and MAX_SECONDS seconds, then a bye each.
 *
 *   tsx bench/traffic.ts --dests 10.251.0.10,10.251.0.11 --clients 8 --seconds 10 [--port 1723]
 * prints JSON lines: `established`, `sending` (the first burst left), `done` (figures).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { TUNNEL_DEFAULTS } from '../tools/common/index.js';
import { openDatagramSocket, type DatagramSocket } from '../tools/tunnel/link/index.js';
import { decodeDatagram, describeError, encode, FEATURES_NONE, MessageType, PROTOCOL_VERSION, TunnelMode, type Message } from '../tools/tunnel/protocol.js';
import { stableMac } from '../tools/tunnel/server.js';
import { arpReply, arpRequestFor, udpFrame } from './frames.js';
import { MAX_SECONDS, sourceAddress } from './loadgen.js';

/** Most active clients: the bench's grid goes to 32. */
export const MAX_ACTIVE = 64;
/** UDP port the frames are sent to at every destination (the discard port; the bench drops them there). */
export const SINK_PORT = 9;
/** Inner UDP source port of client i: SOURCE_PORT_BASE + i (so the target can tell the clients apart). */
export const SOURCE_PORT_BASE = 20_000;
/** Frames per client per send call: one GSO run, as a real client's batch at full rate. */
const BURST = 16;
/** How often the rate is adjusted, ms. */
const PACE_MS = 20;
/** Start rate, frames per second (all clients), and the bounds of the rate. */
const START_RATE = 20_000;
const MIN_RATE = 2_000;
const MAX_RATE = 2_000_000;
/** Additive increase per adjustment with no overflow (a fraction of the rate, plus a floor) and the decrease on overflow. */
const INCREASE = 0.03;
const INCREASE_FLOOR = 500;
const DECREASE = 0.85;
/** Loss in one interval that the rate tolerates: a shared machine deschedules the server now and then. */
const LOSS_TOLERATED = 0.02;

/** UDP receive-buffer overflows in this network namespace so far (/proc/net/snmp). */
export function udpRcvbufErrors(snmp = readFileSync('/proc/net/snmp', 'utf8')): number {
  const lines = snmp.split('\n').filter((l) => l.startsWith('Udp: '));
  if (lines.length < 2) throw new Error('no Udp lines in /proc/net/snmp');
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  const at = names.indexOf('RcvbufErrors');
  if (at < 0) throw new Error('no RcvbufErrors in /proc/net/snmp');
  return Number(values[at]);
}

/** Client i's tunnel address: 192.168.100.10 + i (the server has .1, a default client .100). */
export function clientTunnelAddress(i: number): string {
  return `192.168.100.${10 + i}`;
}

function clientMac(i: number): string {
  return `02:cb:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
}

export interface TrafficOptions {
  /** Server address, on loopback; default 127.0.0.1. */
  host?: string;
  port: number;
  /** Active clients, 1..MAX_ACTIVE. */
  clients: number;
  /** Destinations (IPv4); client i sends to dests[i % dests.length]. */
  dests: string[];
  /** How long to send, 1..MAX_SECONDS. */
  seconds: number;
  report?: (event: string, fields: Record<string, unknown>) => void;
  signal?: AbortSignal;
}

export interface TrafficFigures {
  clients: number;
  welcomed: number;
  refused: Record<string, number>;
  /** Frames that left each client's socket (the rest were refused by a full socket buffer). */
  sent: number[];
  /** Frames a full socket refused, all clients. */
  sendDrops: number;
  /** ARP requests answered (the server's kernel asking for a client's address). */
  arpAnswered: number;
  /** Seconds the send loop ran. */
  sendSeconds: number;
  /** Receive-buffer overflows at the server's socket while sending (what the pacing reacts to). */
  overflows: number;
  /** The paced rate at the end, frames per second (all clients). */
  finalRate: number;
}

interface ActiveClient {
  index: number;
  socket: DatagramSocket;
  id: Buffer;
  dest: string;
  state: 'hello' | 'welcomed' | 'refused';
  burst: Buffer[];
}

function checkOptions(o: TrafficOptions): void {
  const host = o.host ?? '127.0.0.1';
  if (!/^127\./.test(host)) throw new Error(`the load generator speaks only to loopback (127.0.0.0/8), got ${host}: run it inside the server's namespace`);
  if (!Number.isInteger(o.clients) || o.clients < 1 || o.clients > MAX_ACTIVE) throw new Error(`--clients must be 1-${MAX_ACTIVE}, got ${o.clients}`);
  if (o.dests.length === 0 || o.dests.some((d) => !/^\d+\.\d+\.\d+\.\d+$/.test(d))) throw new Error(`--dests must be IPv4 addresses separated by commas, got ${o.dests.join(',') || 'none'}`);
  if (!Number.isFinite(o.seconds) || o.seconds < 1 || o.seconds > MAX_SECONDS) throw new Error(`--seconds must be 1-${MAX_SECONDS}, got ${o.seconds}`);
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`--port must be 1-65535, got ${o.port}`);
}

/** Opens the sessions, sends for `seconds` once all are welcomed, says bye, and returns what it did. */
export async function runTraffic(o: TrafficOptions): Promise<TrafficFigures> {
  checkOptions(o);
  const host = o.host ?? '127.0.0.1';
  const serverMac = stableMac(TUNNEL_DEFAULTS.serverAddress);
  const figures: TrafficFigures = { clients: o.clients, welcomed: 0, refused: {}, sent: new Array<number>(o.clients).fill(0), sendDrops: 0, arpAnswered: 0, sendSeconds: 0, overflows: 0, finalRate: 0 };
  const clients: ActiveClient[] = [];
  let pingTimer: NodeJS.Timeout | undefined;
  const send = (c: ActiveClient, m: Message): void => void c.socket.sendDatagrams([encode(m)]);
  const hello = (c: ActiveClient): void =>
    send(c, { type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Separate, flags: FEATURES_NONE, mtu: TUNNEL_DEFAULTS.mtu, sessionId: c.id, destination: c.dest });
  const onMessage = (c: ActiveClient, m: Message): void => {
    if (m.type === MessageType.Welcome && c.state === 'hello') {
      c.state = 'welcomed';
      figures.welcomed++;
    } else if (m.type === MessageType.Error && c.state === 'hello') {
      c.state = 'refused';
      const name = describeError(m.code);
      figures.refused[name] = (figures.refused[name] ?? 0) + 1;
    } else if (m.type === MessageType.Data) {
      const asked = arpRequestFor(m.frame);
      if (asked === clientTunnelAddress(c.index)) {
        figures.arpAnswered++;
        c.socket.sendFrames([arpReply(m.frame, clientMac(c.index), asked)]);
      }
    }
  };
  try {
    for (let i = 0; i < o.clients; i++) {
      const socket = await openDatagramSocket({ family: 4, host: sourceAddress(i), connect: { address: host, port: o.port } });
      const dest = o.dests[i % o.dests.length]!;
      const frame = udpFrame({ srcMac: clientMac(i), dstMac: serverMac, srcIp: clientTunnelAddress(i), dstIp: dest, srcPort: SOURCE_PORT_BASE + i, dstPort: SINK_PORT, ipBytes: TUNNEL_DEFAULTS.mtu });
      const c: ActiveClient = { index: i, socket, id: randomBytes(16), dest, state: 'hello', burst: new Array<Buffer>(BURST).fill(frame) };
      clients.push(c);
      socket.onDatagram((datagram) => {
        try {
          for (const m of decodeDatagram(datagram)) onMessage(c, m);
        } catch {
          // Not ours to judge: something this generator does not read.
        }
      });
      hello(c);
    }
    // Every client welcomed (hellos repeated: the server rate-limits a burst of them), within 20 s.
    const helloDeadline = Date.now() + 20_000;
    while (clients.some((c) => c.state === 'hello') && Date.now() < helloDeadline && o.signal?.aborted !== true) {
      await new Promise((r) => setTimeout(r, 200));
      for (const c of clients) if (c.state === 'hello') hello(c);
    }
    o.report?.('established', { welcomed: figures.welcomed, refused: figures.refused });
    if (figures.welcomed !== o.clients) throw new Error(`only ${figures.welcomed} of ${o.clients} clients were welcomed (refused: ${JSON.stringify(figures.refused)})`);
    // Keepalives as a real client's, so no session is declared silent mid-run.
    pingTimer = setInterval(() => {
      for (const c of clients) send(c, { type: MessageType.Ping, nonce: BigInt(Date.now()) });
    }, 1000);
    const started = performance.now();
    const deadline = started + o.seconds * 1000;
    const overflows0 = udpRcvbufErrors();
    let rate = START_RATE;
    let overflowsSeen = overflows0;
    let sentSeen = 0;
    let paced = started;
    let last = started;
    let credit = 0;
    let next = 0;
    o.report?.('sending', { clients: o.clients, dests: new Set(clients.map((c) => c.dest)).size });
    while (performance.now() < deadline && o.signal?.aborted !== true) {
      const now = performance.now();
      // At most one adjustment's worth of credit: a stall is not made up in a burst.
      credit = Math.min(credit + (rate * (now - last)) / 1000, (rate * PACE_MS) / 1000);
      last = now;
      // Equal runs to each client in turn; the turn carries over, so every client gets its share.
      while (credit >= BURST) {
        const c = clients[next]!;
        next = (next + 1) % clients.length;
        const left = c.socket.sendFrames(c.burst);
        figures.sent[c.index]! += left;
        figures.sendDrops += BURST - left;
        credit -= BURST;
      }
      if (now - paced >= PACE_MS) {
        paced = now;
        const overflows = udpRcvbufErrors();
        const sent = figures.sent.reduce((a, b) => a + b, 0);
        // An overflow drops one GRO run (up to a BURST of frames): the loss, at most, of this interval.
        const loss = ((overflows - overflowsSeen) * BURST) / Math.max(1, sent - sentSeen);
        rate = loss > LOSS_TOLERATED ? Math.max(MIN_RATE, rate * DECREASE) : Math.min(MAX_RATE, rate * (1 + INCREASE) + INCREASE_FLOOR);
        overflowsSeen = overflows;
        sentSeen = sent;
      }
      // Let replies (pongs, ARP) in between runs.
      await yieldToLoop();
    }
    figures.sendSeconds = (performance.now() - started) / 1000;
    figures.overflows = udpRcvbufErrors() - overflows0;
    figures.finalRate = Math.round(rate);
    return figures;
  } finally {
    clearInterval(pingTimer);
    // The byes after the server has drained its socket (a bye lost in a full buffer
    // would hold the session until it is declared silent), twice for good measure.
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 2; i++) {
      for (const c of clients) if (c.state === 'welcomed') send(c, { type: MessageType.Bye, reason: 'load generator done' });
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of clients) await c.socket.close();
  }
}

function parseArgs(argv: string[]): TrafficOptions {
  const o: TrafficOptions = { port: TUNNEL_DEFAULTS.port, clients: 1, dests: [], seconds: 10 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--host') o.host = value;
    else if (flag === '--port') o.port = Number(value);
    else if (flag === '--clients') o.clients = Number(value);
    else if (flag === '--dests') o.dests = value.split(',').filter(Boolean);
    else if (flag === '--seconds') o.seconds = Number(value);
    else throw new Error(`unknown argument ${flag} (--host, --port, --clients, --dests, --seconds)`);
  }
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const line = (event: string, fields: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  process.once('SIGINT', () => stop.abort());
  try {
    const figures = await runTraffic({ ...parseArgs(process.argv.slice(2)), report: line, signal: stop.signal });
    line('done', { ...figures });
  } catch (e) {
    process.stderr.write(`traffic: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
