/**
 * `ctun`: the tunnel. Thin: parse, call tools/tunnel, print. Usage errors exit 1,
 * missing privileges 2, address in use 3, aborted 4, rejected by the peer 5.
 */
import { createInterface } from 'node:readline/promises';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode, metadata, type Logger } from '../common/index.js';
import {
  TunnelClient,
  TunnelServer,
  TapDevice,
  assertServerMode,
  configure,
  defaultTapUser,
  type Confirm,
  type TransportKind,
  type TunnelStats,
} from '../tunnel/index.js';
import { cliLogger, onceSignal, printError, runCommandBody, usageError } from './common.js';

const PROGRAM = 'ctun';

function withCommon<T>(y: Argv<T>) {
  return y
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'One event per line, as text or JSON' })
    .option('verbose', { type: 'boolean', default: false, describe: 'Debug lines, and the cause chain of errors' });
}

function transportOf(value: string): TransportKind {
  if (value !== 'udp' && value !== 'tcp') throw usageError(`--transport must be udp or tcp, got "${value}"`);
  return value;
}

function portOf(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw usageError(`--port must be 1-65535, got "${value}"`);
  return value;
}

function statsFields(prefix: string, s: TunnelStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(s)) out[`${prefix}${k}`] = v;
  return out;
}

async function runServer(argv: Record<string, any>, log: Logger): Promise<number> {
  const server = new TunnelServer({
    listen: argv.listen,
    port: portOf(argv.port),
    transport: transportOf(argv.transport),
    mode: assertServerMode(argv.mode),
    tap: argv.tap,
    address: argv.address,
    mtu: argv.mtu,
    graceMs: argv['grace-ms'],
    logger: log,
    openDevice: (name) => new TapDevice(name, { role: 'create' }),
  });
  const printStats = (event: string): void => {
    const s = server.stats();
    log.info(event, { sessions: s.sessions, macs: s.macs, ...statsFields('clients.', s.clients), ...statsFields('tap.', s.tap) });
  };
  process.on('SIGUSR1', () => printStats('stats'));
  const stop = onceSignal(['SIGTERM', 'SIGINT']);
  await server.start();
  const signal = await stop;
  log.info('server-stopping', { signal });
  await server.stop(`stopped by ${signal}`);
  printStats('stats-final');
  return ExitCode.Ok;
}

async function runClient(argv: Record<string, any>, log: Logger): Promise<number> {
  const client = new TunnelClient({
    host: argv.host,
    port: portOf(argv.port),
    transport: transportOf(argv.transport),
    tap: argv.tap,
    dest: argv.dest,
    logger: log,
    openDevice: (name) => new TapDevice(name),
  });
  const printStats = (event: string): void => log.info(event, statsFields('', client.stats));
  process.on('SIGUSR1', () => printStats('stats'));
  await client.start();
  const outcome = await Promise.race([client.done.then((e) => ({ kind: 'done' as const, e })), onceSignal(['SIGTERM', 'SIGINT']).then((s) => ({ kind: 'signal' as const, s }))]);
  if (outcome.kind === 'signal') {
    log.info('client-stopping', { signal: outcome.s });
    await client.stop(`stopped by ${outcome.s}`);
    printStats('stats-final');
    return ExitCode.Ok;
  }
  printStats('stats-final');
  if (outcome.e !== undefined) throw outcome.e;
  return ExitCode.Ok;
}

const stdinConfirm: Confirm = async (question) => {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await Promise.race([rl.question(question), new Promise<string>((resolve) => rl.once('close', () => resolve('')))]);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
};

async function runConfigure(argv: Record<string, any>, log: Logger): Promise<number> {
  if (argv.tap !== undefined && argv.address === undefined) throw usageError('--tap NAME needs an ADDRESS', 'ctun configure --tap dstap0 192.168.100.100');
  if (argv.address !== undefined && argv.tap === undefined) throw usageError(`ADDRESS ${argv.address} given without --tap NAME`, 'ctun configure --tap dstap0 192.168.100.100');
  const result = await configure(
    {
      tap: argv.tap === undefined ? undefined : { name: argv.tap, address: String(argv.address), prefix: argv.prefix, user: argv.user ?? defaultTapUser(), mtu: argv.mtu },
      remove: argv.remove,
      promisc: argv.promisc,
      dropIp: argv['drop-ip'],
      blackhole: argv.blackhole,
    },
    { logger: log, confirm: argv['non-interactive'] ? undefined : stdinConfirm },
  );
  process.stdout.write(`ctun configure: done\n${result.actions.map((a) => `  - ${a}`).join('\n')}\n`);
  return ExitCode.Ok;
}

export async function main(args: string[]): Promise<void> {
  const parser = yargs(args)
    .scriptName(PROGRAM)
    .usage('$0 <command>\n\nLayer-2 tunnel to simulators in containers: a TAP on this host, Ethernet frames over UDP (or TCP) to a server beside the simulator.')
    .command(
      'configure [address]',
      'Create the persistent TAP the client uses (run once, as root)',
      (y) =>
        withCommon(y)
          .positional('address', { type: 'string', describe: 'IPv4 address of the TAP, e.g. 192.168.100.100' })
          .option('tap', { type: 'string', describe: 'Name of the TAP to create or update' })
          .option('prefix', { type: 'number', default: 24, describe: 'Prefix length of the address' })
          .option('user', { type: 'string', describe: 'Owner of the TAP, so the client needs no root (default: $SUDO_USER or you)' })
          .option('mtu', { type: 'number', default: 1400, describe: 'MTU of the TAP; 1400 leaves room for the tunnel headers' })
          .option('non-interactive', { type: 'boolean', default: false, describe: 'Do not ask for confirmation' })
          .option('remove', { type: 'string', describe: 'Remove this TAP' })
          .option('promisc', { type: 'string', describe: 'Put this interface into promiscuous mode' })
          .option('drop-ip', { type: 'string', describe: 'With --promisc: remove the IP addresses of this interface' })
          .option('blackhole', { type: 'string', describe: 'With --promisc: add a blackhole route for this IP' })
          .example('sudo $0 configure --tap dstap0 192.168.100.100 --non-interactive', 'the seed\'s configure.sh line'),
      (argv) => runCommandBody(PROGRAM, argv.verbose, () => runConfigure(argv, cliLogger(argv))),
    )
    .command(
      'server',
      'Run the tunnel server beside the simulator (local) or on its subnet (separate)',
      (y) =>
        withCommon(y)
          .option('listen', { type: 'string', default: '0.0.0.0', describe: 'Address to bind' })
          .option('port', { type: 'number', default: metadata.defaultPort, describe: 'Port to listen on' })
          .option('transport', { choices: ['udp', 'tcp'], default: 'udp', describe: 'UDP, or TCP for networks that pass only TCP' })
          .option('mode', { choices: ['local', 'separate'], default: 'local', describe: 'local: switch clients onto this TAP; separate: route and NAT to the --dest clients name' })
          .option('tap', { type: 'string', default: 'ctun0', describe: 'TAP to create' })
          .option('address', { type: 'string', default: '192.168.100.1/24', describe: 'Tunnel address of the server TAP' })
          .option('mtu', { type: 'number', default: 1400, describe: 'MTU of the TAP' })
          .option('grace-ms', { type: 'number', default: 30_000, describe: 'How long a disconnected client\'s session is kept for a resume' }),
      (argv) => runCommandBody(PROGRAM, argv.verbose, () => runServer(argv, cliLogger(argv))),
    )
    .command(
      'client <host>',
      'Connect this host\'s TAP to a tunnel server',
      (y) =>
        withCommon(y)
          .positional('host', { type: 'string', demandOption: true, describe: 'Server address' })
          .option('port', { type: 'number', default: metadata.defaultPort, describe: 'Server port' })
          .option('transport', { choices: ['udp', 'tcp'], default: 'udp', describe: 'Must match the server' })
          .option('tap', { type: 'string', default: 'dstap0', describe: 'TAP made by ctun configure' })
          .option('dest', { type: 'string', describe: 'Separate mode: target IP to route through the tunnel' })
          .example('$0 client 127.0.0.1', 'integrated deployment')
          .example('$0 client 127.0.0.1 --dest 172.17.0.2', 'separated deployment'),
      (argv) => runCommandBody(PROGRAM, argv.verbose, () => runClient(argv, cliLogger(argv))),
    )
    .demandCommand(1, 'give a command: configure, server or client')
    .strict()
    .version(metadata.ctunVersion)
    .help()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      if (err) {
        process.exit(printError(PROGRAM, err, args.includes('--verbose')));
      }
      process.stderr.write(`${PROGRAM}: error: ${msg}\n${PROGRAM}: hint: see ${PROGRAM} --help\n`);
      process.exit(ExitCode.Usage);
    });
  await parser.parseAsync();
}

await main(hideBin(process.argv));
