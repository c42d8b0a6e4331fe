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
 * The clients send as a TCP sender would: as fast as the server takes it (bench/pacer.ts),
 * the signal being the server's socket overflowing (UDP RcvbufErrors of this network
 * namespace, which the generator shares with the server).
 *
 * `--direction down` turns it round: the clients send only a frame a second to their
 * destination (so the server's NAT has the flow) and count what comes back through
 * the tunnel; bench/downstream.ts, at the destinations, sends it.
 *
 * Each client has its own loopback source address (a few per address, as loadgen.ts),
 * its own MAC and tunnel address, and answers ARP for that address. Bounded: at most
 * MAX_ACTIVE clients and MAX_SECONDS seconds, then a bye each.
 *
 *   tsx bench/traffic.ts --dests 10.251.0.10,10.251.0.11 --clients 8 --seconds 10 [--port 1723] [--direction up|down]
 * prints JSON lines: `established`, `sending` (the first burst left), `received` (down:
 * every 500 ms, bytes so far per client and the generator's clock), `done` (figures).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { TUNNEL_DEFAULTS } from '../tools/common/index.js';
import { openDatagramSocket, type DatagramSocket } from '../tools/tunnel/link/index.js';
import { decodeDatagram, describeError, encode, FEATURES_NONE, MessageType, PROTOCOL_VERSION, TunnelMode, type Message } from '../tools/tunnel/protocol.js';
import { stableMac } from '../tools/tunnel/server.js';
import { arpReply, arpRequestFor, udpFrame } from './frames.js';
import { MAX_SECONDS, sourceAddress } from './loadgen.js';
import { Pacer, udpRcvbufErrors } from './pacer.js';
import { isMain, runAsProgram } from './program.js';

/** Most active clients: the bench's grid goes to 32. */
export const MAX_ACTIVE = 64;
/** UDP port the frames are sent to at every destination (the discard port; the bench drops them there). */
export const SINK_PORT = 9;
/** Inner UDP source port of client i: SOURCE_PORT_BASE + i (so the target can tell the clients apart). */
export const SOURCE_PORT_BASE = 20_000;
const ETH_HEADER = 14;
/** Down: how often the flows are renewed at the NAT, and the counts reported, ms. */
const DOWN_PRIME_MS = 1000;
const DOWN_REPORT_MS = 500;
/** Frames per client per send call: one GSO run, as a real client's batch at full rate. */
const BURST = 16;
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
  /** up (default): the clients send to their destinations; down: they count what the destinations send them. */
  direction?: 'up' | 'down';
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
  /** Down: IP bytes each client received through the tunnel. */
  received: number[];
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
  const figures: TrafficFigures = { clients: o.clients, welcomed: 0, refused: {}, sent: new Array<number>(o.clients).fill(0), sendDrops: 0, arpAnswered: 0, sendSeconds: 0, overflows: 0, finalRate: 0, received: new Array<number>(o.clients).fill(0) };
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
      if (m.frame.length > ETH_HEADER + 28) figures.received[c.index]! += m.frame.length - ETH_HEADER;
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
    if (o.direction === 'down') {
      // The flows must be at the server's NAT before the destinations answer: a reply
      // that comes first is a flow of its own there, and the client's flow then gets
      // another port, which the destination never sends to.
      for (const c of clients) figures.sent[c.index]! += c.socket.sendFrames(c.burst.slice(0, 1));
      await new Promise((r) => setTimeout(r, 300));
    }
    o.report?.('sending', { clients: o.clients, dests: new Set(clients.map((c) => c.dest)).size, direction: o.direction ?? 'up' });
    if (o.direction === 'down') {
      await countDown(clients, figures, deadline, o);
    } else {
      // An overflow drops one GRO run: count it as a whole run lost.
      const pacer = new Pacer(() => udpRcvbufErrors() * BURST, started);
      let next = 0;
      let sent = 0;
      while (performance.now() < deadline && o.signal?.aborted !== true) {
        const now = performance.now();
        // Equal runs to each client in turn; the turn carries over, so every client gets its share.
        for (let n = pacer.allowance(now, BURST); n > 0; n -= BURST) {
          const c = clients[next]!;
          next = (next + 1) % clients.length;
          const left = c.socket.sendFrames(c.burst);
          figures.sent[c.index]! += left;
          figures.sendDrops += BURST - left;
          sent += left;
        }
        pacer.adjust(now, sent);
        // Let replies (pongs, ARP) in between runs.
        await yieldToLoop();
      }
      figures.finalRate = Math.round(pacer.rate);
    }
    figures.sendSeconds = (performance.now() - started) / 1000;
    figures.overflows = udpRcvbufErrors() - overflows0;
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

/** Down: a frame a second from each client keeps its flow at the NAT; the counts go out twice a second. */
async function countDown(clients: ActiveClient[], figures: TrafficFigures, deadline: number, o: TrafficOptions): Promise<void> {
  let primed = performance.now();
  while (performance.now() < deadline && o.signal?.aborted !== true) {
    const now = performance.now();
    if (now - primed >= DOWN_PRIME_MS) {
      primed = now;
      for (const c of clients) figures.sent[c.index]! += c.socket.sendFrames(c.burst.slice(0, 1));
    }
    o.report?.('received', { at: now, bytes: [...figures.received] });
    await new Promise((r) => setTimeout(r, DOWN_REPORT_MS));
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
    else if (flag === '--direction' && (value === 'up' || value === 'down')) o.direction = value;
    else throw new Error(`unknown argument ${flag} ${value} (--host, --port, --clients, --dests, --seconds, --direction up|down)`);
  }
  return o;
}

if (isMain(import.meta.url)) await runAsProgram('traffic', (report, signal) => runTraffic({ ...parseArgs(process.argv.slice(2)), report, signal }));
