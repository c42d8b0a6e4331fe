/**
 * `ctun-run k8s`: the seed's Kubernetes examples as commands. Thin: parse, call
 * tools/k8s, print. Mounted by ctun-run as the `k8s` command.
 *
 *   ctun-run k8s render [--out DIR] [--check]
 *   ctun-run k8s integrated LICENSE_SERVER [--context C] [--namespace N] [--via nodeport|port-forward] [--connect]
 *   ctun-run k8s separate LICENSE_SERVER [...same]
 *   ctun-run k8s delete [--context C] [--namespace N]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { ExitCode, TUNNEL_DEFAULTS, type Logger } from '../common/index.js';
import {
  accessLines,
  assertValid,
  clientArgs,
  ClusterApi,
  contextNamespace,
  deleteDeployment,
  deploy,
  forwardTo,
  loadKubeConfig,
  MANIFEST_FILES,
  renderManifests,
  SCHEMA_VERSIONS,
  staleManifests,
  writeManifests,
  type Deployed,
  type DeploymentMode,
  type K8sParams,
  type LocalForward,
  type Via,
} from '../k8s/index.js';
import { cliLogger, onceSignal, runCommandBody, usageError } from './common.js';

const PROGRAM = 'ctun-run k8s';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

type Args = Record<string, any>;

/** The manifest parameters as options (defaults are the seed's, see tools/k8s/params.ts). */
function withParams<T>(y: Argv<T>) {
  return y
    .option('registry', { type: 'string', describe: 'Registry prefixed to every image (default: none; images loaded with minikube image load)' })
    .option('veos-image', { type: 'string', describe: 'Simulator image (default from metadata.json)' })
    .option('local-server-image', { type: 'string', describe: 'Tunnel server image of the integrated pod (default from metadata.json)' })
    .option('separate-server-image', { type: 'string', describe: 'Tunnel server image of the separated deployment (default from metadata.json)' })
    .option('replicas', { type: 'number', describe: 'Simulator pods of the separated deployment (default 5)' })
    .option('port', { type: 'number', describe: `Tunnel port in the pods and on the Service (default ${TUNNEL_DEFAULTS.port})` })
    .option('node-port', { type: 'number', describe: 'Fixed NodePort, 30000-32767 (default: allocated by the cluster)' })
    .option('transport', { choices: ['udp', 'tcp'], describe: 'Tunnel transport (default udp; tcp with --via port-forward)' })
    .option('ip-family', {
      choices: ['dual', 'ipv4', 'ipv6'],
      describe: 'IP families of the tunnel: dual (default: the server listens on ::, Service PreferDualStack, the node address listed first), ipv4 (0.0.0.0, the batch socket; IPv4 Service and node address) or ipv6 (IPv6 Service and node address)',
    })
    .option('tls-secret', { type: 'string', describe: 'Secret with ca.crt, tls.crt, tls.key: mounted, and the server runs with --tls' })
    .option('crl', { type: 'boolean', describe: 'The TLS secret also holds ca.crl (ctun certs revoke): mounted, and the server runs with --crl' })
    .option('shm-size', { type: 'string', describe: 'Size of the simulator\'s /dev/shm (default 256Mi)' })
    .option('ready-port', { type: 'number', describe: 'TCP port whose accepting makes the simulator ready: its startup, readiness and liveness probes (default 27027, the port mapper)' })
    .option('image-pull-policy', { choices: ['IfNotPresent', 'Always', 'Never'], describe: 'imagePullPolicy of every container (default IfNotPresent)' });
}

function paramsOf(argv: Args): K8sParams {
  return {
    licenseServer: argv.licenseServer ?? argv['license-server'],
    registry: argv.registry,
    veosImage: argv['veos-image'],
    localServerImage: argv['local-server-image'],
    separateServerImage: argv['separate-server-image'],
    replicas: argv.replicas,
    port: argv.port,
    nodePort: argv['node-port'],
    transport: argv.transport,
    ipFamily: argv['ip-family'],
    tlsSecret: argv['tls-secret'],
    crl: argv.crl,
    shmSize: argv['shm-size'],
    readyPort: argv['ready-port'],
    imagePullPolicy: argv['image-pull-policy'],
  };
}

async function runRender(argv: Args, log: Logger): Promise<number> {
  const rendered = renderManifests({ ...paramsOf(argv), namespace: argv.namespace });
  if (argv.validate) {
    for (const v of SCHEMA_VERSIONS) assertValid(rendered.flatMap((m) => m.objects), v, 'the rendered manifests');
    log.info('k8s-valid', { versions: SCHEMA_VERSIONS.join(',') });
  }
  const out = resolve(argv.out);
  if (argv.check) {
    const stale = staleManifests(out, rendered);
    if (stale.length > 0) {
      process.stderr.write(`${PROGRAM}: error: stale in ${out}: ${stale.join(', ')}\n${PROGRAM}: hint: run ctun-run k8s render --out ${argv.out}\n`);
      return ExitCode.Usage;
    }
    process.stdout.write(`${out}: ${Object.values(MANIFEST_FILES).join(', ')} are current\n`);
    return ExitCode.Ok;
  }
  for (const path of writeManifests(out, rendered)) process.stdout.write(`wrote ${path}\n`);
  return ExitCode.Ok;
}

/** The ctun of this checkout, run by the project's pinned Node. */
function ctunInvocation(args: string[]): { command: string; args: string[] } {
  const node = join(ROOT, 'node_modules', '.bin', 'node');
  return { command: existsSync(node) ? node : process.execPath, args: [join(ROOT, 'bin', 'ctun.js'), ...args] };
}

function printAccess(d: Deployed, args: string[]): void {
  process.stdout.write(accessLines(d, args).join('\n') + '\n');
}

async function runDeploy(mode: DeploymentMode, argv: Args, log: Logger): Promise<number> {
  const via = argv.via as Via;
  if (argv.timeout <= 0) throw usageError(`--timeout must be a positive number of seconds, got ${argv.timeout}`);
  // The client's certificate lives on this PC, not in the Secret: --connect has none to give.
  if (argv.connect && argv['tls-secret']) {
    throw usageError('--connect would start a client without a certificate, and with --tls-secret the server refuses those', 'leave out --connect and run the printed command with your client certificate (ctun certs client NAME)');
  }
  const kc = loadKubeConfig({ context: argv.context });
  const api = new ClusterApi(kc);
  const namespace = argv.namespace ?? contextNamespace(kc);
  const params = { ...paramsOf(argv), licenseServer: String(argv.licenseServer) };
  const d = await deploy({ mode, via, params, namespace, api, logger: log, timeoutMs: argv.timeout * 1000, nodeAddress: argv['node-address'] });
  let fwd: LocalForward | undefined;
  try {
    if (via === 'port-forward') {
      fwd = await forwardTo(d, api.portForwardOpener(), { port: params.port ?? TUNNEL_DEFAULTS.port, localPort: argv['local-port'], logger: log });
    }
    const args = clientArgs(d, fwd ? { port: fwd.localPort } : undefined);
    // With TLS the printed command names the files a client needs (placeholders for its own).
    printAccess(d, argv['tls-secret'] ? [...args, '--tls', '--ca', 'ca.crt', '--cert', 'CLIENT.crt', '--key', 'CLIENT.key'] : args);
    if (argv.connect) {
      const run = ctunInvocation(args);
      log.info('k8s-client-start', { command: [run.command, ...run.args].join(' ') });
      const child = spawn(run.command, run.args, { stdio: 'inherit' });
      const stop = (s: NodeJS.Signals): void => void child.kill(s);
      process.on('SIGINT', stop).on('SIGTERM', stop);
      const code = await new Promise<number>((resolveExit) => child.on('exit', (c, s) => resolveExit(c ?? (s ? ExitCode.Interrupted : ExitCode.Failure))));
      process.off('SIGINT', stop).off('SIGTERM', stop);
      return code;
    }
    if (fwd) {
      process.stdout.write(`# the port-forward stays open on 127.0.0.1:${fwd.localPort} until Ctrl-C\n`);
      await onceSignal(['SIGINT', 'SIGTERM']);
    }
    return ExitCode.Ok;
  } finally {
    await fwd?.close();
  }
}

async function runDelete(argv: Args, log: Logger): Promise<number> {
  const kc = loadKubeConfig({ context: argv.context });
  const namespace = argv.namespace ?? contextNamespace(kc);
  const deleted = await deleteDeployment(new ClusterApi(kc), namespace, log);
  process.stdout.write(deleted.length > 0 ? deleted.map((d) => `deleted ${d}`).join('\n') + '\n' : `nothing of ctun in namespace ${namespace}\n`);
  return ExitCode.Ok;
}

function withCluster<T>(y: Argv<T>) {
  return y
    .option('context', { type: 'string', describe: 'kubeconfig context (default: the current one)' })
    .option('namespace', { type: 'string', describe: 'Namespace (default: the context\'s, else default)' });
}

function deployCommand(mode: DeploymentMode, describe: string): CommandModule<object, Args> {
  return {
    command: `${mode} <licenseServer>`,
    describe,
    builder: (y) =>
      withParams(withCluster(y))
        .positional('licenseServer', { type: 'string', demandOption: true, describe: 'License server for DS_CMU_SERVER: host or port@host' })
        .option('via', { choices: ['nodeport', 'port-forward'], default: 'nodeport', describe: 'nodeport: the client reaches NODE_IP:NODEPORT; port-forward: TCP through the Kubernetes API, no reachable node needed' })
        .option('connect', { type: 'boolean', default: false, describe: 'Start the ctun client of this checkout once the deployment is ready' })
        .option('timeout', { type: 'number', default: 180, describe: 'Seconds to wait for the pods to be Ready' })
        .option('node-address', { type: 'string', describe: 'Address for the client instead of the discovered node address (IPv6 bare or as [addr])' })
        .option('local-port', { type: 'number', describe: 'With --via port-forward: loopback port (default: a free one)' }) as Argv<Args>,
    handler: (argv) => runCommandBody(PROGRAM, argv.verbose, () => runDeploy(mode, argv, cliLogger(argv as { verbose?: boolean }))),
  };
}

const renderCommand: CommandModule<object, Args> = {
  command: 'render',
  describe: 'Write the manifests (ctun-service.yaml, veos.23.1.ctun.yaml, veos.23.1.yaml, ctun-separate-server.yaml, ctun-network-policy.yaml) from templates/k8s',
  builder: (y) =>
    withParams(y)
      .option('out', { type: 'string', default: 'k8s', describe: 'Folder to write to' })
      .option('license-server', { type: 'string', describe: 'License server for DS_CMU_SERVER (default: the placeholder <LICENSE_SERVER>)' })
      .option('namespace', { type: 'string', describe: 'Namespace written into the manifests (default: none)' })
      .option('check', { type: 'boolean', default: false, describe: 'Write nothing; exit 1 when the files in --out differ from a fresh rendering' })
      .option('validate', { type: 'boolean', default: false, describe: `Validate against the Kubernetes schemas ${SCHEMA_VERSIONS.join(', ')}` }) as Argv<Args>,
  handler: (argv) => runCommandBody(PROGRAM, argv.verbose, () => runRender(argv, cliLogger(argv as { verbose?: boolean }))),
};

const deleteCommand: CommandModule<object, Args> = {
  command: 'delete',
  describe: 'Delete the Deployments and Services ctun applied (found by the app.kubernetes.io/managed-by=ctun label)',
  builder: (y) => withCluster(y) as Argv<Args>,
  handler: (argv) => runCommandBody(PROGRAM, argv.verbose, () => runDelete(argv, cliLogger(argv as { verbose?: boolean }))),
};

/** `ctun-run k8s ...`, a yargs command module for ctun-run. */
export const k8sCommand: CommandModule<object, Args> = {
  command: 'k8s <command>',
  describe: 'Kubernetes: render the manifests, deploy integrated or separated, delete',
  builder: (y) =>
    y
      .command(renderCommand)
      .command(deployCommand('integrated', 'Simulator and tunnel server in one pod (veos.23.1.ctun.yaml), NodePort service; prints or runs the client command'))
      .command(deployCommand('separate', 'Simulator in several pods (veos.23.1.yaml) and a separate tunnel server; prints or runs the client command with --dest'))
      .command(deleteCommand)
      .demandCommand(1, 'give a k8s command: render, integrated, separate or delete') as Argv<Args>,
  handler: () => {},
};
