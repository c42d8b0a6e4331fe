/**
 * Observability end to end: a real Prometheus (Debian's package) scrapes a real
 * server and client in network namespaces (--tls over UDP), known traffic goes
 * through the tunnel, and everything is asserted through Prometheus's HTTP API as a
 * dashboard would read it: the byte and frame counters rose by at least what was
 * sent, a refused peer and garbage datagrams show up under their drop reasons, the
 * RTT histogram has observations. Then /readyz turns unready when the server's TAP
 * is deleted and when the client loses its server.
 *
 * Prometheus runs in the PC's namespace on its loopback, with its storage in a
 * temporary folder removed afterwards; it scrapes every second.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Daemon, link, netnsUnavailable, NODE, ROOT, Scope, type Netns } from './harness/netns.js';
import { clientTlsArgs, makePki, removePki, serverTlsArgs } from './harness/pki.js';

const PROMETHEUS = '/usr/bin/prometheus';
const skip = netnsUnavailable() ?? (existsSync(PROMETHEUS) ? undefined : `needs ${PROMETHEUS} (apt-get install prometheus; .ci/run installs it)`);
const scope = new Scope();
const temps: string[] = [];
afterEach(async () => {
  await scope.dispose();
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

let pki = '';
let otherCa = '';
beforeAll(async () => {
  if (skip) return;
  pki = await makePki({ serverNames: ['10.79.0.2'], clients: ['alice'] });
  otherCa = await makePki({ clients: ['mallory'] });
});
afterAll(() => {
  removePki(pki);
  removePki(otherCa);
});

const SERVER_METRICS = '10.79.0.2:19723';
const CLIENT_METRICS = '127.0.0.1:19724';
const PROM_ADDRESS = '127.0.0.1:19090';
const HOSTILE = `${ROOT}test/fixtures/hostile.mjs`;

/** GET a URL from inside a namespace (the test process cannot reach a namespace's loopback). */
async function get(ns: Netns, url: string): Promise<{ status: number; body: string }> {
  const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(5000) }).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })), (e) => console.log(JSON.stringify({ status: 0, body: String(e.cause?.code ?? e) })))`;
  const r = await ns.exec(NODE, ['-e', script], { timeout: 15_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { status: number; body: string };
}

/** GETs a URL every 250 ms until it answers 503 or `ms` have passed; the last answer (each other one is logged). */
async function getUntil503(ns: Netns, url: string, ms: number): Promise<{ status: number; body: string }> {
  const end = Date.now() + ms;
  let r = await get(ns, url);
  while (r.status !== 503 && Date.now() < end) {
    console.log(`${url}: ${r.status} ${r.body.trim()}, asking again`);
    await new Promise((res) => setTimeout(res, 250));
    r = await get(ns, url);
  }
  return r;
}

/** One instant query through Prometheus's HTTP API: a single number (undefined when no series). */
async function query(pc: Netns, expr: string): Promise<number | undefined> {
  const r = await get(pc, `http://${PROM_ADDRESS}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const data = JSON.parse(r.body) as { status: string; data: { result: Array<{ value: [number, string] }> } };
  expect(data.status, r.body).toBe('success');
  const first = data.data.result[0];
  return first === undefined ? undefined : Number(first.value[1]);
}

/** Polls a query until `ok`, within a bound that covers a few scrape intervals; says what it got last. */
async function queryUntil(pc: Netns, expr: string, ok: (v: number) => boolean, what: string, timeoutMs = 20_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let last: number | undefined;
  for (;;) {
    last = await query(pc, expr);
    if (last !== undefined && ok(last)) return last;
    if (Date.now() > end) throw new Error(`Prometheus: ${what} not seen within ${timeoutMs} ms (${expr} = ${last})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function startPrometheus(pc: Netns): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'ctun-prometheus-'));
  temps.push(dir);
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      `  - { job_name: ctun-server, static_configs: [{ targets: ['${SERVER_METRICS}'] }] }`,
      `  - { job_name: ctun-client, static_configs: [{ targets: ['${CLIENT_METRICS}'] }] }`,
      '',
    ].join('\n'),
  );
  const args = [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${PROM_ADDRESS}`, '--log.level=info'];
  const prom = scope.track(new Daemon(spawn('ip', ['netns', 'exec', pc.name, PROMETHEUS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), 'prometheus'));
  await prom.waitFor(/Server is ready to receive web requests/, 30_000);
  return prom;
}

describe.skipIf(skip)(`metrics scraped by a real Prometheus${skip ? `: skipped: ${skip}` : ''}`, () => {
  it('counters rise by at least the traffic sent, a refused peer and garbage datagrams appear under their drop reasons, the RTT histogram fills; /readyz follows the TAP and the link', async () => {
    const pc = await scope.ns('pc');
    const sim = await scope.ns('sim');
    await link(pc, '10.79.0.1/24', sim, '10.79.0.2/24');
    await pc.ctun(['configure', '--tap', 'dstap0', '192.168.100.100', '--non-interactive']);
    await pc.ctun(['configure', '--tap', 'dstap1', '192.168.100.101', '--non-interactive']);

    const server = scope.track(sim.spawnCtun(['server', '--metrics', SERVER_METRICS, ...serverTlsArgs(pki)]));
    await server.waitFor(/server-listening/, 15_000);
    expect(server.output).toMatch(/metrics-listening address=10\.79\.0\.2:19723/);
    const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--metrics', CLIENT_METRICS, ...clientTlsArgs(pki, 'alice')]));
    await client.waitFor(/client-connected/, 15_000);
    const prom = await startPrometheus(pc);

    // Both ends are up in Prometheus with their build info.
    await queryUntil(pc, 'ctun_build_info{job="ctun-server",role="server",transport="udp",mode="local",security="tls"}', (v) => v === 1, 'the server\'s build info');
    await queryUntil(pc, 'ctun_connected{job="ctun-client"}', (v) => v === 1, 'the client connected');
    const before = {
      clientTx: (await query(pc, 'ctun_bytes_total{job="ctun-client",direction="tx"}'))!,
      clientTxFrames: (await query(pc, 'ctun_frames_total{job="ctun-client",direction="tx"}'))!,
      serverRx: (await query(pc, 'ctun_bytes_total{job="ctun-server",direction="rx"}'))!,
      serverTx: (await query(pc, 'ctun_bytes_total{job="ctun-server",direction="tx"}'))!,
      serverRxFrames: (await query(pc, 'ctun_frames_total{job="ctun-server",direction="rx"}'))!,
    };

    // Known traffic: 100 pings of 1000 bytes through the tunnel; each request and each
    // reply is one 1042-byte Ethernet frame (14 Ethernet + 20 IP + 8 ICMP + 1000).
    const ping = await pc.exec('ping', ['-c', '100', '-i', '0.01', '-s', '1000', '-W', '2', '192.168.100.1'], { timeout: 30_000, reject: false });
    const answered = Number(/(\d+) received/.exec(ping.stdout)![1]);
    expect(answered, ping.stdout).toBeGreaterThanOrEqual(95);
    const sent = 100 * 1042;
    await queryUntil(pc, 'ctun_bytes_total{job="ctun-client",direction="tx"}', (v) => v - before.clientTx >= sent, `the client's tx bytes up by ${sent}`);
    await queryUntil(pc, 'ctun_frames_total{job="ctun-client",direction="tx"}', (v) => v - before.clientTxFrames >= 100, 'the client\'s tx frames up by 100');
    await queryUntil(pc, 'ctun_bytes_total{job="ctun-server",direction="rx"}', (v) => v - before.serverRx >= sent, `the server's rx bytes up by ${sent}`);
    await queryUntil(pc, 'ctun_frames_total{job="ctun-server",direction="rx"}', (v) => v - before.serverRxFrames >= 100, 'the server\'s rx frames up by 100');
    await queryUntil(pc, 'ctun_bytes_total{job="ctun-server",direction="tx"}', (v) => v - before.serverTx >= answered * 1042, 'the server\'s tx bytes up by the replies');
    expect(await query(pc, 'ctun_sessions{job="ctun-server"}')).toBe(1);

    // A peer whose certificate is from another CA is refused, and counted as such.
    const mallory = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--tap', 'dstap1', ...clientTlsArgs(pki, 'mallory', otherCa)]));
    expect(await mallory.exited).toBe(5);
    await queryUntil(pc, 'ctun_drops_total{job="ctun-server",reason="refused"}', (v) => v >= 1, 'the refused peer under reason="refused"');

    // 300 garbage datagrams at the sealed UDP port: dropped unopened, each under a reason.
    const garbageBefore = (await query(pc, 'sum(ctun_drops_total{job="ctun-server",reason=~"invalid|sealed-.*"})'))!;
    const flood = await pc.exec(NODE, [HOSTILE, 'udp-flood', '10.79.0.2', '1723', '300', '10000', '', '300'], { timeout: 30_000 });
    expect(JSON.parse(flood.stdout.trim().split('\n').pop()!)).toMatchObject({ ok: true, sent: 300 });
    await queryUntil(pc, 'sum(ctun_drops_total{job="ctun-server",reason=~"invalid|sealed-.*"})', (v) => v - garbageBefore >= 300, 'the 300 garbage datagrams under invalid or sealed-* reasons');
    const reasons = JSON.parse((await get(pc, `http://${PROM_ADDRESS}/api/v1/query?query=${encodeURIComponent('ctun_drops_total{job="ctun-server"} > 0')}`)).body).data.result.map((r: { metric: { reason: string } }) => r.metric.reason);
    console.log(`drop reasons seen by Prometheus: ${reasons.sort().join(', ')}`);

    // The keepalive round trips are in the histogram.
    await queryUntil(pc, 'ctun_rtt_seconds_count{job="ctun-client"}', (v) => v >= 3, 'RTT observations');
    const p50 = await query(pc, 'histogram_quantile(0.5, rate(ctun_rtt_seconds_bucket{job="ctun-client"}[30s]))');
    console.log(`keepalive RTT median per Prometheus: ${p50 === undefined ? '?' : (p50 * 1000).toFixed(2)} ms`);

    // Busy polling (on by default): the client spun for each ping's reply, and caught it.
    const caught = await queryUntil(pc, 'ctun_busy_poll_seconds_total{job="ctun-client",outcome="caught"}', (v) => v > 0, 'the client\'s spins ended by the replies');
    const missed = await query(pc, 'ctun_busy_poll_seconds_total{job="ctun-client",outcome="missed"}');
    console.log(`client busy poll per Prometheus: ${(caught * 1000).toFixed(1)} ms caught, ${((missed ?? NaN) * 1000).toFixed(1)} ms missed`);

    // /readyz: ready now; the server's TAP deleted → 503 naming it.
    const readyServer = `http://${SERVER_METRICS}/readyz`;
    const readyClient = `http://${CLIENT_METRICS}/readyz`;
    expect(await get(pc, readyServer)).toEqual({ status: 200, body: '{"ready":true,"checks":{"tap":true,"socket":true}}\n' });
    expect((await get(pc, readyClient)).status).toBe(200);
    expect((await get(pc, `http://${SERVER_METRICS}/healthz`)).status).toBe(200);
    await sim.ip('link', 'del', 'ctun0');
    // As a probe would: asked again until it answers 503 (a request that failed in CI
    // once, right after the deletion, is retried), within a wide margin.
    const gone = await getUntil503(pc, readyServer, 10_000);
    expect(gone.status, gone.body).toBe(503);
    expect(JSON.parse(gone.body)).toMatchObject({ ready: false, failing: ['tap'] });
    // The client loses its server: unready within its dead-peer time (4 s) and a margin.
    server.kill('SIGKILL');
    const lost = await getUntil503(pc, readyClient, 15_000);
    expect(lost.status, lost.body).toBe(503);
    expect(JSON.parse(lost.body)).toMatchObject({ ready: false, failing: ['connected'] });
    await queryUntil(pc, 'ctun_connected{job="ctun-client"}', (v) => v === 0, 'the client disconnected');
    await queryUntil(pc, 'up{job="ctun-server"}', (v) => v === 0, 'the server gone from the scrape');

    expect(await prom.stop()).toBe(0);
  }, 120_000);
});
