/**
 * The one client of the stand-in's protocols: what a tool on the PC (ControlDesk and
 * friends) does with the simulator, reduced to the parts a tunnel must carry. Ask the
 * port mapper for servers on ports chosen at run time and talk to them, receive XCP
 * data nobody asked for, find the simulator by broadcast. Every wait is bounded. The
 * demo's PC session and the stand-in's own tests both talk through it.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { createInterface } from 'node:readline';

export class ProbeError extends Error {
  override name = 'ProbeError';
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, cleanup: () => void = () => {}): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new ProbeError(`no answer within ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => {
    clearTimeout(timer);
    cleanup();
  });
}

/** A line-based TCP conversation with one of the stand-in's servers (port mapper, opened TCP server, license stand-in). */
export interface LineClient {
  send(line: string): void;
  /** The next line received; rejects when the connection closes first or after `timeoutMs` (default the client's). */
  next(timeoutMs?: number): Promise<string>;
  /** Sends a line (none: just read, e.g. a greeting) and resolves with the next line received. */
  ask(line?: string): Promise<string>;
  close(): void;
}

/** Connects (bounded) and returns a line client; a refused connect rejects with the errno in `code`. */
export async function lineClient(host: string, port: number, timeoutMs = 5000): Promise<LineClient> {
  const socket = net.connect({ host, port });
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }),
    timeoutMs,
    `TCP connect to ${host}:${port}`,
  ).catch((e: unknown) => {
    socket.destroy();
    const code = (e as NodeJS.ErrnoException).code;
    throw Object.assign(new ProbeError(`TCP connect to ${host}:${port} failed: ${code ?? (e as Error).message}`), { code });
  });
  const lines: string[] = [];
  const waiting: Array<() => void> = [];
  let closed = false;
  const wake = (): void => waiting.splice(0).forEach((w) => w());
  createInterface({ input: socket }).on('line', (l) => {
    lines.push(l);
    wake();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
    wake();
  });
  const next = async (ms = timeoutMs, what = 'a line'): Promise<string> => {
    const deadline = Date.now() + ms;
    while (lines.length === 0) {
      if (closed) throw new ProbeError(`connection to ${host}:${port} closed before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new ProbeError(`no answer within ${ms} ms: ${what} from ${host}:${port}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiting.push(() => (clearTimeout(timer), resolve()));
      });
    }
    return lines.shift()!;
  };
  const send = (line: string): void => void socket.write(line + '\n');
  return {
    send,
    next: (ms) => next(ms),
    ask: (line) => {
      if (line !== undefined) send(line);
      return next(timeoutMs, `answer to "${line ?? '(greeting)'}"`);
    },
    close: () => socket.destroy(),
  };
}

export interface OpenedServers {
  tcp: { name: string; port: number };
  udp: { name: string; port: number };
}

/** Asks the port mapper for one TCP and one UDP server; both get ports chosen now. */
export async function openServers(host: string, portMapper: number, names: { tcp: string; udp: string }, timeoutMs = 5000): Promise<OpenedServers> {
  const c = await lineClient(host, portMapper, timeoutMs);
  try {
    const port = async (proto: 'TCP' | 'UDP', name: string): Promise<number> => {
      const answer = await c.ask(`OPEN ${proto} ${name}`);
      const m = /^OK (\d+)$/.exec(answer);
      if (!m) throw new ProbeError(`port mapper answered "${answer}" to OPEN ${proto} ${name}`);
      return Number(m[1]);
    };
    const tcp = await port('TCP', names.tcp);
    const udp = await port('UDP', names.udp);
    await c.ask('QUIT');
    return { tcp: { name: names.tcp, port: tcp }, udp: { name: names.udp, port: udp } };
  } finally {
    c.close();
  }
}

/** Talks to an opened TCP server: its greeting, then one line and its answer. */
export async function tcpConversation(host: string, port: number, line: string, timeoutMs = 5000): Promise<{ greeting: string; answer: string }> {
  const c = await lineClient(host, port, timeoutMs);
  try {
    const greeting = await c.ask();
    const answer = await c.ask(line);
    return { greeting, answer };
  } finally {
    c.close();
  }
}

/** Sends a datagram to an opened UDP server (a few times: the first may wait for ARP) and returns its answer. */
export async function udpConversation(host: string, port: number, text: string, timeoutMs = 5000): Promise<string> {
  const s = dgram.createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  const answer = new Promise<string>((resolve, reject) => {
    s.on('message', (d) => resolve(d.toString('utf8')));
    s.on('error', reject);
    let n = 0;
    const send = (): void => {
      if (n++ < 10) {
        s.send(text, port, host);
        timer = setTimeout(send, 300);
      }
    };
    send();
  });
  return withTimeout(answer, timeoutMs, `UDP ${host}:${port}`, () => {
    clearTimeout(timer);
    s.close();
  });
}

/** One XCP-on-Ethernet message: LEN (uint16 LE), CTR (uint16 LE), payload. */
export function xcpFrame(ctr: number, payload: number[]): Buffer {
  const b = Buffer.alloc(4 + payload.length);
  b.writeUInt16LE(payload.length, 0);
  b.writeUInt16LE(ctr, 2);
  Buffer.from(payload).copy(b, 4);
  return b;
}

export function splitXcp(data: Buffer): Array<{ ctr: number; payload: Buffer }> {
  const out: Array<{ ctr: number; payload: Buffer }> = [];
  let i = 0;
  while (i + 4 <= data.length) {
    const len = data.readUInt16LE(i);
    const ctr = data.readUInt16LE(i + 2);
    if (i + 4 + len > data.length) break;
    out.push({ ctr, payload: data.subarray(i + 4, i + 4 + len) });
    i += 4 + len;
  }
  return out;
}

export interface XcpResult {
  /** The CONNECT answer's payload, hex. */
  connect: string;
  /** DAQ packets received without asking, in order of their sequence numbers. */
  daq: Array<{ odt: number; seq: number; ms: number }>;
}

/** CONNECT, then collect `count` unrequested DAQ packets, then DISCONNECT. */
export async function xcpSession(host: string, port: number, count = 5, timeoutMs = 8000): Promise<XcpResult> {
  const s = dgram.createSocket('udp4');
  let connect: string | undefined;
  const daq: XcpResult['daq'] = [];
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve, reject) => {
    s.on('error', reject);
    s.on('message', (d) => {
      for (const m of splitXcp(d)) {
        if (connect === undefined && m.payload[0] === 0xff) connect = m.payload.toString('hex');
        else if (connect !== undefined && m.payload.length >= 10 && m.payload[0]! < 0xfc) {
          daq.push({ odt: m.payload[0]!, seq: m.payload.readUInt32LE(2), ms: m.payload.readUInt32LE(6) });
        }
      }
      if (daq.length >= count) resolve();
    });
    let n = 0;
    const send = (): void => {
      if (connect === undefined && n++ < 10) {
        s.send(xcpFrame(0, [0xff, 0x00]), port, host);
        timer = setTimeout(send, 300);
      }
    };
    send();
  });
  try {
    await withTimeout(done, timeoutMs, `${count} XCP DAQ packets from ${host}:${port} (got ${daq.length}${connect === undefined ? ', no CONNECT answer' : ''})`);
    s.send(xcpFrame(1, [0xfe]), port, host);
    await new Promise((r) => setTimeout(r, 50));
    return { connect: connect!, daq: daq.slice(0, count) };
  } finally {
    clearTimeout(timer);
    s.close();
  }
}

/** Broadcasts DISCOVER on a subnet's broadcast address and returns the first answer (parsed) and who sent it. */
export async function discover(broadcast: string, port: number, timeoutMs = 5000): Promise<{ from: string; answer: Record<string, unknown> }> {
  const s = dgram.createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  const answer = new Promise<{ from: string; answer: Record<string, unknown> }>((resolve, reject) => {
    s.on('error', reject);
    s.on('message', (d, r) => {
      try {
        resolve({ from: r.address, answer: JSON.parse(d.toString('utf8')) as Record<string, unknown> });
      } catch {
        // not an answer to us
      }
    });
    s.bind(0, () => {
      s.setBroadcast(true);
      let n = 0;
      const send = (): void => {
        if (n++ < 10) {
          s.send('DISCOVER', port, broadcast);
          timer = setTimeout(send, 300);
        }
      };
      send();
    });
  });
  return withTimeout(answer, timeoutMs, `DISCOVER broadcast to ${broadcast}:${port}`, () => {
    clearTimeout(timer);
    s.close();
  });
}

/** A TCP connect that is expected to fail: resolves with the reason (or `connected`). */
export async function tcpReach(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? e.message);
    });
  });
}
