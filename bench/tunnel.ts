/**
 * Tunnel benchmark: the same two namespaces, the same veth, the same iperf3, and in
 * one run every way of carrying the traffic — the veth itself (the limit), kernel
 * VXLAN, OpenVPN 2.6 in TAP mode and ctun, each over UDP and TCP, plain and with a
 * cipher. Only ratios measured in the same run mean anything on a shared machine.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { bundleCtun } from './bundle.js';
import { TUNNEL_DEFAULTS } from '../tools/common/index.js';
import { TUNNEL_ENV, TUNNEL_NODE_FLAGS } from '../tools/image/node-flags.js';
import { Lab, run, type Netns, type Proc } from '../tools/lab/index.js';
import { requestResponse, RR_MAX_SECONDS, startRrServer } from './request-response.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const NODE = `${ROOT}node_modules/.bin/node`;
const CTUN = `${ROOT}bin/ctun.js`;

export const A_UNDERLAY = '10.250.0.1';
export const B_UNDERLAY = '10.250.0.2';
export const IPERF_PORT = '5299';

export type Family = 'direct' | 'vxlan' | 'openvpn' | 'ctun';
export type Cipher = 'none' | 'aes-256-gcm' | 'tls';

export interface Scenario {
  name: string;
  family: Family;
  transport: 'veth' | 'udp' | 'tcp';
  cipher: Cipher;
  /** Brings the tunnel up; returns the address iperf3 and ping aim at in namespace b, and the processes that are its ends. */
  up(ctx: Context): Promise<{ target: string; ends: Record<string, Proc> }>;
  /** Takes it down again (processes are stopped by the caller). */
  down?(ctx: Context): Promise<void>;
}

export interface Context {
  lab: Lab;
  a: Netns;
  b: Netns;
  ia: string;
  ib: string;
  pki: string;
  ctunSecure: CtunSecure | undefined;
  /** The bundled ctun the tunnel ends run (the shape the images ship). */
  ctunScript: string;
  /** Processes that outlive a scenario (the iperf3 and sockperf servers). */
  keep: Proc[];
}

/** How to run ctun secured, when the CLI has `--tls` (detected, not assumed). */
export interface CtunSecure {
  serverArgs: string[];
  clientArgs: string[];
}

export interface Measurement {
  name: string;
  family: Family;
  transport: string;
  cipher: Cipher;
  /** Client → server (namespace a → b), Mbit/s. */
  upMbps: number;
  /** Server → client, Mbit/s. */
  downMbps: number;
  /** Mean ping RTT, pings 5 ms apart (each finds the tunnel idle). */
  rttMs: number;
  /** Mean ping RTT back to back (ping -f: the next leaves when the last returns). */
  rttBusyMs: number;
  /** TCP request/response round trip (sockperf ping-pong, 64-byte messages, one in flight): mean, µs. */
  rrMeanUs: number;
  /** Its 99th percentile, µs. */
  rrP99Us: number;
  /** The mean of each round, in the run's round order (a row's figures are the rounds' medians). */
  rrMeanUsByRound?: number[];
  /** CPU time each tunnel end spent per request/response round trip, µs (on a 2-core machine shared by both ends and both applications, CPU per lone frame is most of the round trip). */
  rrCpuUs: Record<string, number>;
  /** TCP retransmissions iperf3 saw (a sign of loss inside the tunnel). */
  retransmits: number;
  /** CPU seconds per GB carried, each tunnel end, upload run. */
  cpuSecPerGB: Record<string, number>;
  peakRssMiB: Record<string, number>;
  /** Private (anonymous) resident memory at full rate: the highest of samples taken every 100 ms during both transfers. */
  privateMiB: Record<string, number>;
  error?: string;
}

// ---------------------------------------------------------------- scenarios

const direct: Scenario = {
  name: 'direct veth',
  family: 'direct',
  transport: 'veth',
  cipher: 'none',
  async up() {
    return { target: B_UNDERLAY, ends: {} };
  },
};

const vxlan: Scenario = {
  name: 'kernel VXLAN',
  family: 'vxlan',
  transport: 'udp',
  cipher: 'none',
  async up({ lab, a, b, ia, ib }) {
    const pair: Array<[Netns, string, string, string, string]> = [
      [a, ia, A_UNDERLAY, B_UNDERLAY, '10.251.0.1/24'],
      [b, ib, B_UNDERLAY, A_UNDERLAY, '10.251.0.2/24'],
    ];
    for (const [ns, dev, local, remote, cidr] of pair) {
      await run('ip', ['-n', ns.name, 'link', 'add', 'cbvx0', 'type', 'vxlan', 'id', '42', 'local', local, 'remote', remote, 'dstport', '4789', 'dev', dev]);
      await run('ip', ['-n', ns.name, 'addr', 'add', cidr, 'dev', 'cbvx0']);
      await run('ip', ['-n', ns.name, 'link', 'set', 'cbvx0', 'up']);
    }
    void lab;
    return { target: '10.251.0.2', ends: {} };
  },
  async down({ a, b }) {
    for (const ns of [a, b]) await execa('ip', ['-n', ns.name, 'link', 'del', 'cbvx0'], { reject: false });
  },
};

function openvpn(transport: 'udp' | 'tcp', cipher: 'none' | 'aes-256-gcm'): Scenario {
  return {
    name: `OpenVPN ${transport} ${cipher}`,
    family: 'openvpn',
    transport,
    cipher,
    async up({ lab, a, b, pki }) {
      const common = ['--dev', 'cbovpn0', '--dev-type', 'tap', '--tun-mtu', String(TUNNEL_DEFAULTS.mtu), '--port', '1194', '--verb', '3', '--ping', '1', '--ping-exit', '30'];
      const crypto = (role: 'server' | 'client'): string[] =>
        cipher === 'none'
          ? ['--cipher', 'none', '--auth', 'none']
          : [
              role === 'server' ? '--tls-server' : '--tls-client',
              '--ca', join(pki, 'ca.crt'),
              '--cert', join(pki, `${role}.crt`),
              '--key', join(pki, `${role}.key`),
              ...(role === 'server' ? ['--dh', 'none'] : ['--remote-cert-tls', 'server']),
              '--data-ciphers', 'AES-256-GCM',
            ];
      const server = lab.spawn(b, 'openvpn', [...common, '--proto', transport === 'udp' ? 'udp' : 'tcp-server', '--ifconfig', '10.252.0.2', '255.255.255.0', ...crypto('server')], { label: 'openvpn server' });
      if (transport === 'tcp') await server.waitFor(/Listening for incoming TCP connection|TCP connection established|Initialization Sequence/, 15_000).catch(() => sleep(500));
      const client = lab.spawn(a, 'openvpn', [...common, '--proto', transport === 'udp' ? 'udp' : 'tcp-client', '--remote', B_UNDERLAY, '--ifconfig', '10.252.0.1', '255.255.255.0', ...crypto('client')], { label: 'openvpn client' });
      await client.waitFor(/Initialization Sequence Completed/, 20_000);
      await server.waitFor(/Initialization Sequence Completed|Peer Connection Initiated|TCP connection established/, 20_000).catch(() => {});
      return { target: '10.252.0.2', ends: { server, client } };
    },
  };
}

/** What a ctun row turns off, each the reference for what it buys. */
export interface CtunWithout {
  /** The TAPs without their offloads (--offload off). */
  offload?: boolean;
  /** Both ends move every frame in JavaScript (--fast-path off). */
  fastPath?: boolean;
  /** Both ends sleep as soon as nothing is readable (--busy-poll 0). */
  busyPoll?: boolean;
}

export function ctun(transport: 'udp' | 'tcp', secure: boolean, without: CtunWithout = {}): Scenario {
  const off = [
    ...(without.offload ? ['--offload', 'off'] : []),
    ...(without.fastPath ? ['--fast-path', 'off'] : []),
    ...(without.busyPoll ? ['--busy-poll', '0'] : []),
  ];
  return {
    name: `ctun ${transport}${secure ? ' tls' : ''}${without.offload ? ' no-offload' : ''}${without.fastPath ? ' no-fast-path' : ''}${without.busyPoll ? ' no-busy-poll' : ''}`,
    family: 'ctun',
    transport,
    cipher: secure ? 'tls' : 'none',
    async up({ lab, a, b, ctunSecure, ctunScript }) {
      const extra = (role: 'server' | 'client'): string[] => (secure ? (role === 'server' ? ctunSecure!.serverArgs : ctunSecure!.clientArgs) : []);
      const server = lab.spawn(b, NODE, [...TUNNEL_NODE_FLAGS, ctunScript, 'server', '--transport', transport, ...extra('server'), ...off], { label: `ctun server ${transport}`, env: { ...TUNNEL_ENV } });
      await server.waitFor(/server-listening/, 20_000);
      const client = lab.spawn(a, NODE, [...TUNNEL_NODE_FLAGS, ctunScript, 'client', B_UNDERLAY, '--transport', transport, ...extra('client'), ...off], { label: `ctun client ${transport}`, env: { ...TUNNEL_ENV } });
      await client.waitFor(/client-connected/, 20_000);
      return { target: TUNNEL_DEFAULTS.serverAddress, ends: { server, client } };
    },
  };
}

// ---------------------------------------------------------------- measuring

export async function waitReachable(lab: Lab, ns: Netns, target: string): Promise<void> {
  for (let i = 0; i < 30; i++) {
    const r = await execa('ip', ['netns', 'exec', ns.name, 'ping', '-c', '1', '-W', '1', target], { reject: false, timeout: 5000 });
    if (r.exitCode === 0) return;
    await sleep(200);
  }
  void lab;
  throw new Error(`${target} not reachable from ${ns.name} within 30 tries`);
}

async function rtt(lab: Lab, ns: Netns, target: string, count: number, backToBack = false): Promise<number> {
  const out = await ns.run('ping', ['-q', '-c', String(count), ...(backToBack ? ['-f'] : ['-i', '0.005']), '-W', '1', target], 15_000 + count * 20);
  const m = /= [\d.]+\/([\d.]+)\//.exec(out);
  if (!m) throw new Error(`cannot parse ping output: ${out}`);
  return Number(m[1]);
}

interface IperfResult {
  mbps: number;
  bytes: number;
  retransmits: number;
}

export async function iperf(lab: Lab, ns: Netns, target: string, seconds: number, reverse: boolean): Promise<IperfResult> {
  const args = ['-c', target, '-p', IPERF_PORT, '-t', String(seconds), '-J', '--connect-timeout', '5000', ...(reverse ? ['-R'] : [])];
  // On a loaded machine the server may still be closing the previous test ("busy"),
  // or a control connection may time out: retry a bounded number of times.
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await execa('ip', ['netns', 'exec', ns.name, 'iperf3', ...args], { reject: false, timeout: (seconds + 20) * 1000 });
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number }; sum_sent?: { retransmits?: number } } } = {};
    try {
      j = JSON.parse(r.stdout);
    } catch {
      j = { error: `${r.stdout} ${r.stderr}`.trim().slice(0, 200) };
    }
    const rx = j.end?.sum_received;
    if (rx !== undefined && j.error === undefined) return { mbps: rx.bits_per_second / 1e6, bytes: rx.bytes, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
    last = last ? `${last}; then: ${j.error ?? 'no result'}` : (j.error ?? 'no result');
    await sleep(1500);
  }
  void lab;
  throw new Error(`iperf3 ${reverse ? '-R ' : ''}to ${target} failed 3 times: ${last}`);
}

export interface TunnelBenchOptions {
  seconds: number;
  rounds: number;
  only?: RegExp;
  /** Only the request/response round trips: no ping, no transfers (many rounds in little time). */
  roundTripsOnly?: boolean;
  log: (line: string) => void;
}

/** Makes a throwaway PKI (CA, server and client certificates) for OpenVPN's TLS mode. */
async function makePki(dir: string): Promise<void> {
  const ssl = (args: string[]): Promise<string> => run('openssl', args, 30_000);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await ssl(['req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-subj', '/CN=ctun-bench-ca', '-days', '2']);
  for (const [role, eku] of [['server', 'serverAuth'], ['client', 'clientAuth']] as const) {
    const ext = join(dir, `${role}.ext`);
    writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=${eku}\n`);
    await ssl(['req', ...ec, '-keyout', join(dir, `${role}.key`), '-out', join(dir, `${role}.csr`), '-subj', `/CN=ctun-bench-${role}`]);
    await ssl(['x509', '-req', '-in', join(dir, `${role}.csr`), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${role}.crt`), '-days', '2', '-extfile', ext]);
  }
}

/**
 * Finds out whether this ctun has the secured mode (`--tls` in `ctun server --help`)
 * and, if so, makes its certificates with `ctun certs`. Undefined when it has not.
 */
export async function detectCtunSecure(dir: string, log: (l: string) => void): Promise<CtunSecure | undefined> {
  const help = await execa(NODE, [CTUN, 'server', '--help'], { reject: false, timeout: 30_000 });
  if (!/--tls\b/.test(help.stdout)) {
    log('ctun has no --tls yet: secured ctun rows skipped');
    return undefined;
  }
  const certsHelp = await execa(NODE, [CTUN, 'certs', '--help'], { reject: false, timeout: 30_000 });
  if (certsHelp.exitCode !== 0) {
    log('ctun server has --tls but there is no `ctun certs`: secured ctun rows skipped');
    return undefined;
  }
  const out = join(dir, 'ctun-certs');
  for (const step of [['init'], ['server', '--host', B_UNDERLAY], ['client', 'bench']]) {
    const made = await execa(NODE, [CTUN, 'certs', ...step, '--out', out], { reject: false, timeout: 60_000, all: true });
    if (made.exitCode !== 0) {
      log(`ctun certs ${step[0]} failed, secured ctun rows skipped: ${made.all?.split('\n').slice(-3).join(' ')}`);
      return undefined;
    }
  }
  return {
    serverArgs: ['--tls', '--ca', join(out, 'ca.crt'), '--cert', join(out, 'server.crt'), '--key', join(out, 'server.key')],
    clientArgs: ['--tls', '--ca', join(out, 'ca.crt'), '--cert', join(out, 'bench.crt'), '--key', join(out, 'bench.key')],
  };
}

/**
 * What every bench section stands on: a temp folder (certificates, the bundle), the
 * secured-ctun check, ctun bundled as the images ship it, two namespaces joined by a
 * veth, and the client's TAP made once as a user would with `ctun configure`.
 */
export async function openLab(lab: Lab, o: { roles: [string, string]; log: (l: string) => void; openvpnKeys?: boolean }): Promise<Context> {
  const pki = mkdtempSync(join(tmpdir(), 'ctun-bench-'));
  lab.onCleanup(async () => rmSync(pki, { recursive: true, force: true }));
  if (o.openvpnKeys) await makePki(pki);
  const ctunSecure = await detectCtunSecure(pki, o.log);
  // The tunnel ends run the CLI bundled into plain JavaScript, as the images do: a
  // TypeScript loader in the process would add its caches to the peak RSS.
  const bundled = await bundleCtun(pki);
  process.env.CTUN_ADDON = bundled.addon;
  const a = await lab.netns(o.roles[0]);
  const b = await lab.netns(o.roles[1]);
  const [ia, ib] = await lab.veth(a, `${A_UNDERLAY}/24`, b, `${B_UNDERLAY}/24`);
  await a.run(NODE, [CTUN, 'configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive'], 60_000);
  return { lab, a, b, ia, ib, pki, ctunSecure, ctunScript: bundled.script, keep: [] };
}

/** The median of the numbers that are not NaN; NaN when none is. */
export function medianOf(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((p, q) => p - q);
  return v.length === 0 ? NaN : v[Math.floor(v.length / 2)]!;
}

export async function runTunnelBench(lab: Lab, o: TunnelBenchOptions): Promise<Measurement[]> {
  const ctx = await openLab(lab, { roles: ['a', 'b'], log: o.log, openvpnKeys: true });
  const { b, ctunSecure } = ctx;
  const startIperfServer = async (): Promise<Proc> => {
    const server = lab.spawn(b, 'iperf3', ['-s', '-p', IPERF_PORT, '--forceflush'], { label: 'iperf3 server' });
    await server.waitFor(/Server listening/, 10_000);
    return server;
  };
  ctx.keep.push(await startIperfServer(), await startRrServer(lab, b));

  const scenarios: Scenario[] = [
    direct,
    vxlan,
    openvpn('udp', 'none'),
    ctun('udp', false),
    ctun('udp', false, { fastPath: true }),
    ctun('udp', false, { offload: true }),
    ctun('udp', false, { busyPoll: true }),
    openvpn('tcp', 'none'),
    ctun('tcp', false),
    ctun('tcp', false, { fastPath: true }),
    ctun('tcp', false, { offload: true }),
    ctun('tcp', false, { busyPoll: true }),
    openvpn('udp', 'aes-256-gcm'),
    openvpn('tcp', 'aes-256-gcm'),
    ...(ctunSecure
      ? [ctun('udp', true), ctun('udp', true, { fastPath: true }), ctun('udp', true, { busyPoll: true }), ctun('tcp', true), ctun('tcp', true, { fastPath: true }), ctun('tcp', true, { busyPoll: true })]
      : []),
  ].filter((s) => o.only === undefined || o.only.test(s.name));

  const rounds: Measurement[][] = [];
  for (let round = 0; round < o.rounds; round++) {
    const results: Measurement[] = [];
    // Alternate the order each round, so slow drift of a shared machine does not favour one side.
    const order = round % 2 === 0 ? scenarios : [...scenarios].reverse();
    for (const s of order) {
      o.log(`round ${round + 1}/${o.rounds}: ${s.name}`);
      // A fresh iperf3 server per scenario: one left "busy" by a test that a slow
      // tunnel cut short must not fail the next scenario.
      for (const p of ctx.keep) await p.stop();
      ctx.keep = [await startIperfServer(), await startRrServer(lab, b)];
      results.push(await measure(ctx, s, o));
    }
    rounds.push(results);
  }
  for (const p of ctx.keep) await p.stop();
  return scenarios.map((s) => median(rounds.map((r) => r.find((m) => m.name === s.name)!)));
}

async function measure(ctx: Context, s: Scenario, o: TunnelBenchOptions): Promise<Measurement> {
  const m: Measurement = { name: s.name, family: s.family, transport: s.transport, cipher: s.cipher, upMbps: NaN, downMbps: NaN, rttMs: NaN, rttBusyMs: NaN, rrMeanUs: NaN, rrP99Us: NaN, rrCpuUs: {}, retransmits: NaN, cpuSecPerGB: {}, peakRssMiB: {}, privateMiB: {} };
  let ends: Record<string, Proc> = {};
  let privatePeak: ReturnType<typeof samplePrivatePeak> | undefined;
  try {
    const up = await s.up(ctx);
    ends = up.ends;
    await waitReachable(ctx.lab, ctx.a, up.target);
    if (!o.roundTripsOnly) {
      m.rttMs = await rtt(ctx.lab, ctx.a, up.target, 200);
      m.rttBusyMs = await rtt(ctx.lab, ctx.a, up.target, 2000, true);
    }
    const rrCpu0 = Object.fromEntries(Object.entries(ends).map(([k, p]) => [k, p.cpuSeconds()]));
    const rr = await requestResponse(ctx.a, up.target, Math.min(o.seconds, RR_MAX_SECONDS));
    m.rrMeanUs = rr.meanUs;
    m.rrP99Us = rr.p99Us;
    for (const [k, p] of Object.entries(ends)) m.rrCpuUs[k] = ((p.cpuSeconds() - rrCpu0[k]!) / rr.total) * 1e6;
    if (o.roundTripsOnly) return m;
    const cpu0 = Object.fromEntries(Object.entries(ends).map(([k, p]) => [k, p.cpuSeconds()]));
    privatePeak = samplePrivatePeak(ends);
    const upRun = await iperf(ctx.lab, ctx.a, up.target, o.seconds, false);
    for (const [k, p] of Object.entries(ends)) m.cpuSecPerGB[k] = (p.cpuSeconds() - cpu0[k]!) / (upRun.bytes / 1e9);
    m.upMbps = upRun.mbps;
    m.retransmits = upRun.retransmits;
    const downRun = await iperf(ctx.lab, ctx.a, up.target, o.seconds, true);
    m.downMbps = downRun.mbps;
    m.privateMiB = privatePeak.stop();
    const mid = privatePeak.medians();
    o.log(`  private MiB during the transfers, median / peak: ${Object.keys(mid).map((k) => `${k} ${mid[k]!.toFixed(1)} / ${m.privateMiB[k]!.toFixed(1)}`).join(', ')}`);
    for (const [k, p] of Object.entries(ends)) m.peakRssMiB[k] = p.peakRssMiB();
  } catch (e) {
    m.error = (e as Error).message.split('\n').slice(0, 6).join(' | ');
    o.log(`  failed: ${m.error}`);
  } finally {
    privatePeak?.stop();
    for (const p of Object.values(ends)) await p.stop();
    await ctx.lab.stopAllExcept(ctx.keep);
    await s.down?.(ctx).catch(() => {});
  }
  return m;
}

/**
 * Samples each end's private memory (RssAnon) every 100 ms while both transfers run
 * and keeps the highest: "at full rate" is the whole transfer, not the one moment
 * after it, which fell before or after a heap trim or a garbage collection by chance.
 */
function samplePrivatePeak(ends: Record<string, Proc>): { stop(): Record<string, number>; medians(): Record<string, number> } {
  const samples: Record<string, number[]> = {};
  const sample = (): void => {
    for (const [k, p] of Object.entries(ends)) {
      const v = p.privateMiB();
      if (!Number.isNaN(v)) (samples[k] ??= []).push(v);
    }
  };
  const timer = setInterval(sample, 100);
  let stopped = false;
  return {
    stop() {
      if (!stopped) sample();
      stopped = true;
      clearInterval(timer);
      return Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, Math.max(...xs)]));
    },
    medians: () => Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, medianOf(xs)])),
  };
}

function median(ms: Measurement[]): Measurement {
  if (ms.length === 1) return ms[0]!;
  const mid = <T>(xs: T[], key: (x: T) => number): number => medianOf(xs.map(key));
  const first = ms[0]!;
  const keys = (f: (m: Measurement) => Record<string, number>): Record<string, number> =>
    Object.fromEntries([...new Set(ms.flatMap((m) => Object.keys(f(m))))].map((k) => [k, mid(ms, (m) => f(m)[k] ?? NaN)]));
  return {
    ...first,
    upMbps: mid(ms, (m) => m.upMbps),
    downMbps: mid(ms, (m) => m.downMbps),
    rttMs: mid(ms, (m) => m.rttMs),
    rttBusyMs: mid(ms, (m) => m.rttBusyMs),
    rrMeanUs: mid(ms, (m) => m.rrMeanUs),
    rrP99Us: mid(ms, (m) => m.rrP99Us),
    rrMeanUsByRound: ms.map((m) => m.rrMeanUs),
    rrCpuUs: keys((m) => m.rrCpuUs),
    retransmits: mid(ms, (m) => m.retransmits),
    cpuSecPerGB: keys((m) => m.cpuSecPerGB),
    peakRssMiB: keys((m) => m.peakRssMiB),
    privateMiB: keys((m) => m.privateMiB),
    // A round that failed while another succeeded is noise; all failing is an error.
    error: ms.every((m) => m.error) ? first.error : undefined,
  };
}
