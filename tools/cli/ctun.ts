/**
 * `ctun`: the tunnel. Thin: parse, call tools/tunnel, print. Usage errors exit 1,
 * missing privileges 2, address in use 3, aborted 4, rejected by the peer 5.
 */
import { createInterface } from 'node:readline/promises';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createLogger, ExitCode, metadata, SERVER_CIDR, TUNNEL_DEFAULTS, type LogFormat, type Logger } from '../common/index.js';
import {
  addonPath,
  loadAddon,
  TunnelClient,
  TunnelServer,
  TapDevice,
  busyPollFigures,
  DEFAULT_BUSY_POLL_US,
  MAX_BUSY_POLL_US,
  assertServerMode,
  configure,
  DEFAULT_MAX_CLIENTS,
  DEFAULT_DEAD_AFTER_MS,
  MIN_DEAD_AFTER_MS,
  defaultTapUser,
  type Confirm,
  type TransportKind,
  type TunnelStats,
  type BusyPollStats,
  fetchStatus,
  formatTunnelStatus,
  metricsSetting,
  parseMetricsAddress,
  runStatusLine,
  serveMetrics,
  StatusLine,
  wantStatusLine,
  METRICS_ENV,
} from '../tunnel/index.js';
import { cliLogger, onceSignal, printError, runCommandBody, usageError } from './common.js';
import { loadTlsMaterial, nativeAeadAgrees, type TlsMaterial } from '../tunnel/secure/index.js';
import type { IssuedFiles } from '../certs/index.js';

const PROGRAM = 'ctun';

function withCommon<T>(y: Argv<T>) {
  return y
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'One event per line, as text or JSON' })
    .option('verbose', { type: 'boolean', default: false, describe: 'Debug lines, and the cause chain of errors' });
}

function withMetrics<T>(y: Argv<T>) {
  return y.option('metrics', {
    type: 'string',
    describe: `Serve Prometheus metrics, /healthz, /readyz and /status on [HOST:]PORT (loopback unless HOST is given; default off, or $${METRICS_ENV})`,
  });
}

function transportOf(value: string): TransportKind {
  if (value !== 'udp' && value !== 'tcp') throw usageError(`--transport must be udp or tcp, got "${value}"`);
  return value;
}

function portOf(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw usageError(`--port must be 1-65535, got "${value}"`);
  return value;
}

/** --dead-after-ms as typed: whole milliseconds, at least MIN_DEAD_AFTER_MS. */
function deadAfterOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!(ms >= MIN_DEAD_AFTER_MS)) {
    throw usageError(
      `--dead-after-ms must be a whole number of milliseconds, at least ${MIN_DEAD_AFTER_MS}, got "${value}"`,
      `keepalives go every 1000 ms: allow two or more, e.g. --dead-after-ms ${MIN_DEAD_AFTER_MS} (default ${DEFAULT_DEAD_AFTER_MS})`,
    );
  }
  return ms;
}

/** The --tls/--ca/--cert/--key/--crl group: all of ca, cert and key with --tls, none without. */
function withTls<T>(y: Argv<T>, role: 'server' | 'client') {
  return y
    .option('tls', { type: 'boolean', default: false, describe: 'Mutual TLS 1.3 with certificates from a private CA (ctun certs); TCP carries frames inside TLS or, after the welcome, in records sealed under its keys; UDP handshakes on TCP of the same port and seals every datagram' })
    .option('ca', { type: 'string', describe: 'With --tls: CA certificate (PEM) the peer\'s certificate must come from' })
    .option('cert', { type: 'string', describe: `With --tls: this ${role}'s certificate (PEM)` })
    .option('key', { type: 'string', describe: `With --tls: this ${role}'s private key (PEM, keep it 0600)` })
    .option('crl', { type: 'string', describe: 'With --tls: CRL of the CA (ctun certs revoke); revoked certificates are refused (a server reloads it on SIGHUP)' });
}

function tlsOf(argv: Record<string, any>): TlsMaterial | undefined {
  const given = ['ca', 'cert', 'key', 'crl'].filter((k) => argv[k] !== undefined);
  if (!argv.tls) {
    if (given.length > 0) throw usageError(`--${given.join(', --')} given without --tls`, 'add --tls, or drop the certificate options for plain mode');
    return undefined;
  }
  const missing = ['ca', 'cert', 'key'].filter((k) => argv[k] === undefined);
  if (missing.length > 0) throw usageError(`--tls needs --${missing.join(', --')}`, 'create them with: ctun certs init && ctun certs server|client');
  return loadTlsMaterial({ ca: argv.ca, cert: argv.cert, key: argv.key, crl: argv.crl });
}

/** --offload on|off and --busy-poll, the same on server and client. */
function withOffload<T>(y: Argv<T>) {
  return y
    .option('offload', {
      choices: ['on', 'off'],
      default: 'on',
      describe: 'The TAP\'s TCP segmentation and checksum offloads (64 KiB per read and write, cut into ordinary frames for the wire); on where the kernel has them',
    })
    .option('busy-poll', {
      type: 'string',
      default: String(DEFAULT_BUSY_POLL_US),
      describe: `After forwarding, check for the next frame for up to this many microseconds before sleeping (0: off): a lockstep round trip does not wait for the ends to wake; learned per source, so a spin that does not pay stops`,
    });
}

/** --busy-poll: whole microseconds, 0 to MAX_BUSY_POLL_US. */
function busyPollOf(value: string): number {
  const us = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!(us <= MAX_BUSY_POLL_US)) {
    throw usageError(
      `--busy-poll must be a whole number of microseconds from 0 to ${MAX_BUSY_POLL_US}, got "${value}"`,
      `a lockstep round trip needs about ${DEFAULT_BUSY_POLL_US} (the default); 0 turns busy polling off`,
    );
  }
  return us;
}

/** Opens the TAP with the offloads --offload asks for, and says in one line what it got. */
function openTap(name: string, role: 'create' | 'attach', argv: Record<string, any>, busyPollUs: number, log: Logger): TapDevice {
  const wanted = argv.offload !== 'off';
  const tap = new TapDevice(name, { role, offload: wanted, busyPollUs });
  log.info('tap-offload', { tap: tap.name, offload: tap.offload ? 'on' : 'off', ...(wanted && !tap.offload ? { reason: 'the kernel refused TUNSETOFFLOAD' } : {}), busyPollUs });
  return tap;
}

function statsFields(prefix: string, s: TunnelStats | BusyPollStats | Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(s)) out[`${prefix}${k}`] = v;
  return out;
}

async function runServer(argv: Record<string, any>, log: Logger): Promise<number> {
  const busyPollUs = busyPollOf(argv['busy-poll']);
  const server = new TunnelServer({
    listen: argv.listen,
    port: portOf(argv.port),
    transport: transportOf(argv.transport),
    mode: assertServerMode(argv.mode),
    tap: argv.tap,
    address: argv.address,
    mtu: argv.mtu,
    graceMs: argv['grace-ms'],
    helloTimeoutMs: argv['hello-timeout-ms'],
    allowDest: (argv['allow-dest'] as string[]).flatMap((c) => c.split(',')).filter((c) => c !== ''),
    isolateClients: argv['isolate-clients'],
    maxSessionsPerSource: argv['max-sessions-per-source'],
    maxSessions: argv['max-clients'],
    tls: tlsOf(argv),
    logger: log,
    openDevice: (name) => openTap(name, 'create', argv, busyPollUs, log),
    fastPath: argv['fast-path'] !== 'off',
  });
  const metrics = await serveMetrics(metricsSetting(argv.metrics), server, { role: 'server', transport: argv.transport, mode: argv.mode, tls: argv.tls, logger: log, busyPoll: busyPollFigures });
  const printStats = (event: string): void => {
    const s = server.stats();
    const { sealDrops, ...security } = s.security;
    log.info(event, {
      sessions: s.sessions,
      peers: s.peers,
      macs: s.macs,
      ...statsFields('clients.', s.clients),
      ...statsFields('tap.', s.tap),
      ...statsFields('security.', security),
      ...statsFields('sealDrops.', sealDrops),
      fastPathIn: s.fastPath.rx,
      fastPathOut: s.fastPath.tx,
      ...statsFields('switch.', s.switch),
      ...statsFields('busyPoll.', busyPollFigures()),
    });
  };
  process.on('SIGUSR1', () => printStats('stats'));
  // SIGHUP reloads the TLS files: a new CRL refuses revoked clients without a restart.
  process.on('SIGHUP', () => void server.reloadTls());
  const stop = onceSignal(['SIGTERM', 'SIGINT']);
  try {
    await server.start();
  } catch (e) {
    await metrics.close();
    throw e;
  }
  const signal = await stop;
  log.info('server-stopping', { signal });
  await server.stop(`stopped by ${signal}`);
  await metrics.close();
  printStats('stats-final');
  return ExitCode.Ok;
}

async function runClient(argv: Record<string, any>, baseLog: Logger): Promise<number> {
  const busyPollUs = busyPollOf(argv['busy-poll']);
  // In a terminal with text logs, one live status line stays under the log lines.
  const line = wantStatusLine(process.stdout, argv['log-format']) ? new StatusLine(process.stdout) : undefined;
  const log = line === undefined ? baseLog : createLogger({
    format: argv['log-format'] as LogFormat,
    level: argv.verbose ? 'debug' : 'info',
    out: { write: (s: string) => line.above(() => process.stdout.write(s)) },
    err: { write: (s: string) => line.above(() => process.stderr.write(s)) },
  });
  let observeRtt = (_ms: number): void => {};
  const client = new TunnelClient({
    onRtt: (ms) => observeRtt(ms),
    host: argv.host,
    port: portOf(argv.port),
    transport: transportOf(argv.transport),
    tap: argv.tap,
    dest: argv.dest,
    deadAfterMs: deadAfterOf(argv['dead-after-ms']),
    tls: tlsOf(argv),
    logger: log,
    openDevice: (name) => openTap(name, 'attach', argv, busyPollUs, log),
    fastPath: argv['fast-path'] !== 'off',
  });
  const printStats = (event: string): void => {
    const stats = statsFields('', client.syncedStats());
    const fast = client.fastPathFrames();
    log.info(event, { ...stats, fastPathIn: fast.rx, fastPathOut: fast.tx, ...statsFields('busyPoll.', busyPollFigures()) });
  };
  process.on('SIGUSR1', () => printStats('stats'));
  const metrics = await serveMetrics(metricsSetting(argv.metrics), client, { role: 'client', transport: argv.transport, mode: argv.dest === undefined ? 'local' : 'separate', tls: argv.tls, logger: log, busyPoll: busyPollFigures });
  observeRtt = metrics.observeRtt;
  try {
    await client.start();
  } catch (e) {
    await metrics.close();
    throw e;
  }
  const stopLine = line === undefined ? () => {} : runStatusLine(line, () => client.figures());
  const outcome = await Promise.race([client.done.then((e) => ({ kind: 'done' as const, e })), onceSignal(['SIGTERM', 'SIGINT']).then((s) => ({ kind: 'signal' as const, s }))]);
  stopLine();
  if (outcome.kind === 'signal') {
    log.info('client-stopping', { signal: outcome.s });
    await client.stop(`stopped by ${outcome.s}`);
    await metrics.close();
    printStats('stats-final');
    return ExitCode.Ok;
  }
  await metrics.close();
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
  if (argv.tap !== undefined && argv.address === undefined) throw usageError('--tap NAME needs an ADDRESS', `ctun configure --tap ${TUNNEL_DEFAULTS.clientTap} ${TUNNEL_DEFAULTS.clientAddress}`);
  if (argv.address !== undefined && argv.tap === undefined) throw usageError(`ADDRESS ${argv.address} given without --tap NAME`, `ctun configure --tap ${TUNNEL_DEFAULTS.clientTap} ${TUNNEL_DEFAULTS.clientAddress}`);
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

async function runCerts(argv: Record<string, any>): Promise<number> {
  // Loaded here, not at the top: the X.509 library and its ASN.1 schemas are a third
  // of the program and would sit in every tunnel end's memory otherwise.
  const { initCa, issueClient, issueServer, issueSigner, revoke } = await import('../certs/index.js');
  const out: string = argv.out;
  const common = { out, days: argv.days, force: argv.force };
  const print = (lines: string[]): void => void process.stdout.write(lines.map((l) => `${l}\n`).join(''));
  const describe = (what: string, f: IssuedFiles): string[] => [
    `ctun certs: ${what} ${f.subject}, serial ${f.serial}, valid until ${f.notAfter.toISOString()}`,
    ...(f.names && f.names.length > 0 ? [`  names: ${f.names.join(', ')}`] : []),
    `  certificate: ${f.cert}`,
    `  private key: ${f.key} (0600)`,
  ];
  switch (argv.action as 'init' | 'server' | 'client' | 'signer' | 'revoke') {
    case 'init':
      print([...describe('CA', await initCa({ ...common, name: argv.name })), `next: ctun certs server --out ${out} --host ADDRESS, ctun certs client NAME --out ${out}`]);
      break;
    case 'server':
      print(describe('server certificate', await issueServer({ ...common, name: argv.name, names: argv.host })));
      break;
    case 'client':
      if (argv.name === undefined) throw usageError('ctun certs client needs the client name (its CN)', 'ctun certs client alice --out ' + out);
      print(describe('client certificate', await issueClient({ ...common, name: argv.name })));
      break;
    case 'signer':
      if (argv.name === undefined) throw usageError('ctun certs signer needs the signer name (its CN)', 'ctun certs signer release-team --out ' + out);
      print([...describe('signing certificate (codeSigning)', await issueSigner({ ...common, name: argv.name })), `  sign bundles with: ctun-build bundle --sign ${out}/${argv.name}.key …; verify with: ctun-build load --verify ${out}/ca.crt …`]);
      break;
    case 'revoke': {
      if (argv.cert.length === 0 && argv.serial.length === 0) throw usageError('ctun certs revoke needs --cert FILE or --serial HEX');
      const r = await revoke({ ...common, certs: argv.cert, serials: argv.serial });
      print([`ctun certs: ${r.revoked.length} revoked serial(s) in ${r.crl}`, `  start the server with --crl ${r.crl} (a running server loads a new CRL on SIGHUP)`]);
      break;
    }
  }
  return ExitCode.Ok;
}

export async function main(args: string[]): Promise<void> {
  // `--version --verbose` also loads the TAP addon and names its file and the Node
  // running it: which build a host uses (compiled, prebuilt, the image's) is one
  // command away, and a binary that does not load says so here.
  if (args.includes('--version') && args.includes('--verbose')) {
    process.stdout.write(`${metadata.ctunVersion}\n`);
    let aead: boolean;
    try {
      loadAddon();
      aead = nativeAeadAgrees();
    } catch (e) {
      process.exit(printError(PROGRAM, e, true));
    }
    process.stdout.write(`addon: ${addonPath()}\nnode: ${process.version} ${process.execPath}\naead: ${aead ? 'the addon (agrees with node:crypto)' : 'node:crypto (the addon disagrees)'}\n`);
    return;
  }
  const parser = yargs(args)
    .scriptName(PROGRAM)
    .usage('$0 <command>\n\nLayer-2 tunnel to simulators in containers: a TAP on this host, Ethernet frames over UDP (or TCP) to a server beside the simulator.')
    .command(
      'configure [address]',
      'Create the persistent TAP the client uses (run once, as root)',
      (y) =>
        withCommon(y)
          .positional('address', { type: 'string', describe: `IPv4 address of the TAP, e.g. ${TUNNEL_DEFAULTS.clientAddress}` })
          .option('tap', { type: 'string', describe: 'Name of the TAP to create or update' })
          .option('prefix', { type: 'number', default: TUNNEL_DEFAULTS.prefix, describe: 'Prefix length of the address' })
          .option('user', { type: 'string', describe: 'Owner of the TAP, so the client needs no root (default: $SUDO_USER or you)' })
          .option('mtu', { type: 'number', default: TUNNEL_DEFAULTS.mtu, describe: `MTU of the TAP; ${TUNNEL_DEFAULTS.mtu} leaves room for the tunnel headers` })
          .option('non-interactive', { type: 'boolean', default: false, describe: 'Do not ask for confirmation' })
          .option('remove', { type: 'string', describe: 'Remove this TAP' })
          .option('promisc', { type: 'string', describe: 'Put this interface into promiscuous mode' })
          .option('drop-ip', { type: 'string', describe: 'With --promisc: remove the IP addresses of this interface' })
          .option('blackhole', { type: 'string', describe: 'With --promisc: add a blackhole route for this IP' })
          .example(`sudo $0 configure --tap ${TUNNEL_DEFAULTS.clientTap} ${TUNNEL_DEFAULTS.clientAddress} --non-interactive`, 'the seed\'s configure.sh line'),
      (argv) => runCommandBody(PROGRAM, argv.verbose, () => runConfigure(argv, cliLogger(argv))),
    )
    .command(
      'server',
      'Run the tunnel server beside the simulator (local) or on its subnet (separate)',
      (y) =>
        withOffload(withMetrics(withTls(withCommon(y), 'server')))
          .option('listen', { type: 'string', default: '0.0.0.0', describe: 'Address to bind' })
          .option('port', { type: 'number', default: TUNNEL_DEFAULTS.port, describe: 'Port to listen on' })
          .option('transport', { choices: ['udp', 'tcp'], default: TUNNEL_DEFAULTS.transport, describe: 'UDP, or TCP for networks that pass only TCP' })
          .option('mode', { choices: ['local', 'separate'], default: 'local', describe: 'local: switch clients onto this TAP; separate: route and NAT to the --dest clients name' })
          .option('tap', { type: 'string', default: TUNNEL_DEFAULTS.serverTap, describe: 'TAP to create' })
          .option('address', { type: 'string', default: SERVER_CIDR, describe: 'Tunnel address of the server TAP' })
          .option('mtu', { type: 'number', default: TUNNEL_DEFAULTS.mtu, describe: 'MTU of the TAP' })
          .option('grace-ms', { type: 'number', default: 30_000, describe: 'How long a disconnected client\'s session is kept for a resume' })
          .option('hello-timeout-ms', { type: 'number', default: 5000, describe: 'A TCP connection that has not said hello (or finished TLS) by then is closed' })
          .option('allow-dest', { type: 'array', string: true, default: [] as string[], describe: 'Separate mode: an IPv4 or IPv6 CIDR clients may name with --dest (repeatable); default: any host the server routes to' })
          .option('max-clients', { type: 'number', default: DEFAULT_MAX_CLIENTS, describe: 'Most clients at once (sessions in their grace period count); the one beyond is refused with ServerFull and retries' })
          .option('isolate-clients', { type: 'boolean', default: false, describe: 'Clients reach the server side but not each other' })
          .option('max-sessions-per-source', { type: 'number', default: 16, describe: 'Most sessions created from one IP address' })
          .option('fast-path', {
            choices: ['on', 'off'],
            default: 'on',
            describe: 'Data frames between clients and the TAP inside the native addon where switch and policy pass them (plain UDP or TCP over IPv4; --tls always takes the JavaScript path)',
          })
          .group(['tls', 'ca', 'cert', 'key', 'crl', 'allow-dest', 'isolate-clients', 'max-sessions-per-source'], 'Security:')
          .example('$0 server --tls --ca ca.crt --cert server.crt --key server.key', 'mutual TLS; clients need a certificate from ca.crt')
          .example(`$0 server --metrics 0.0.0.0:${metadata.metricsPort}`, 'Prometheus metrics and health endpoints for scrapers and probes on every address')
          .example('$0 server --mode separate --allow-dest 172.17.0.0/16', 'clients may reach only hosts in 172.17.0.0/16, each only the one it names'),
      (argv) => runCommandBody(PROGRAM, argv.verbose, () => runServer(argv, cliLogger(argv))),
    )
    .command(
      'client <host>',
      'Connect this host\'s TAP to a tunnel server',
      (y) =>
        withOffload(withMetrics(withTls(withCommon(y), 'client')))
          .positional('host', { type: 'string', demandOption: true, describe: 'Server address' })
          .option('port', { type: 'number', default: TUNNEL_DEFAULTS.port, describe: 'Server port' })
          .option('transport', { choices: ['udp', 'tcp'], default: TUNNEL_DEFAULTS.transport, describe: 'Must match the server' })
          .option('tap', { type: 'string', default: TUNNEL_DEFAULTS.clientTap, describe: 'TAP made by ctun configure' })
          .option('dest', { type: 'string', describe: 'Separate mode: target IPv4 or IPv6 address to route through the tunnel' })
          .option('dead-after-ms', { type: 'string', describe: `Nothing heard from the server for this long (ms, at least ${MIN_DEAD_AFTER_MS}) means the link is lost and the client reconnects; default ${DEFAULT_DEAD_AFTER_MS}` })
          .option('fast-path', {
            choices: ['on', 'off'],
            default: 'on',
            describe: 'Data frames between TAP and server inside the native addon while connected (plain UDP or TCP over IPv4; --tls always takes the JavaScript path)',
          })
          .example('$0 client 127.0.0.1', 'integrated deployment')
          .example('$0 client 127.0.0.1 --dest 172.17.0.2', 'separated deployment')
          .example('$0 client fd77::2 --dest fd00:17::2', 'separated deployment, IPv6 underlay and target')
          .example('$0 client 10.0.0.5 --tls --ca ca.crt --cert alice.crt --key alice.key', 'mutual TLS; the server certificate must list 10.0.0.5')
          .group(['tls', 'ca', 'cert', 'key', 'crl'], 'Security:'),
      (argv) => runCommandBody(PROGRAM, argv.verbose, () => runClient(argv, cliLogger(argv))),
    )
    .command(
      'status',
      'Show a running server\'s clients, bytes and drops (or a client\'s link), from its --metrics endpoint',
      (y) =>
        y
          .option('metrics', { type: 'string', describe: `[HOST:]PORT of the endpoint (default $${METRICS_ENV}, else ${metadata.metricsPort} on loopback)` })
          .option('json', { type: 'boolean', default: false, describe: 'The figures as JSON, for scripts' })
          .option('verbose', { type: 'boolean', default: false, describe: 'The cause chain of errors' })
          .example('$0 status', 'the server or client on this host with --metrics ' + metadata.metricsPort),
      (argv) =>
        runCommandBody(PROGRAM, argv.verbose, async () => {
          const figures = await fetchStatus(parseMetricsAddress(metricsSetting(argv.metrics) ?? String(metadata.metricsPort)));
          process.stdout.write(argv.json ? JSON.stringify(figures, null, 2) + '\n' : formatTunnelStatus(figures).join('\n') + '\n');
        }),
    )
    .command(
      'certs <action> [name]',
      'Create a private CA and the certificates for --tls and signed bundles (init, server, client, signer, revoke)',
      (y) =>
        y
          .positional('action', { choices: ['init', 'server', 'client', 'signer', 'revoke'] as const, demandOption: true, describe: 'init: the CA; server|client: a certificate signed by it; signer: a code-signing certificate for ctun-build bundle --sign; revoke: add to the CRL' })
          .positional('name', { type: 'string', describe: 'server: file and CN (default server); client, signer: the identity (CN), required' })
          .option('out', { type: 'string', default: 'ctun-certs', describe: 'Folder of the CA and the certificates (keys are written 0600)' })
          .option('host', { type: 'array', string: true, default: [] as string[], describe: 'server: a DNS name or IP address clients dial (repeatable, or comma-separated)' })
          .option('days', { type: 'number', describe: 'Validity in days (CA 3650, certificates 825; revoke: CRL validity)' })
          .option('cert', { type: 'array', string: true, default: [] as string[], describe: 'revoke: certificate file(s) to revoke' })
          .option('serial', { type: 'array', string: true, default: [] as string[], describe: 'revoke: serial number(s) to revoke, hex' })
          .option('force', { type: 'boolean', default: false, describe: 'Replace existing files' })
          .option('verbose', { type: 'boolean', default: false, describe: 'The cause chain of errors' })
          .example('$0 certs init --out pki', 'the CA: pki/ca.crt, pki/ca.key')
          .example('$0 certs server --out pki --host 127.0.0.1 --host ctun.example', 'pki/server.crt for those names')
          .example('$0 certs client alice --out pki', 'pki/alice.crt, CN=alice')
          .example('$0 certs signer release-team --out pki', 'pki/release-team.crt (codeSigning): ctun-build bundle --sign pki/release-team.key')
          .example('$0 certs revoke --out pki --cert pki/alice.crt', 'pki/ca.crl; start the server with --crl pki/ca.crl'),
      (argv) => runCommandBody(PROGRAM, argv.verbose, () => runCerts(argv)),
    )
    .demandCommand(1, 'give a command: configure, server, client, status or certs')
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
