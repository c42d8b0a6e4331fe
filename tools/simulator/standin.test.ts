/**
 * The installed stand-in simulator, running for real on loopback: what a user (or
 * ControlDesk through the tunnel) would see on its ports.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { metadata } from '../common/index.js';
import {
  licenseStandinCommand,
  parseLicenseReady,
  parseSimulatorReady,
  SIMULATOR_READY_PATTERN,
  simulatorCommand,
  simulatorEnv,
  type SimulatorReadyPorts,
} from './index.js';
import { lineClient, openServers, tcpConversation, udpConversation, xcpFrame, xcpSession } from './client.js';
import { installStandin, killAll, startProcess, udpPeer, type Running, type UdpPeer } from './testing.js';

const DAQ_COUNT = 5;
const DAQ_INTERVAL_MS = 50;

let work: string;
let simulator: Running;
let license: Running;
let ports: SimulatorReadyPorts;
const peers: UdpPeer[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ctun-standin-'));
  const prefix = await installStandin(work);
  license = startProcess(licenseStandinCommand(prefix, 0, '127.0.0.1'));
  const licensePort = parseLicenseReady(await license.waitFor(/^License stand-in ready: .*$/m));
  simulator = startProcess(
    simulatorCommand(prefix),
    simulatorEnv({
      licenseServer: `${licensePort}@127.0.0.1`,
      bind: '127.0.0.1',
      // The wildcard address, so the broadcast test below reaches it (on lo only).
      discoveryBind: '0.0.0.0',
      ports: { portMapper: 0, xcp: 0, discovery: 0 },
      xcpDaqIntervalMs: DAQ_INTERVAL_MS,
      xcpDaqCount: DAQ_COUNT,
    }),
  );
  const ready = await simulator.waitFor(SIMULATOR_READY_PATTERN);
  ports = parseSimulatorReady(ready) as SimulatorReadyPorts;
});

afterEach(() => {
  for (const peer of peers.splice(0)) peer.close();
});

afterAll(async () => {
  await killAll();
  await rm(work, { recursive: true, force: true });
});

async function peer(options: { broadcast?: boolean } = {}): Promise<UdpPeer> {
  const p = await udpPeer(options);
  peers.push(p);
  return p;
}

describe('start-up', () => {
  it('checks the license, then prints the readiness line once with the bound ports', async () => {
    const out = simulator.stdout();
    expect(out).toMatch(/license check server=127\.0\.0\.1:\d+ attempt=1\/5/);
    expect(out.indexOf('license ok')).toBeLessThan(out.indexOf('VEOS stand-in ready:'));
    expect(out.match(/VEOS stand-in ready:/g)).toHaveLength(1);
    expect(new Set([ports.portMapper, ports.xcp, ports.discovery]).size).toBe(3);
    // The license stand-in logs the check on its own stdout, which may arrive a moment later.
    await license.waitFor(/license-standin license connection peer=127\.0\.0\.1:\d+/);
    expect(simulator.stderr()).toBe('');
  });
});

describe('port mapper', () => {
  it('opens a TCP server on a port chosen at run time that answers on it', async () => {
    const mapper = await lineClient('127.0.0.1', ports.portMapper);
    mapper.send('OPEN TCP cosim');
    const [, port] = /^OK (\d+)$/.exec(await mapper.next()) ?? [];
    const opened = Number(port);
    expect(opened).toBeGreaterThan(0);
    expect([ports.portMapper, ports.xcp, ports.discovery]).not.toContain(opened);

    const server = await lineClient('127.0.0.1', opened);
    expect(await server.next()).toBe('HELLO cosim');
    server.send('step 1');
    expect(await server.next()).toBe('cosim: step 1');
    server.close();

    // Asking again gives the same server, as a port mapper lookup should.
    mapper.send('open tcp cosim');
    expect(await mapper.next()).toBe(`OK ${opened}`);
    mapper.close();
  });

  it('opens a UDP server on a port chosen at run time that echoes with its name', async () => {
    const mapper = await lineClient('127.0.0.1', ports.portMapper);
    mapper.send('OPEN UDP signals');
    const opened = Number(/^OK (\d+)$/.exec(await mapper.next())?.[1]);
    mapper.close();
    const client = await peer();
    await client.send('frame 42', opened);
    const answer = await client.next();
    expect(answer.msg.toString()).toBe('signals: frame 42');
    expect(answer.port).toBe(opened);
  });

  it('lists, closes and reports errors, one answer per line', async () => {
    const mapper = await lineClient('127.0.0.1', ports.portMapper);
    mapper.send('OPEN TCP listed');
    const port = Number(/^OK (\d+)$/.exec(await mapper.next())?.[1]);
    mapper.send('LIST');
    const listed: string[] = [];
    for (let i = 0; i < 70; i++) {
      const line = await mapper.next();
      if (line === 'END') break;
      listed.push(line);
    }
    expect(listed).toContain(`SERVER TCP listed ${port}`);
    expect(listed.every((l) => /^SERVER (TCP|UDP) \S+ \d+$/.test(l))).toBe(true);

    mapper.send('FROB');
    expect(await mapper.next()).toMatch(/^ERR unknown command/);
    mapper.send('OPEN SCTP x');
    expect(await mapper.next()).toBe('ERR unknown protocol SCTP; expected TCP or UDP');
    mapper.send('OPEN TCP bad/name');
    expect(await mapper.next()).toMatch(/^ERR bad name/);
    mapper.send('CLOSE UDP nothing');
    expect(await mapper.next()).toBe('ERR no UDP server named nothing');

    mapper.send('CLOSE TCP listed');
    expect(await mapper.next()).toBe('OK');
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve('connected')));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');

    mapper.send('QUIT');
    expect(await mapper.next()).toBe('BYE');
    await expect(mapper.next(1000)).rejects.toThrow(/closed/);
  });

  it('closes a connection that sends an overlong line, and keeps serving others', async () => {
    const mapper = await lineClient('127.0.0.1', ports.portMapper);
    mapper.send('x'.repeat(5000));
    expect(await mapper.next()).toBe('ERR line too long');
    await expect(mapper.next(1000)).rejects.toThrow(/closed/);
    const other = await lineClient('127.0.0.1', ports.portMapper);
    other.send('OPEN UDP still-there');
    expect(await other.next()).toMatch(/^OK \d+$/);
    other.close();
  });
});

describe('XCP on Ethernet responder', () => {
  const CONNECT = [0xff, 0x00];
  const DISCONNECT = [0xfe];

  it('answers CONNECT, then pushes DAQ packets unrequested until DISCONNECT', async () => {
    const master = await peer();
    await master.send(xcpFrame(0, CONNECT), ports.xcp);
    const response = await master.next();
    expect(response.port).toBe(ports.xcp);
    expect(response.msg.readUInt16LE(0)).toBe(response.msg.length - 4); // LEN
    expect(response.msg.readUInt16LE(2)).toBe(0); // our CTR starts at 0
    expect([...response.msg.subarray(4)]).toEqual([0xff, 0x04, 0x00, 0xff, 0xb8, 0x05, 0x01, 0x01]);

    // Nothing more is sent by the master: these arrive on their own.
    const daq = [await master.next(), await master.next(), await master.next()];
    daq.forEach((d, i) => {
      expect(d.msg.readUInt16LE(0)).toBe(10);
      expect(d.msg.readUInt16LE(2)).toBe(i + 1); // CTR keeps counting
      expect(d.msg[4]).toBe(i % 4); // ODT number
      expect(d.msg.readUInt32LE(6)).toBe(i); // sequence
    });
    expect(daq[2]!.msg.readUInt32LE(10)).toBeGreaterThanOrEqual(2 * DAQ_INTERVAL_MS);

    await master.send(xcpFrame(1, DISCONNECT), ports.xcp);
    // A DAQ packet may already be on its way; after the DISCONNECT answer, silence.
    let answer = await master.next();
    for (let i = 0; i < 3 && answer.msg[4] !== 0xff; i++) answer = await master.next();
    expect(answer.msg.length).toBe(5);
    expect(answer.msg[4]).toBe(0xff);
    expect(await master.collect(4 * DAQ_INTERVAL_MS)).toEqual([]);
  });

  it('stops pushing after its bounded number of packets', async () => {
    const master = await peer();
    await master.send(xcpFrame(0, CONNECT), ports.xcp);
    await master.next(); // the CONNECT response
    const received = await master.collect((DAQ_COUNT + 4) * DAQ_INTERVAL_MS + 300);
    expect(received.map((d) => d.msg.readUInt32LE(6))).toEqual([...Array(DAQ_COUNT).keys()]);
    expect(await master.collect(3 * DAQ_INTERVAL_MS)).toEqual([]);
  });

  it('is bound to its master: others are ignored, unknown commands get ERR_CMD_UNKNOWN', async () => {
    const master = await peer();
    const other = await peer();
    await master.send(xcpFrame(0, CONNECT), ports.xcp);
    expect((await master.next()).msg[4]).toBe(0xff);
    await other.send(xcpFrame(0, CONNECT), ports.xcp);
    await master.send(xcpFrame(1, [0xf5, 0x01]), ports.xcp); // an unsupported command
    let reply = await master.next();
    for (let i = 0; i < 5 && reply.msg.length !== 6; i++) reply = await master.next(); // skip DAQ
    expect([...reply.msg.subarray(4)]).toEqual([0xfe, 0x20]);
    await master.send(xcpFrame(2, DISCONNECT), ports.xcp);
    expect(await other.collect(2 * DAQ_INTERVAL_MS)).toEqual([]);
  });

  it('ignores commands before CONNECT and malformed datagrams', async () => {
    const stranger = await peer();
    await stranger.send(xcpFrame(0, DISCONNECT), ports.xcp);
    await stranger.send(Buffer.from([0x09, 0x00, 0x00, 0x00, 0xff]), ports.xcp); // LEN beyond the datagram
    expect(await stranger.collect(200)).toEqual([]);
    expect(simulator.stdout()).toMatch(/xcp malformed peer=127\.0\.0\.1:\d+ bytes=5/);
  });
});

describe('discovery responder', () => {
  const expected = (): Record<string, unknown> => ({
    product: 'VEOS stand-in',
    release: metadata.veosRelease,
    version: metadata.veosVersion,
    portmapper: ports.portMapper,
    xcp: ports.xcp,
  });

  it('answers DISCOVER sent to its address', async () => {
    const client = await peer();
    await client.send('DISCOVER', ports.discovery);
    const answer = await client.next();
    expect(JSON.parse(answer.msg.toString())).toMatchObject(expected());
  });

  it('answers DISCOVER sent as a broadcast (the loopback broadcast address)', async () => {
    const client = await peer({ broadcast: true });
    await client.send('DISCOVER', ports.discovery, '127.255.255.255');
    const answer = await client.next();
    expect(answer.address).toBe('127.0.0.1');
    expect(JSON.parse(answer.msg.toString())).toMatchObject(expected());
  });

  it('stays silent on anything else', async () => {
    const client = await peer();
    await client.send('HELLO?', ports.discovery);
    expect(await client.collect(200)).toEqual([]);
  });
});

describe("the demo's client (client.ts), the one that talks to it through the tunnel", () => {
  it('opens servers, converses with each, and receives the unrequested DAQ packets', async () => {
    const opened = await openServers('127.0.0.1', ports.portMapper, { tcp: 'client-tcp', udp: 'client-udp' });
    expect(await tcpConversation('127.0.0.1', opened.tcp.port, 'ping')).toEqual({ greeting: 'HELLO client-tcp', answer: 'client-tcp: ping' });
    expect(await udpConversation('127.0.0.1', opened.udp.port, 'datagram')).toBe('client-udp: datagram');
    const xcp = await xcpSession('127.0.0.1', ports.xcp, DAQ_COUNT);
    expect(xcp.connect).toMatch(/^ff/);
    expect(xcp.daq.map((d) => d.seq)).toEqual([...Array(DAQ_COUNT).keys()]);
  });
});
