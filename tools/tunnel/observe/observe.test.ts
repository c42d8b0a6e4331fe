/**
 * The metrics endpoint of a real server and client (loopback UDP, in-memory TAPs):
 * what Prometheus, a kubelet probe and `ctun status` read from it, and the errors of
 * a bad or taken --metrics address. The live status line against a fake terminal.
 */
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CtunError, createMemoryLogger, metadata } from '../../common/index.js';
import { TunnelClient } from '../client.js';
import { createMemoryDevicePair } from '../device.js';
import { NetConfig, type CommandRunner } from '../netconfig.js';
import { TunnelServer } from '../server.js';
import { parseMetricsAddress } from './endpoint.js';
import { METRIC_NAMES } from './registry.js';
import { metricsSetting, serveMetrics } from './serve.js';
import { formatRate, formatStatusLine, runStatusLine, StatusLine, wantStatusLine } from './status-line.js';
import { fetchStatus, formatStatus } from './query.js';
import type { Figures } from './figures.js';

/** A kernel twin whose TAP exists until `present` is set false. */
function tapNet(): { net: NetConfig; taps: { present: boolean } } {
  const taps = { present: true };
  const runner: CommandRunner = async (_file, args) => {
    if (args.includes('show')) {
      const name = args[args.length - 1]!;
      return taps.present ? { exitCode: 0, stdout: JSON.stringify([{ ifname: name, ifindex: 7, flags: ['UP'], addr_info: [] }]), stderr: '' } : { exitCode: 1, stdout: '', stderr: `Device "${name}" does not exist.` };
    }
    return { exitCode: 0, stdout: '', stderr: '' };
  };
  return { net: new NetConfig(runner), taps };
}

function frame(i: number): Buffer {
  // Unicast to the server TAP's side, 100 bytes.
  return Buffer.concat([Buffer.from('02aabbccddee', 'hex'), Buffer.from('020000000001', 'hex'), Buffer.from([0x08, 0x00]), Buffer.alloc(86, i)]);
}

/** One sample of a Prometheus text exposition, by name and label text (`direction="rx"`). */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{` : `${name} `) && l.includes(labels));
  if (line === undefined) throw new Error(`no sample ${name}{${labels}} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

const stops: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

let nextPort = 23000 + (process.pid % 1000) * 4;

async function tunnelWithMetrics() {
  const [simTap] = createMemoryDevicePair(['ctun0', 'kernel']);
  const serverNet = tapNet();
  const server = new TunnelServer({ listen: '127.0.0.1', port: nextPort++, logger: createMemoryLogger(), openDevice: () => simTap, net: serverNet.net });
  const sm = await serveMetrics('0', server, { role: 'server', transport: 'udp', mode: 'local', tls: false, logger: createMemoryLogger() });
  stops.push(() => sm.close());
  const bound = await server.start();
  stops.push(() => server.stop());
  const [pcTap, pcKernel] = createMemoryDevicePair(['dstap0', 'pc-kernel']);
  const clientNet = tapNet();
  let rtt = (_: number): void => {};
  const client = new TunnelClient({ host: '127.0.0.1', port: bound.port, logger: createMemoryLogger(), openDevice: () => pcTap, checkTap: false, net: clientNet.net, keepaliveMs: 100, deadAfterMs: 600, backoff: { initialMs: 50, maxMs: 100 }, onRtt: (ms) => rtt(ms) });
  const cm = await serveMetrics('127.0.0.1:0', client, { role: 'client', transport: 'udp', mode: 'local', tls: false, logger: createMemoryLogger() });
  rtt = cm.observeRtt;
  stops.push(() => cm.close());
  await client.start();
  stops.push(() => client.stop());
  await client.waitConnected(3000);
  const url = (m: typeof sm, path: string): string => `http://127.0.0.1:${m.endpoint!.address.port}${path}`;
  return { server, client, pcKernel, sm, cm, serverNet, clientNet, url };
}

const until = async (what: string, check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('--metrics endpoint', () => {
  it('serves frames, bytes, drops, sessions, RTT and build info in the Prometheus text format; /status lists the client', async () => {
    const t = await tunnelWithMetrics();
    for (let i = 0; i < 50; i++) t.pcKernel.writeFrames([frame(i)]);
    await until('the server counted 50 frames', () => t.server.figures().frames.rx >= 50);
    await until('a keepalive round trip', () => t.client.figures().lastRttMs !== undefined);

    const res = await fetch(t.url(t.sm, '/metrics'));
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain(`# TYPE ${METRIC_NAMES.frames} counter`);
    expect(sample(text, METRIC_NAMES.frames, 'direction="rx"')).toBeGreaterThanOrEqual(50);
    expect(sample(text, METRIC_NAMES.bytes, 'direction="rx"')).toBeGreaterThanOrEqual(50 * 100);
    expect(sample(text, METRIC_NAMES.sessions)).toBe(1);
    expect(sample(text, METRIC_NAMES.drops, 'reason="sealed-bad-tag"')).toBe(0);
    expect(sample(text, METRIC_NAMES.drops, 'reason="handshake-failed"')).toBe(0);
    expect(text).toMatch(new RegExp(`${METRIC_NAMES.buildInfo}\\{version="${metadata.ctunVersion}",role="server",transport="udp",mode="local",security="plain"\\} 1`));

    const client = await (await fetch(t.url(t.cm, '/metrics'))).text();
    expect(sample(client, METRIC_NAMES.frames, 'direction="tx"')).toBeGreaterThanOrEqual(50);
    expect(sample(client, METRIC_NAMES.connected)).toBe(1);
    expect(sample(client, `${METRIC_NAMES.rtt}_count`)).toBeGreaterThan(0);

    const status = await fetchStatus(parseMetricsAddress(`127.0.0.1:${t.sm.endpoint!.address.port}`));
    expect(status.clients).toHaveLength(1);
    expect(status.clients![0]).toMatchObject({ attached: true, peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/), bytes: { rx: expect.any(Number) } });
    expect(status.clients![0]!.bytes.rx).toBeGreaterThanOrEqual(5000);
    expect(formatStatus(status).join('\n')).toMatch(/tunnel server: 1 client\(s\) connected[\s\S]*client 127\.0\.0\.1:\d+ {2}since \d{4}-/);
    expect(await (await fetch(t.url(t.sm, '/healthz'))).text()).toBe('ok\n');
  });

  it('/readyz: 200 while TAP and socket are there (client: and connected); 503 naming the TAP once it is gone, or the lost server', async () => {
    const t = await tunnelWithMetrics();
    const ready = async (m: typeof t.sm) => {
      const r = await fetch(t.url(m, '/readyz'));
      return { status: r.status, body: (await r.json()) as { ready: boolean; failing?: string[] } };
    };
    expect(await ready(t.sm)).toEqual({ status: 200, body: { ready: true, checks: { tap: true, socket: true } } });
    expect((await ready(t.cm)).status).toBe(200);
    t.serverNet.taps.present = false;
    expect(await ready(t.sm)).toMatchObject({ status: 503, body: { ready: false, failing: ['tap'] } });
    await t.server.stop();
    await until('the client noticed its server is gone', async () => (await ready(t.cm)).status === 503, 5000);
    expect((await ready(t.cm)).body.failing).toEqual(['connected']);
  });

  it('the busy poll (the process\'s, given beside the end) as seconds spun by outcome, in /metrics and /status', async () => {
    let spins = { spins: 10, caught: 8, spunUs: 1500, missedUs: 400 };
    const end = { figures: (): Figures => ({ role: 'server', frames: { rx: 0, tx: 0 }, bytes: { rx: 0, tx: 0 }, drops: {} }), readiness: async () => ({ tap: true }) };
    const m = await serveMetrics('127.0.0.1:0', end, { role: 'server', transport: 'udp', mode: 'local', tls: false, logger: createMemoryLogger(), busyPoll: () => spins });
    stops.push(() => m.close());
    const base = `http://127.0.0.1:${m.endpoint!.address.port}`;
    let text = await (await fetch(`${base}/metrics`)).text();
    expect(sample(text, METRIC_NAMES.busyPoll, 'outcome="caught"')).toBeCloseTo(0.0011, 9);
    expect(sample(text, METRIC_NAMES.busyPoll, 'outcome="missed"')).toBeCloseTo(0.0004, 9);
    spins = { spins: 20, caught: 15, spunUs: 3000, missedUs: 1000 };
    text = await (await fetch(`${base}/metrics`)).text();
    expect(sample(text, METRIC_NAMES.busyPoll, 'outcome="missed"')).toBeCloseTo(0.001, 9);
    const status = await fetchStatus(parseMetricsAddress(`127.0.0.1:${m.endpoint!.address.port}`));
    expect(status.busyPoll).toEqual(spins);
  });

  it('a bad --metrics value and a taken port are clear errors with their exit codes', async () => {
    const err = (f: () => unknown): CtunError => {
      try {
        f();
      } catch (e) {
        return e as CtunError;
      }
      throw new Error('no error');
    };
    expect(parseMetricsAddress(String(metadata.metricsPort))).toEqual({ host: '127.0.0.1', port: metadata.metricsPort });
    expect(parseMetricsAddress('0.0.0.0:9100')).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(parseMetricsAddress('[::1]:9100')).toEqual({ host: '::1', port: 9100 });
    for (const [bad, why] of [['abc', /"abc" is not a port number/], ['70000', /not within 1-65535/], ['host.example:80', /not an IPv4 address/], [':', /not an IPv4 address/]] as const) {
      const e = err(() => parseMetricsAddress(bad));
      expect(e).toMatchObject({ code: 'BAD_METRICS_ADDRESS', exitCode: 1 });
      expect(e.message).toMatch(why);
      expect(e.hint).toMatch(/--metrics 9723 or --metrics 0\.0\.0\.0:9723/);
    }
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    stops.push(() => new Promise((r) => taken.close(r)));
    const port = (taken.address() as { port: number }).port;
    const end = { figures: (): Figures => ({ role: 'server', frames: { rx: 0, tx: 0 }, bytes: { rx: 0, tx: 0 }, drops: {} }), readiness: async () => ({}) };
    await expect(serveMetrics(`127.0.0.1:${port}`, end, { role: 'server', transport: 'udp', mode: 'local', tls: false, logger: createMemoryLogger() })).rejects.toMatchObject({
      code: 'ADDRESS_IN_USE',
      exitCode: 3,
      hint: expect.stringMatching(/another port/),
    });
    expect(metricsSetting(undefined, { CTUN_METRICS: '127.0.0.1:9723' })).toBe('127.0.0.1:9723');
    expect(metricsSetting(undefined, { CTUN_METRICS: '' })).toBeUndefined();
    expect(metricsSetting('9100', { CTUN_METRICS: '9200' })).toBe('9100');
  });
});

describe('the client\'s live status line', () => {
  const figures = (o: Partial<Figures>): Figures => ({ role: 'client', frames: { rx: 0, tx: 0 }, bytes: { rx: 0, tx: 0 }, drops: { queue: 1, invalid: 2 }, server: '10.0.0.5:1723', connected: true, ...o });

  it('says whom it is connected to, the RTT, the rates each way and the drops', () => {
    expect(formatStatusLine(figures({ bytes: { rx: 1_250_000, tx: 125_000 }, lastRttMs: 0.42 }), figures({}), 1000)).toBe('● connected to 10.0.0.5:1723  rtt 0.42 ms  ↓ 10.0 Mbit/s  ↑ 1.0 Mbit/s  drops 3');
    expect(formatStatusLine(figures({ connected: false, reconnects: 2 }), undefined, 1000)).toBe('○ connecting to 10.0.0.5:1723… (reconnects 2, drops 3)');
    expect(formatRate(125, 1000)).toBe('1.0 kbit/s');
    expect(formatRate(0, 1000)).toBe('0 bit/s');
  });

  it('stays under the log lines on a terminal: each log line erases it, is written, and the line comes back; off without a TTY or with JSON logs', () => {
    const writes: string[] = [];
    const tty = { isTTY: true, columns: 40, write: (s: string) => writes.push(s) };
    const line = new StatusLine(tty);
    const stop = runStatusLine(line, () => figures({ lastRttMs: 1 }), 60_000);
    // Cut to the terminal's width less one, so it never wraps.
    const shown = '● connected to 10.0.0.5:1723  rtt 1.00 ';
    expect([...shown]).toHaveLength(39);
    expect(writes.join('')).toBe(`\r\x1b[2K${shown}`);
    writes.length = 0;
    line.above(() => writes.push('INFO client-connected\n'));
    expect(writes).toEqual(['\r\x1b[2K', 'INFO client-connected\n', shown]);
    writes.length = 0;
    stop();
    expect(writes).toEqual(['\r\x1b[2K']);
    // A pseudo-terminal without a size reports 0 columns: the line keeps 79, not 9.
    const sizeless: string[] = [];
    new StatusLine({ isTTY: true, columns: 0, write: (s: string) => sizeless.push(s) }).show('x'.repeat(100));
    expect(sizeless[0]).toBe(`\r\x1b[2K${'x'.repeat(79)}`);
    expect(wantStatusLine(tty, 'text')).toBe(true);
    expect(wantStatusLine(tty, 'json')).toBe(false);
    expect(wantStatusLine({ write: () => true }, 'text')).toBe(false);
  });
});
