/**
 * ctun-run: the Docker deployments of the seed (RunVeos.py, RunCtunAndVeosSeparately.py)
 * plus status, stop and clean. Thin: parse, plan (tools/run), carry out, print.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { abortOnSignals, createLogger, ExitCode, metadata, TUNNEL_DEFAULTS, type Logger } from '../common/index.js';
import { yesNo } from '../image/index.js';
import { runSteps } from '../steps/index.js';
import {
  connectClient,
  DEFAULT_READY_PORTS,
  deploymentStatus,
  describePublished,
  formatStatusWithTunnel,
  withTunnelStatus,
  parseReadyPort,
  planIntegrated,
  planSeparated,
  removeDeployments,
  resolveRunTls,
  deploymentSteps,
  withTls,
  stopDeployments,
  type CommonRunOptions,
  type DeploymentPlan,
  type DeploymentResult,
  type Transport,
} from '../run/index.js';
import { connectDocker } from '../docker/index.js';
import { onceSignal, progressOf, runCommandBody, usageError } from './common.js';
import type { CommandModule } from 'yargs';

const PROGRAM = 'ctun-run';

interface Global {
  verbose?: boolean;
  progress?: string;
  'log-format'?: string;
}

// While listr2 draws progress, log lines would interleave with it: only warnings then.
function loggerOf(argv: Global, quietWithProgress = true): Logger {
  const quiet = quietWithProgress && progressOf(argv) !== 'silent' && !argv.verbose;
  return createLogger({ format: argv['log-format'] === 'json' ? 'json' : 'text', level: argv.verbose ? 'debug' : quiet ? 'warn' : 'info' });
}

function deployOptions<T>(y: Argv<T>) {
  return y
    .positional('image', { type: 'string', demandOption: true, describe: 'the simulator image' })
    .positional('licenseServer', { type: 'string', demandOption: true, describe: 'license server, host or port@host (passed as DS_CMU_SERVER)' })
    .option('veosDockerContainer', { type: 'string', default: 'dspace-veos', describe: 'name of the simulator container' })
    .option('shmSize', { type: 'string', default: '256m', describe: '/dev/shm of the simulator container' })
    .option('connect', { type: 'boolean', default: false, describe: 'then run the client on this host (makes the TAP first when root); Ctrl-C ends both' })
    .option('keep', { type: 'boolean', default: false, describe: 'with --connect: leave the deployment running when the client stops' })
    .option('transport', { choices: ['udp', 'tcp'] as const, default: TUNNEL_DEFAULTS.transport, describe: 'tunnel transport' })
    .option('hostPort', { type: 'number', default: TUNNEL_DEFAULTS.port, describe: 'port of the tunnel on the Docker host' })
    .option('publishAddress', { type: 'string', default: '', describe: 'host address the tunnel port is published on, IPv4 or IPv6 (default: all)' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address of the Docker host as the client sees it, a name, IPv4 or IPv6 (in the printed command and for --connect)' })
    .option('tap', { type: 'string', default: TUNNEL_DEFAULTS.clientTap, describe: 'client TAP' })
    .option('tapAddress', { type: 'string', default: TUNNEL_DEFAULTS.clientAddress, describe: 'address of the client TAP' })
    .option('env', { type: 'string', array: true, describe: 'extra environment of the simulator, NAME=VALUE (repeatable)' })
    .option('readyPort', {
      type: 'string',
      array: true,
      describe: 'the simulator is ready when this TCP port accepts, probed from the deployment\'s own network (tcp:N, repeatable; default tcp:27027, the port mapper)',
    })
    .option('readyLog', { type: 'string', describe: 'and when a line of its log matches this regular expression (optional)' })
    .option('timeout', { type: 'number', default: 90, describe: 'seconds to wait for each container to be ready' })
    .option('tls', { type: 'string', describe: 'mutual TLS with the certificates in this folder (ctun certs: ca.crt, server.crt/key, a client certificate, ca.crl if any); the server certificate must name --host' })
    .option('tlsClient', { type: 'string', describe: 'with --tls: the client certificate (NAME.crt, NAME.key) for the printed command and --connect (default: the only one in the folder)' })
    .option('print-plan', { type: 'boolean', default: false, describe: 'print the deployment plan as JSON and start nothing' });
}

function commonOf(argv: Record<string, any>): CommonRunOptions {
  if (!(argv.timeout > 0)) throw usageError(`--timeout must be a positive number of seconds, got "${argv.timeout}"`);
  return {
    image: String(argv.image),
    licenseServer: String(argv.licenseServer),
    veosDockerContainer: argv.veosDockerContainer,
    shmSize: argv.shmSize,
    transport: argv.transport as Transport,
    hostPort: argv.hostPort,
    publishAddress: argv.publishAddress,
    clientHost: argv.host,
    tap: argv.tap,
    tapAddress: argv.tapAddress,
    env: (argv.env ?? []).map(String),
    readyTimeoutMs: Math.round(argv.timeout * 1000),
    ...(argv.readyPort?.length ? { readyPorts: (argv.readyPort as unknown[]).flatMap((v) => String(v).split(',')).map((v) => parseReadyPort(v)) } : {}),
    ...(argv.readyLog !== undefined ? { readyLog: String(argv.readyLog) } : {}),
  };
}

function describeResult(r: DeploymentResult): string {
  const p = r.plan;
  const lines = [`deployment ${p.deployment} is ready (${p.kind})`];
  const sim = `ready (${r.readyPorts.map((p) => `${p.protocol}:${p.port}`).join(', ')} accept${p.containers.some((c) => c.ready.some((x) => x.kind !== 'port' && x.what === 'the simulator')) ? ', log line seen' : ''})`;
  for (const c of r.containers) {
    const addr = Object.entries(c.networks).map(([n, ip]) => `${ip} on ${n}`).join(', ');
    lines.push(`  ${c.role.padEnd(11)} ${c.name}  ${addr}`);
  }
  if (!p.client) {
    lines.push(`  simulator: ${sim}; no tunnel server (start one with --startCtun yes on an image built with --installCtun yes)`);
    return lines.join('\n') + '\n';
  }
  const [port, ...more] = p.containers.flatMap((c) => c.ports);
  const handshake = more.some((q) => q.protocol === 'tcp' && q.host === port!.host) ? ' (and tcp for the TLS handshake)' : '';
  lines.push(`  tunnel:    ${describePublished(port!)} on the Docker host${handshake}${p.client.tls ? ', mutual TLS' : ''}`);
  lines.push(`  simulator: ${sim}, at ${r.target} through the tunnel`);
  lines.push('on the PC, once, as root:', `  ${r.commands!.configure}`, 'then:', `  ${r.commands!.client}`);
  return lines.join('\n') + '\n';
}

/** `port mapper 27027` for the default contract, else `ready port 8080`. */
function readyPortName(r: DeploymentResult): string {
  const first = r.readyPorts[0];
  if (!first) return 'no ready port';
  return first.port === DEFAULT_READY_PORTS[0]!.port ? `port mapper ${first.port}` : `ready port ${first.port}`;
}

/** `--tls DIR`: the plan with the certificates mounted and the TLS flags on both ends. */
function tlsOf(argv: Record<string, any>, plan: DeploymentPlan): DeploymentPlan {
  if (argv.tls === undefined) {
    if (argv.tlsClient !== undefined) throw usageError('--tlsClient given without --tls', 'add --tls DIR');
    return plan;
  }
  return withTls(plan, resolveRunTls(String(argv.tls), { ...(argv.tlsClient ? { client: String(argv.tlsClient) } : {}), clientHost: String(argv.host) }));
}

async function deploy(argv: Record<string, any>, planGiven: DeploymentPlan): Promise<number> {
  const plan = tlsOf(argv, planGiven);
  if (argv['print-plan']) {
    process.stdout.write(JSON.stringify(plan, null, 2) + '\n');
    return ExitCode.Ok;
  }
  if (argv.connect && !plan.client) throw usageError('--connect needs a tunnel server, and none is started', 'add --startCtun yes');
  const logger = loggerOf(argv);
  const deployment = deploymentSteps(plan, { engine: connectDocker(), logger });
  const run = await abortOnSignals(PROGRAM, (signal) =>
    runSteps(deployment.steps, { progress: progressOf(argv), logger, signal, interruptedWhile: 'starting the deployment' }),
  );
  const result = deployment.result();
  process.stdout.write(describeResult(result));
  if (!argv.connect || !plan.client) return ExitCode.Ok;

  // The client in the foreground until Ctrl-C; then the deployment goes too (unless --keep).
  const clientLog = loggerOf(argv, false);
  const stop = onceSignal(['SIGINT', 'SIGTERM']);
  let client;
  try {
    client = await connectClient({ client: plan.client, ...(result.dest ? { dest: result.dest } : {}), logger: clientLog });
  } catch (e) {
    if (!argv.keep) await run.undo();
    throw e;
  }
  process.stdout.write(`connected: the simulator is at ${result.target} (${readyPortName(result)}); Ctrl-C ends the client${argv.keep ? '' : ' and the deployment'}\n`);
  const outcome = await Promise.race([stop.then((s) => ({ signal: s, error: undefined })), client.client.done.then((e) => ({ signal: undefined, error: e }))]);
  await client.stop(outcome.signal ? `stopped by ${outcome.signal}` : 'client ended');
  if (!argv.keep) {
    await run.undo();
    process.stdout.write(`removed deployment ${plan.deployment}\n`);
  } else {
    process.stdout.write(`deployment ${plan.deployment} keeps running; \`ctun-run clean\` removes it\n`);
  }
  if (outcome.error) throw outcome.error;
  return ExitCode.Ok;
}

/**
 * The k8s commands load @kubernetes/client-node, which costs seconds at start-up:
 * load them only when `k8s` is the command; otherwise a stand-in lists it in --help.
 */
async function k8sCommandModule(args: string[]): Promise<CommandModule<object, any>> {
  if (args[0] === 'k8s') return (await import('./ctun-run-k8s.js')).k8sCommand;
  return { command: 'k8s <command>', describe: 'Kubernetes: render the manifests, deploy integrated or separated, delete', builder: (y) => y, handler: () => {} };
}

async function main(): Promise<void> {
  const k8sCommand = await k8sCommandModule(hideBin(process.argv));
  // A closed pipe (`ctun-run … | head`) must not kill a run halfway, before its undo.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
  await yargs(hideBin(process.argv))
    .scriptName(PROGRAM)
    .usage('$0 <command>\n\nRuns the simulator and the tunnel server in Docker (Container Tunnel Utility 23.1 deployments).')
    .option('verbose', { type: 'boolean', default: false, describe: 'debug logs and the cause chain of errors' })
    .option('progress', { choices: ['tty', 'plain', 'json', 'silent'] as const, describe: 'progress output (default tty on a terminal, else plain)' })
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'log lines as text or JSON' })
    .command(
      'veos <image> <licenseServer>',
      'integrated deployment: the simulator and the tunnel server in one container (seed: RunVeos.py)',
      (y) =>
        deployOptions(y)
          .option('startCtun', { type: 'string', default: 'no', describe: 'yes: start the tunnel server inside (image built with --installCtun yes)' })
          .example(`$0 veos ${metadata.images.veosCtun} 22350@license-host --startCtun yes`, 'then on the PC: ctun client <docker-host>'),
      (argv) =>
        runCommandBody(PROGRAM, argv.verbose, async () =>
          deploy(argv, planIntegrated({ ...commonOf(argv), startCtun: yesNo(argv.startCtun, '--startCtun') })),
        ),
    )
    .command(
      'separate <image> <licenseServer>',
      'separated deployment: simulator and separate-mode tunnel server on one private network (seed: RunCtunAndVeosSeparately.py)',
      (y) =>
        deployOptions(y)
          .option('ctunDockerImage', { type: 'string', default: metadata.images.separateServer, describe: 'image of the tunnel server' })
          .option('ctunDockerContainer', { type: 'string', default: 'dspace-ctun-server', describe: 'name of the tunnel server container' })
          .option('dockerNetwork', { type: 'string', default: 'dspace-ctun', describe: 'name of the private network' })
          .option('subnet', { type: 'string', describe: 'its subnet (default: chosen by Docker)' })
          .example(`$0 separate ${metadata.images.veos} 22350@license-host`, 'then on the PC: ctun client <docker-host> --dest <printed address>'),
      (argv) =>
        runCommandBody(PROGRAM, argv.verbose, async () =>
          deploy(
            argv,
            planSeparated({
              ...commonOf(argv),
              ctunDockerImage: argv.ctunDockerImage,
              ctunDockerContainer: argv.ctunDockerContainer,
              dockerNetwork: argv.dockerNetwork,
              ...(argv.subnet ? { subnet: argv.subnet } : {}),
            }),
          ),
        ),
    )
    .command(
      'status',
      'list the deployments ctun-run started (labelled containers and networks) and their tunnel: clients, bytes, drops',
      (y) =>
        y
          .option('json', { type: 'boolean', default: false, describe: 'as JSON' })
          .option('deployment', { type: 'string', describe: 'only this one (its simulator container name)' }),
      (argv) =>
        runCommandBody(PROGRAM, argv.verbose, async () => {
          const engine = connectDocker();
          await engine.ping();
          const list = await withTunnelStatus(engine, await deploymentStatus(engine, argv.deployment));
          process.stdout.write(argv.json ? JSON.stringify(list, null, 2) + '\n' : formatStatusWithTunnel(list));
        }),
    )
    .command(
      'stop',
      'stop the containers of the deployments (kept for docker logs; clean removes them)',
      (y) => y.option('deployment', { type: 'string', describe: 'only this one (its simulator container name)' }),
      (argv) =>
        runCommandBody(PROGRAM, argv.verbose, async () => {
          const engine = connectDocker();
          await engine.ping();
          const stopped = await stopDeployments(engine, loggerOf(argv, false), argv.deployment ? { deployment: argv.deployment } : {});
          process.stdout.write(stopped.length ? `stopped ${stopped.join(', ')}\n` : 'nothing running\n');
        }),
    )
    .command(
      'clean',
      'remove every container and network ctun-run labelled (images stay)',
      (y) => y.option('deployment', { type: 'string', describe: 'only this one (its simulator container name)' }),
      (argv) =>
        runCommandBody(PROGRAM, argv.verbose, async () => {
          const engine = connectDocker();
          await engine.ping();
          const r = await removeDeployments(engine, loggerOf(argv, false), argv.deployment ? { deployment: argv.deployment } : {});
          const what = [...r.containers.map((c) => `container ${c}`), ...r.networks.map((n) => `network ${n}`)];
          process.stdout.write(what.length ? `removed ${what.join(', ')}\n` : 'nothing to remove\n');
        }),
    )
    .command(k8sCommand)
    .demandCommand(1, 'give a command: veos, separate, status, stop, clean or k8s')
    .strict()
    .recommendCommands()
    .version(metadata.ctunVersion)
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`${PROGRAM}: error: ${msg}\n${PROGRAM}: hint: see ${PROGRAM} --help\n`);
      process.exit(ExitCode.Usage);
    })
    .parseAsync();
}

await main();
