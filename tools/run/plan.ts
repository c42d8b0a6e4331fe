import { isIP } from 'node:net';
import { CtunError, ExitCode, formatHostPort, metadata, TUNNEL_DEFAULTS, unbracket } from '../common/index.js';
import { METRICS_ENV } from '../tunnel/index.js';
import { ctunLabels, LABEL_PLAN, type ContainerSpec, type NetworkSpec, type PortSpec } from '../docker/index.js';
import { parseLicenseServer, SIMULATOR_ENV, SIMULATOR_PORTS, SIMULATOR_TARBALL_NAME } from '../simulator/index.js';

/**
 * A deployment plan is data: the network, containers, ports and environment of a
 * deployment, resolved from the options before anything runs, printable as JSON
 * (`ctun-run … --print-plan`) and tested without Docker. One executor
 * (`executeDeployment`) carries out either kind.
 */

/** Label naming the deployment a resource belongs to (its simulator container's name). */
export const LABEL_DEPLOYMENT = 'io.ctun.deployment';
/** Label with the kind of deployment: `integrated` or `separated`. */
export const LABEL_DEPLOYMENT_KIND = 'io.ctun.deployment.kind';
/** Label with the role of a container in its deployment: `veos`, `ctun-server`, `license`. */
export const LABEL_ROLE = 'io.ctun.role';

/** The tunnel server's readiness line (`ctun server` logs `server-listening …`). */
export const SERVER_READY_PATTERN = /\bserver-listening\b.*$/m;

/** Environment of the simulator image's entrypoint (templates/supervisor/entrypoint.sh). */
export const CTUN_ENV = {
  /** `yes` starts the tunnel server beside the simulator (images built with --installCtun yes). */
  start: 'CTUN_START',
  /** Extra options of `ctun server`. */
  args: 'CTUN_ARGS',
  /** `--metrics` of the tunnel server: on the container's loopback, for `ctun-run status` (no port published). */
  metrics: METRICS_ENV,
} as const;

/** Where the tunnel server in a deployment serves /status and /metrics: its container's own loopback. */
export const SERVER_METRICS_ADDRESS = `127.0.0.1:${metadata.metricsPort}`;

/** Where the `ctun-build` that makes an image is suggested from. */
export type ImageRole = 'veos' | 'veos-ctun' | 'separate-server';

export type DeploymentKind = 'integrated' | 'separated';
export type Transport = 'udp' | 'tcp';

/** Ports, mounts, containers and networks as the Docker wrapper takes them. */
export type { BindMount, PortSpec } from '../docker/index.js';

/**
 * Where a port is probed from. Never the machine ctun-run runs on when a tunnel
 * serves the deployment: its routes may differ from the deployment's own network.
 * - `container`: a connect from inside that container (an exec of the tunnel's own
 *   Node runtime, which every image with a tunnel server carries), so it sees what
 *   the tunnel server sees.
 * - `host`: from the Docker host, where a deployment without a tunnel is reached.
 */
export type ProbePoint = { from: 'container'; container: string } | { from: 'host' };

/**
 * What makes a container ready. The simulator contract is what any simulator has:
 * a TCP port that accepts (`port`); a log line (`log`) is an optional extra, and how
 * the tunnel server (ours) says it listens.
 */
export type ReadySpec =
  | {
      /** Optional: a spec without a kind is a log line (as before ports were probed). */
      kind?: 'log';
      /** Said in messages: `the simulator`, `the tunnel server`. */
      what: string;
      /** Source of a RegExp matched against the container's log. */
      pattern: string;
    }
  | {
      kind: 'port';
      what: string;
      /** Only TCP: a connect that completes proves a listener; UDP has no such answer. */
      protocol: 'tcp';
      port: number;
      /** The address probed is this container's on `network` (undefined: its first one). */
      target: { container: string; network?: string };
      probe: ProbePoint;
    };

/** A port the simulator must accept on to count as ready (`--readyPort tcp:N`). */
export interface ReadyPort {
  protocol: 'tcp';
  port: number;
}

/**
 * The default readiness port: the port mapper (27027), which the real VEOS CoSim port
 * mapper and the stand-in both open once they serve.
 */
export const DEFAULT_READY_PORTS: readonly ReadyPort[] = [{ protocol: 'tcp', port: SIMULATOR_PORTS.portMapper }];

/**
 * `tcp:N` (or a bare `N`) as `--readyPort` takes it. `udp:N` is refused: no probe can
 * tell an open UDP port from a silent one (only a closed one may answer, with ICMP).
 */
export function parseReadyPort(value: string): ReadyPort {
  const m = /^(?:(tcp|udp):)?(\d{1,5})$/i.exec(value.trim());
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw usage(`--readyPort takes tcp:PORT (1-65535), got "${value}"`, 'e.g. --readyPort tcp:27027 (the port mapper); repeat it for several ports');
  }
  if (m[1]?.toLowerCase() === 'udp') {
    throw usage(
      `--readyPort ${value}: a UDP port cannot be probed (an open one answers nothing, so it looks like a silent one)`,
      'probe a TCP port the simulator opens with --readyPort tcp:N, or wait for a line of its log with --readyLog REGEX',
    );
  }
  return { protocol: 'tcp', port: Number(m[2]) };
}

/** `--readyLog REGEX`: checked here, so a bad pattern is a usage error before anything starts. */
function checkReadyLog(pattern: string): string {
  try {
    new RegExp(pattern, 'm');
  } catch (e) {
    throw usage(`--readyLog "${pattern}" is not a regular expression: ${(e as Error).message}`, 'give a JavaScript regular expression matched against each log line, e.g. --readyLog "simulation started"');
  }
  return pattern;
}

/** A container of a deployment: what Docker creates, and what it is for. */
export interface ContainerPlan extends ContainerSpec {
  role: 'veos' | 'ctun-server' | 'license';
  imageRole: ImageRole;
  ready: ReadySpec[];
}

export type NetworkPlan = NetworkSpec;

/** How the client on the user's PC connects; the target address is found at run time. */
export interface ClientPlan {
  /** Address of the Docker host as the PC sees it. */
  host: string;
  port: number;
  transport: Transport;
  tap: string;
  /** Tunnel address the client's TAP gets from `ctun configure`. */
  tapAddress: string;
  /**
   * Separated: the simulator container whose address on `network` is the client's
   * `--dest`. Integrated: none (the client is on the simulator's own segment).
   */
  destFrom?: { container: string; network: string };
  /** `--tls`: the client's certificate files on the PC (the CA's, its own, its key). */
  tls?: { ca: string; cert: string; key: string };
}

export interface DeploymentPlan {
  kind: DeploymentKind;
  /** The deployment's name: its simulator container's name. */
  deployment: string;
  /** Unique per invocation: every resource carries it (io.ctun.plan), so a rollback finds all. */
  runId: string;
  licenseServer: { value: string; host: string; port: number };
  /** Whether a tunnel server runs (integrated without --startCtun yes: none). */
  tunnel: boolean;
  /** Tunnel address of the server beside the simulator (integrated) or on its subnet (separated). */
  serverAddress: string;
  network?: NetworkPlan;
  /** In start order. */
  containers: ContainerPlan[];
  client?: ClientPlan;
  /** Bound on each readiness wait, ms. */
  readyTimeoutMs: number;
}

/** Options both deployments share. */
export interface CommonRunOptions {
  /** The simulator image (positional IMAGE). */
  image: string;
  /** The license server, `host` or `port@host` (positional LICENSE_SERVER). */
  licenseServer: string;
  /** Name of the simulator container; default `dspace-veos`. */
  veosDockerContainer?: string;
  /** /dev/shm of the simulator, Docker units (`256m`); default 256m. */
  shmSize?: string;
  /** Tunnel transport; default udp. */
  transport?: Transport;
  /** Port published on the Docker host for the tunnel; default 1723. */
  hostPort?: number;
  /** Host address the tunnel port is published on, IPv4 or IPv6 (`::`, `[::]`); default all (''). */
  publishAddress?: string;
  /** Address of the Docker host as the client sees it (an IPv6 one bare or as `[fd00::1]`); default 127.0.0.1 (as in the seed). */
  clientHost?: string;
  /** Client TAP; default dstap0. */
  tap?: string;
  /** Address of the client TAP; default 192.168.100.100. */
  tapAddress?: string;
  /** Extra environment of the simulator, `K=V`. */
  env?: string[];
  /** Bound on each readiness wait; default 90 000 ms. */
  readyTimeoutMs?: number;
  /** TCP ports the simulator must accept on; default {@link DEFAULT_READY_PORTS} (27027). */
  readyPorts?: ReadyPort[];
  /** A RegExp one of the simulator's log lines must match too; default none. */
  readyLog?: string;
  /** Unique id of this invocation; default random. */
  runId?: string;
}

export interface IntegratedOptions extends CommonRunOptions {
  /** `--startCtun yes`: start the tunnel server inside; default false (as the seed). */
  startCtun?: boolean;
}

export interface SeparatedOptions extends CommonRunOptions {
  /** Image of the tunnel server; default dspace/ctun/separate-server:23.1.0. */
  ctunDockerImage?: string;
  /** Its container's name; default `dspace-ctun-server`. */
  ctunDockerContainer?: string;
  /** The private network; default `dspace-ctun`. */
  dockerNetwork?: string;
  /** Its subnet; default chosen by Docker. */
  subnet?: string;
}

export const DEFAULTS = {
  veosDockerContainer: 'dspace-veos',
  ctunDockerContainer: 'dspace-ctun-server',
  dockerNetwork: 'dspace-ctun',
  shmSize: '256m',
  tap: TUNNEL_DEFAULTS.clientTap,
  tapAddress: TUNNEL_DEFAULTS.clientAddress,
  serverAddress: TUNNEL_DEFAULTS.serverAddress,
  clientHost: '127.0.0.1',
  readyTimeoutMs: 90_000,
} as const;

const TUN_DEVICE = '/dev/net/tun';

function usage(message: string, hint?: string): CtunError {
  return new CtunError('USAGE', message, { exitCode: ExitCode.Usage, ...(hint ? { hint } : {}) });
}

/** Docker's size syntax (`256m`, `1g`, `512k`, bytes without unit), binary units as `docker run --shm-size`. */
export function parseSize(value: string, name = '--shmSize'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(value.trim());
  if (!m) throw usage(`${name} must be a size like 256m or 1g, got "${value}"`, 'units as for docker run --shm-size: b, k, m, g');
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  const bytes = Math.round(Number(m[1]) * unit);
  if (bytes < 1024 * 1024) throw usage(`${name} must be at least 1m, got "${value}"`);
  return bytes;
}

/** Docker container and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. */
function checkName(value: string, option: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(value)) {
    throw usage(`${option} "${value}" is not a valid Docker name`, 'use letters, digits, _ . - (starting with a letter or digit)');
  }
  return value;
}

/** `--publishAddress`: an address of the Docker host, IPv4 or IPv6 (`::` or `[::]`), or '' for all. */
function checkPublishAddress(value: string): string {
  const bare = unbracket(value.trim());
  if (bare !== '' && !isIP(bare)) throw usage(`--publishAddress must be an IP address of the Docker host, got "${value}"`, 'e.g. --publishAddress 10.0.0.5 or --publishAddress ::, or leave it out for all addresses');
  return bare;
}

/**
 * Where the tunnel port is published, as the summary prints it: `0.0.0.0:1723/udp`
 * (all addresses), `[::]:1723/udp` (an IPv6 address in brackets before its port).
 */
export function describePublished(port: PortSpec): string {
  return `${formatHostPort(port.hostIp || '0.0.0.0', port.host)}/${port.protocol}`;
}

function checkPort(value: number, option: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw usage(`${option} must be 1-65535, got "${value}"`);
  return value;
}

function parseEnv(list: string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw usage(`--env takes NAME=VALUE, got "${item}"`);
    env[item.slice(0, i)] = item.slice(i + 1);
  }
  return env;
}

function randomRunId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The `ctun-build` command that makes an image of this role under this name. */
export function buildCommandFor(role: ImageRole, image: string): string {
  switch (role) {
    case 'separate-server':
      return image === metadata.images.separateServer
        ? 'ctun-build ctun acceptDspaceEula'
        : `ctun-build ctun acceptDspaceEula (then: docker tag ${metadata.images.separateServer} ${image})`;
    case 'veos-ctun':
      return `ctun-build veos online acceptDspaceEula ${image} ${SIMULATOR_TARBALL_NAME} --installCtun yes`;
    case 'veos':
      return `ctun-build veos online acceptDspaceEula ${image} ${SIMULATOR_TARBALL_NAME}`;
  }
}

function common(options: CommonRunOptions, kind: DeploymentKind) {
  if (!options.image) throw usage('IMAGE is missing', `e.g. ctun-run veos ${metadata.images.veosCtun} 22350@license-host --startCtun yes`);
  const license = parseLicenseServer(options.licenseServer ?? '');
  const veosName = checkName(options.veosDockerContainer ?? DEFAULTS.veosDockerContainer, '--veosDockerContainer');
  const transport = options.transport ?? TUNNEL_DEFAULTS.transport;
  if (transport !== 'udp' && transport !== 'tcp') throw usage(`--transport must be udp or tcp, got "${String(transport)}"`);
  const runId = options.runId ?? randomRunId();
  const labels = (role: string, resource: 'container' | 'network'): Record<string, string> =>
    ctunLabels(`${resource}/${role}`, {
      [LABEL_DEPLOYMENT]: veosName,
      [LABEL_DEPLOYMENT_KIND]: kind,
      [LABEL_PLAN]: runId,
      ...(resource === 'container' ? { [LABEL_ROLE]: role } : {}),
    });
  const env = {
    ...parseEnv(options.env),
    [SIMULATOR_ENV.licenseServer]: options.licenseServer.trim(),
  };
  const port = checkPort(options.hostPort ?? metadata.defaultPort, '--hostPort');
  const tunnelPort: PortSpec = { container: metadata.defaultPort, protocol: transport, host: port, hostIp: checkPublishAddress(options.publishAddress ?? '') };
  const client: ClientPlan = {
    // `ctun client` takes the host bare (`fd00::1`) and the port apart (--port).
    host: unbracket(options.clientHost ?? DEFAULTS.clientHost),
    port,
    transport,
    tap: options.tap ?? DEFAULTS.tap,
    tapAddress: options.tapAddress ?? DEFAULTS.tapAddress,
  };
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULTS.readyTimeoutMs;
  const readyPorts = options.readyPorts?.length ? options.readyPorts : [...DEFAULT_READY_PORTS];
  const readyLog = options.readyLog === undefined || options.readyLog === '' ? undefined : checkReadyLog(options.readyLog);
  return {
    readyPorts,
    readyLog,
    license: { value: options.licenseServer.trim(), ...license },
    veosName,
    transport,
    runId,
    labels,
    env,
    tunnelPort,
    client,
    shmSize: parseSize(options.shmSize ?? DEFAULTS.shmSize),
    readyTimeoutMs,
  };
}

const serverReady: ReadySpec = { kind: 'log', what: 'the tunnel server', pattern: SERVER_READY_PATTERN.source };

/** The simulator's readiness: its ports accept, probed from `probe`; and its log line, when one is asked for. */
function simulatorReady(c: { readyPorts: ReadyPort[]; readyLog: string | undefined }, target: { container: string; network?: string }, probe: ProbePoint): ReadySpec[] {
  const specs: ReadySpec[] = c.readyPorts.map((p) => ({ kind: 'port', what: 'the simulator', protocol: p.protocol, port: p.port, target, probe }));
  if (c.readyLog) specs.push({ kind: 'log', what: 'the simulator', pattern: c.readyLog });
  return specs;
}

/**
 * `ctun-run veos IMAGE LICENSE_SERVER [--startCtun yes]`: the simulator and, with
 * --startCtun yes, the tunnel server in one container (the seed's RunVeos.py).
 */
export function planIntegrated(options: IntegratedOptions): DeploymentPlan {
  const c = common(options, 'integrated');
  const tunnel = options.startCtun ?? false;
  const veos: ContainerPlan = {
    role: 'veos',
    name: c.veosName,
    image: options.image,
    imageRole: tunnel ? 'veos-ctun' : 'veos',
    env: {
      ...c.env,
      [CTUN_ENV.start]: tunnel ? 'yes' : 'no',
      ...(tunnel && c.transport !== 'udp' ? { [CTUN_ENV.args]: `--transport ${c.transport}` } : {}),
      ...(tunnel ? { [CTUN_ENV.metrics]: SERVER_METRICS_ADDRESS } : {}),
    },
    labels: c.labels('veos', 'container'),
    // The tunnel server creates its TAP beside the simulator: NET_ADMIN and the tun
    // device, never --privileged.
    capAdd: tunnel ? ['NET_ADMIN'] : [],
    devices: tunnel ? [TUN_DEVICE] : [],
    sysctls: {},
    shmSize: c.shmSize,
    ports: tunnel ? [c.tunnelPort] : [],
    // With a tunnel inside, the probe runs in the container itself (the tunnel's
    // runtime is there); without one, the Docker host is where it is reached from.
    ready: [
      ...simulatorReady(c, { container: c.veosName }, tunnel ? { from: 'container', container: c.veosName } : { from: 'host' }),
      ...(tunnel ? [serverReady] : []),
    ],
  };
  const plan: DeploymentPlan = {
    kind: 'integrated',
    deployment: c.veosName,
    runId: c.runId,
    licenseServer: c.license,
    tunnel,
    serverAddress: DEFAULTS.serverAddress,
    containers: [veos],
    readyTimeoutMs: c.readyTimeoutMs,
  };
  if (tunnel) plan.client = c.client;
  return plan;
}

/**
 * `ctun-run separate IMAGE LICENSE_SERVER`: the simulator and the separate-mode
 * tunnel server in two containers on one private network (the seed's
 * RunCtunAndVeosSeparately.py).
 */
export function planSeparated(options: SeparatedOptions): DeploymentPlan {
  const c = common(options, 'separated');
  const networkName = checkName(options.dockerNetwork ?? DEFAULTS.dockerNetwork, '--dockerNetwork');
  const serverName = checkName(options.ctunDockerContainer ?? DEFAULTS.ctunDockerContainer, '--ctunDockerContainer');
  if (serverName === c.veosName) throw usage(`--ctunDockerContainer and --veosDockerContainer are both "${serverName}"`, 'give the two containers different names');
  const network: NetworkPlan = { name: networkName, driver: 'bridge', labels: c.labels('network', 'network') };
  if (options.subnet) network.subnet = options.subnet;
  const veos: ContainerPlan = {
    role: 'veos',
    name: c.veosName,
    image: options.image,
    imageRole: 'veos',
    env: { ...c.env, [CTUN_ENV.start]: 'no' },
    labels: c.labels('veos', 'container'),
    capAdd: [],
    devices: [],
    sysctls: {},
    shmSize: c.shmSize,
    ports: [],
    network: networkName,
    // Probed from the tunnel server, over the path the tunnel's traffic takes.
    ready: simulatorReady(c, { container: c.veosName, network: networkName }, { from: 'container', container: serverName }),
  };
  const server: ContainerPlan = {
    role: 'ctun-server',
    name: serverName,
    image: options.ctunDockerImage ?? metadata.images.separateServer,
    imageRole: 'separate-server',
    // The image's entrypoint is `ctun server --mode separate`.
    cmd: c.transport === 'udp' ? [] : ['--transport', c.transport],
    env: { [CTUN_ENV.metrics]: SERVER_METRICS_ADDRESS },
    labels: c.labels('ctun-server', 'container'),
    capAdd: ['NET_ADMIN'],
    devices: [TUN_DEVICE],
    // /proc/sys is read-only in a container: forwarding is a namespaced sysctl set at creation.
    sysctls: { 'net.ipv4.ip_forward': '1' },
    shmSize: 0,
    ports: [c.tunnelPort],
    network: networkName,
    ready: [serverReady],
  };
  return {
    kind: 'separated',
    deployment: c.veosName,
    runId: c.runId,
    licenseServer: c.license,
    tunnel: true,
    serverAddress: DEFAULTS.serverAddress,
    network,
    containers: [veos, server],
    client: { ...c.client, destFrom: { container: c.veosName, network: networkName } },
    readyTimeoutMs: c.readyTimeoutMs,
  };
}

/** The commands the user runs on the PC: configure the TAP (once, as root), then the client. */
export function clientCommands(client: ClientPlan, dest?: string): { configure: string; client: string } {
  const args = ['ctun', 'client', client.host];
  if (client.port !== metadata.defaultPort) args.push('--port', String(client.port));
  if (client.transport !== 'udp') args.push('--transport', client.transport);
  if (client.tap !== DEFAULTS.tap) args.push('--tap', client.tap);
  if (dest) args.push('--dest', dest);
  if (client.tls) args.push('--tls', '--ca', client.tls.ca, '--cert', client.tls.cert, '--key', client.tls.key);
  return {
    configure: `sudo ctun configure --tap ${client.tap} ${client.tapAddress} --non-interactive`,
    client: args.join(' '),
  };
}
