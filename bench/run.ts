/**
 * `npm run bench [-- SECTION...] [--seconds N] [--rounds N] [--only REGEX] [--round-trips]`
 *
 * Sections: `tunnel` (needs root, iperf3, sockperf and openvpn), `hostile` (a good client's
 * throughput alone and under a half-open and garbage flood), `scale` (what idle
 * sessions cost one server: bench/scale.ts) and `aggregate` (throughput of 1, 8 and
 * 32 active clients to 1, 8 and 32 destinations through one separate-mode server:
 * bench/aggregate.ts, both directions; `--only up` or `--only down` keeps one); all
 * by default. Everything the
 * run creates (namespaces, veths, TAPs, processes, a temp PKI) is removed at the end,
 * on errors and on Ctrl-C. Results go to bench/results/<date>.json and tunnel.svg.
 * `--round-trips` measures only the tunnel section's request/response round trips
 * (no ping, no transfers): a round takes a fifth of the time, so more rounds of the
 * figure that moves most between runs fit in a few minutes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Lab } from '../tools/lab/index.js';
import { pairedRoundTripLines, svgChart, table, withRatios } from './report.js';
import { hostileTable, runHostileBench } from './hostile.js';
import { runTunnelBench } from './tunnel.js';
import { RR_MAX_SECONDS } from './request-response.js';
import { runScaleBench, scaleTable } from './scale.js';
import { aggregateTable, DIRECTIONS, runAggregateBench } from './aggregate.js';

const SECTIONS = ['tunnel', 'hostile', 'scale', 'aggregate'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  sections: Section[];
  seconds: number;
  rounds: number;
  only?: RegExp;
  roundTripsOnly: boolean;
}

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\nusage: npm run bench -- [${SECTIONS.join('|')}] [--seconds 5-10] [--rounds N] [--only REGEX] [--round-trips]\n`);
  process.exit(1);
}

function parseArgs(argv: string[]): Args {
  const out: Args = { sections: [], seconds: 6, rounds: 1, roundTripsOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--seconds') out.seconds = Number(value());
    else if (a === '--rounds') out.rounds = Number(value());
    else if (a === '--only') out.only = new RegExp(value(), 'i');
    else if (a === '--round-trips') out.roundTripsOnly = true;
    else if (a === '--help' || a === '-h') usage('help');
    else if ((SECTIONS as readonly string[]).includes(a)) out.sections.push(a as Section);
    else usage(`unknown argument "${a}"`);
  }
  if (!Number.isInteger(out.seconds) || out.seconds < 1 || out.seconds > 60) usage(`--seconds must be 1-60, got ${out.seconds}`);
  if (!Number.isInteger(out.rounds) || out.rounds < 1 || out.rounds > 10) usage(`--rounds must be 1-10, got ${out.rounds}`);
  if (out.sections.length === 0) out.sections = [...SECTIONS];
  return out;
}

async function version(file: string, args: string[]): Promise<string> {
  const r = await execa(file, args, { reject: false, timeout: 10_000, all: true });
  return (r.all ?? '').replace(/\x1b\[[0-9;]*m/g, '').split('\n')[0]!.trim();
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) usage('needs root (network namespaces, TAP devices)');
  for (const tool of ['iperf3', 'sockperf', 'openvpn', 'ping', 'ip', 'openssl']) {
    const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    if (r.exitCode !== 0) usage(`${tool} is missing: apt-get install -y iperf3 sockperf openvpn iputils-ping iproute2 openssl`);
  }
  // Benchmark processes print for minutes: keep the tail of their output only.
  const lab = new Lab({ prefix: `cb${(process.pid % 46656).toString(36)}`, maxOutputChars: 1 << 20 });
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}: cleaning up\n`);
    void lab
      .dispose()
      .catch((e: unknown) => process.stderr.write(`bench: ${(e as Error).message}\n`))
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const log = (line: string): void => void process.stderr.write(`bench: ${line}\n`);
  try {
    if (args.sections.includes('tunnel')) {
      const started = new Date();
      const measured = await runTunnelBench(lab, { seconds: args.seconds, rounds: args.rounds, only: args.only, roundTripsOnly: args.roundTripsOnly, log });
      const rows = withRatios(measured);
      const machine = {
        cores: cpus().length,
        cpu: cpus()[0]?.model ?? 'unknown',
        kernel: release(),
        node: process.version,
        openvpn: await version('openvpn', ['--version']),
        iperf3: await version('iperf3', ['--version']),
        sockperf: await version('sockperf', ['--version']),
      };
      const paired = pairedRoundTripLines(rows);
      process.stdout.write(`\n${table(rows)}\n${paired.length ? `\n${paired.join('\n')}\n` : ''}\n${machine.cores} cores (${machine.cpu}), kernel ${machine.kernel}, ${machine.openvpn.split(' ').slice(0, 2).join(' ')}; ${args.roundTripsOnly ? 'no transfers' : `iperf3 ${args.seconds} s per direction`}, sockperf ping-pong ${Math.min(args.seconds, RR_MAX_SECONDS)} s, ${args.rounds} round(s)\n`);
      const dir = fileURLToPath(new URL('./results/', import.meta.url));
      mkdirSync(dir, { recursive: true });
      const stamp = started.toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
      const file = `${dir}${stamp}.json`;
      writeFileSync(file, JSON.stringify({ started: started.toISOString(), machine, seconds: args.seconds, rounds: args.rounds, rows }, null, 2) + '\n');
      if (args.only === undefined && !args.roundTripsOnly) {
        writeFileSync(`${dir}tunnel.svg`, svgChart(rows, `${machine.cores} cores, kernel ${machine.kernel}, ${stamp.slice(0, 10)}; bars: ↑ client→server, ↓ server→client`));
      }
      log(`wrote ${file}${args.only === undefined && !args.roundTripsOnly ? ' and results/tunnel.svg' : ''}`);
    }
    if (args.sections.includes('hostile')) {
      const started = new Date();
      const rows = await runHostileBench(lab, { seconds: args.seconds, rounds: args.rounds, log });
      process.stdout.write(`\n${hostileTable(rows)}\n\n${cpus().length} cores; iperf3 ${args.seconds} s alone, under the bounded and the unbounded flood, in turn; median of ${args.rounds} round(s)\n`);
      const dir = fileURLToPath(new URL('./results/', import.meta.url));
      mkdirSync(dir, { recursive: true });
      const file = `${dir}hostile-${started.toISOString().replace(/[:]/g, '-').replace(/\..*/, '')}.json`;
      writeFileSync(file, JSON.stringify({ started: started.toISOString(), cores: cpus().length, seconds: args.seconds, rows }, null, 2) + '\n');
      log(`wrote ${file}`);
    }
    if (args.sections.includes('scale')) {
      const started = new Date();
      const summary = await runScaleBench(lab, { seconds: Math.max(args.seconds, 10), sessions: [0, 100, 1000], log });
      process.stdout.write(`\n${scaleTable(summary)}\n\n${cpus().length} cores; the bundled server on loopback in its own namespace, the load generator pinging each session once a second; CPU over ${Math.max(args.seconds, 10)} s\n`);
      const dir = fileURLToPath(new URL('./results/', import.meta.url));
      mkdirSync(dir, { recursive: true });
      const file = `${dir}scale-${started.toISOString().replace(/[:]/g, '-').replace(/\..*/, '')}.json`;
      writeFileSync(file, JSON.stringify({ started: started.toISOString(), cores: cpus().length, ...summary }, null, 2) + '\n');
      log(`wrote ${file}`);
    }
    if (args.sections.includes('aggregate')) {
      const started = new Date();
      const directions = args.only === undefined ? undefined : DIRECTIONS.filter((d) => args.only!.test(d));
      const summary = await runAggregateBench(lab, { seconds: args.seconds, rounds: args.rounds, log, directions });
      process.stdout.write(`\n${aggregateTable(summary)}\n\n${cpus().length} cores; one bundled server in separate mode, the clients' sessions from one load generator on its loopback; up: their UDP frames counted at the destinations, down: the destinations' answers counted at the clients; machine shared, compare within a run; ${args.seconds} s per cell, median of ${args.rounds} round(s)\n`);
      const dir = fileURLToPath(new URL('./results/', import.meta.url));
      mkdirSync(dir, { recursive: true });
      const file = `${dir}aggregate-${started.toISOString().replace(/[:]/g, '-').replace(/\..*/, '')}.json`;
      writeFileSync(file, JSON.stringify({ started: started.toISOString(), cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', kernel: release(), ...summary }, null, 2) + '\n');
      log(`wrote ${file}`);
    }
    return 0;
  } finally {
    await lab.dispose();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
