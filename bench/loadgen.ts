/**
 * Load generator: one process speaking the tunnel protocol (plain UDP, v2) for many
 * sessions, each from its own socket, so the server sees many peers. It says hello,
 * then pings at the keepalive the welcome names, and never sends a frame: it measures
 * what sessions cost a server, not the data path.
 *
 * Sources are loopback addresses (127.0.0.0/8 is all local on Linux, in every network
 * namespace), a few sessions per address, so the server's per-source limits (hello
 * rate, sessions per address) see a site's many hosts rather than one flooding host.
 * Bounded: at most MAX_SESSIONS sessions and MAX_SECONDS seconds, then a bye each.
 *
 * As a program (the integration test and the bench run it inside a namespace):
 *   tsx bench/loadgen.ts --port 1723 --sessions 200 --seconds 20 [--host 127.0.0.1]
 * prints one JSON line per event: `established` (every session welcomed or refused),
 * `held` once a second, `done` at the end.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { decodeDatagram, describeError, encode, FEATURES_NONE, MessageType, PROTOCOL_VERSION, TunnelMode, type Message } from '../tools/tunnel/protocol.js';
import { isMain, runAsProgram } from './program.js';

export const MAX_SESSIONS = 5000;
export const MAX_SECONDS = 300;
/** Sessions that share one source address: under the server's default per-source cap (16) and hello burst (10). */
const SESSIONS_PER_ADDRESS = 8;
/** A hello unanswered this long is said again (the server may have rate-limited it). */
const HELLO_REPEAT_MS = 500;
/** A session is held while its last pong is younger than this many keepalive intervals. */
const HELD_WITHIN_INTERVALS = 3;

export interface LoadOptions {
  /** Server address, on loopback; default 127.0.0.1. */
  host?: string;
  port: number;
  /** Sessions to open, 1..MAX_SESSIONS. */
  sessions: number;
  /** How long to hold them, 1..MAX_SECONDS. */
  seconds: number;
  /** Told once a second (and at `established`); the CLI prints it as a JSON line. */
  report?: (event: string, fields: Record<string, unknown>) => void;
  /** Ends the run early (sessions still say bye). */
  signal?: AbortSignal;
}

export interface LoadFigures {
  sessions: number;
  welcomed: number;
  /** Sessions the server refused, by error code name (e.g. ServerFull). */
  refused: Record<string, number>;
  /** Sessions answered lately: a pong within HELD_WITHIN_INTERVALS keepalives (a welcome alone is not held). */
  held: number;
  pings: number;
  pongs: number;
  /** From the first hello until every session was welcomed or refused; undefined if that never happened. */
  establishedMs: number | undefined;
}

interface LoadSession {
  socket: dgram.Socket;
  id: Buffer;
  state: 'hello' | 'welcomed' | 'refused';
  keepaliveMs: number;
  lastPong: number;
  pingTimer?: NodeJS.Timeout;
}

export function sourceAddress(index: number): string {
  const n = Math.floor(index / SESSIONS_PER_ADDRESS) + 1;
  return `127.1.${(n >> 8) & 255}.${n & 255}`;
}

function checkOptions(o: LoadOptions): void {
  const host = o.host ?? '127.0.0.1';
  if (!/^127\./.test(host)) throw new Error(`the load generator speaks only to loopback (127.0.0.0/8), got ${host}: run it inside the server's namespace`);
  if (!Number.isInteger(o.sessions) || o.sessions < 1 || o.sessions > MAX_SESSIONS) throw new Error(`--sessions must be 1-${MAX_SESSIONS}, got ${o.sessions}`);
  if (!Number.isFinite(o.seconds) || o.seconds < 1 || o.seconds > MAX_SECONDS) throw new Error(`--seconds must be 1-${MAX_SECONDS}, got ${o.seconds}`);
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`--port must be 1-65535, got ${o.port}`);
}

/** Opens the sessions, holds them for `seconds`, says bye, and returns what it saw. */
export async function runLoad(o: LoadOptions): Promise<LoadFigures> {
  checkOptions(o);
  const host = o.host ?? '127.0.0.1';
  const sessions: LoadSession[] = [];
  const figures: LoadFigures = { sessions: o.sessions, welcomed: 0, refused: {}, held: 0, pings: 0, pongs: 0, establishedMs: undefined };
  const started = Date.now();
  const send = (s: LoadSession, m: Message): void => s.socket.send(encode(m), o.port, host);
  const hello = (s: LoadSession): void => send(s, { type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Local, flags: FEATURES_NONE, mtu: 1400, sessionId: s.id, destination: undefined });
  let settled = 0;
  const settle = (): void => {
    if (++settled === o.sessions) {
      figures.establishedMs = Date.now() - started;
      o.report?.('established', { welcomed: figures.welcomed, refused: figures.refused, ms: figures.establishedMs });
    }
  };
  const onMessage = (s: LoadSession, m: Message): void => {
    if (m.type === MessageType.Welcome && s.state === 'hello') {
      s.state = 'welcomed';
      s.keepaliveMs = m.keepaliveMs;
      figures.welcomed++;
      settle();
      // Pings start at a random phase, as independent clients' do.
      const ping = (): void => {
        figures.pings++;
        send(s, { type: MessageType.Ping, nonce: BigInt(Date.now()) });
      };
      setTimeout(() => {
        if (s.state !== 'welcomed') return;
        ping();
        s.pingTimer = setInterval(ping, s.keepaliveMs);
      }, Math.random() * s.keepaliveMs);
    } else if (m.type === MessageType.Pong) {
      figures.pongs++;
      s.lastPong = Date.now();
    } else if (m.type === MessageType.Error && s.state === 'hello') {
      s.state = 'refused';
      const name = describeError(m.code);
      figures.refused[name] = (figures.refused[name] ?? 0) + 1;
      settle();
    }
  };
  try {
    for (let i = 0; i < o.sessions; i++) {
      const socket = dgram.createSocket('udp4');
      const s: LoadSession = { socket, id: randomBytes(16), state: 'hello', keepaliveMs: 1000, lastPong: 0 };
      sessions.push(s);
      socket.on('message', (datagram) => {
        try {
          for (const m of decodeDatagram(datagram)) onMessage(s, m);
        } catch {
          // Not ours to judge: the server sent something this generator does not read.
        }
      });
      socket.on('error', () => {});
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, sourceAddress(i), () => {
          socket.off('error', reject);
          resolve();
        });
      });
      hello(s);
    }
    const deadline = started + o.seconds * 1000;
    while (Date.now() < deadline && o.signal?.aborted !== true) {
      await new Promise((r) => setTimeout(r, Math.min(HELLO_REPEAT_MS, deadline - Date.now())));
      for (const s of sessions) if (s.state === 'hello') hello(s);
      figures.held = countHeld(sessions);
      o.report?.('held', { held: figures.held, welcomed: figures.welcomed, refused: figures.refused, pings: figures.pings, pongs: figures.pongs });
    }
    figures.held = countHeld(sessions);
    return figures;
  } finally {
    for (const s of sessions) {
      clearInterval(s.pingTimer);
      if (s.state === 'welcomed') send(s, { type: MessageType.Bye, reason: 'load generator done' });
      s.state = 'refused';
    }
    // Let the byes leave before the sockets close.
    await new Promise((r) => setTimeout(r, 50));
    for (const s of sessions) s.socket.close();
  }
}

function countHeld(sessions: LoadSession[]): number {
  const now = Date.now();
  return sessions.filter((s) => s.state === 'welcomed' && s.lastPong > 0 && now - s.lastPong <= HELD_WITHIN_INTERVALS * s.keepaliveMs).length;
}

function parseArgs(argv: string[]): LoadOptions {
  const o: LoadOptions = { port: 1723, sessions: 100, seconds: 10 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--host') o.host = value;
    else if (flag === '--port') o.port = Number(value);
    else if (flag === '--sessions') o.sessions = Number(value);
    else if (flag === '--seconds') o.seconds = Number(value);
    else throw new Error(`unknown argument ${flag} (--host, --port, --sessions, --seconds)`);
  }
  return o;
}

if (isMain(import.meta.url)) await runAsProgram('loadgen', (report, signal) => runLoad({ ...parseArgs(process.argv.slice(2)), report, signal }));
