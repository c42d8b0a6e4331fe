/**
 * Test helpers for the stand-in's unit tests: real child processes and real sockets,
 * on loopback only, with every wait bounded. Not part of the public API. The client of
 * the stand-in's protocols (line conversations, XCP) is client.ts, shared with the demo.
 */
import dgram from 'node:dgram';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import * as tar from 'tar';
import { Lab, startProcess as startLabProcess, type Proc } from '../lab/index.js';
import { INSTALL_ENV, SIMULATOR_TARBALL_TOP_DIR } from './constants.js';
import { buildStandinTarball } from './tarball.js';

/** Builds the tarball, extracts it and runs its install.sh into `<work>/install`; returns that directory. */
export async function installStandin(work: string): Promise<string> {
  const { path } = await buildStandinTarball({ outDir: work });
  const extractDir = await mkdtemp(join(work, 'extract-'));
  await tar.x({ file: path, cwd: extractDir });
  const prefix = join(work, 'install');
  await execa(join(extractDir, SIMULATOR_TARBALL_TOP_DIR, 'install.sh'), [], {
    env: { [INSTALL_ENV.acceptEula]: 'yes', [INSTALL_ENV.prefix]: prefix },
    timeout: 10_000,
  });
  return prefix;
}

/** A stand-in process under test: the lab's process. */
export type Running = Proc;

const running = new Lab();

/**
 * Starts a process with only PATH and HOME from our environment (a DS_CMU_SERVER of the
 * developer's must not leak in) plus `env`; `killAll` stops it.
 */
export function startProcess(argv: string[], env: Record<string, string> = {}): Running {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('empty argv');
  return running.track(startLabProcess(command, args, { env, isolateEnv: true, label: argv.join(' ') }));
}

/** Stops every process started and still running; for afterEach/afterAll. */
export async function killAll(): Promise<void> {
  await running.dispose();
}

/** A loopback TCP port that was free a moment ago and has nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Datagram {
  msg: Buffer;
  address: string;
  port: number;
}

/** A UDP socket on 127.0.0.1 that queues what it receives. */
export interface UdpPeer {
  port: number;
  send(data: Buffer | string, port: number, address?: string): Promise<void>;
  next(timeoutMs?: number): Promise<Datagram>;
  /** Resolves with whatever arrives within `ms` (expected: nothing). */
  collect(ms: number): Promise<Datagram[]>;
  close(): void;
}

export async function udpPeer(options: { broadcast?: boolean } = {}): Promise<UdpPeer> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  if (options.broadcast) socket.setBroadcast(true);
  const queue: Datagram[] = [];
  const waiters: Array<() => void> = [];
  socket.on('message', (msg, rinfo) => {
    queue.push({ msg, address: rinfo.address, port: rinfo.port });
    waiters.splice(0).forEach((w) => w());
  });
  return {
    port: socket.address().port,
    send: (data, port, address = '127.0.0.1') =>
      new Promise((resolve, reject) => socket.send(data, port, address, (e) => (e ? reject(e) : resolve()))),
    next: async (timeoutMs = 3000) => {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no datagram on port ${socket.address().port} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => (clearTimeout(timer), resolve()));
        });
      }
      return queue.shift() as Datagram;
    },
    collect: async (ms) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return queue.splice(0);
    },
    close: () => socket.close(),
  };
}
