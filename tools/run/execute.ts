import { CtunError, ExitCode, formatHostPort, metadata, TUNNEL_DEFAULTS, type Logger } from '../common/index.js';
import { daemonMessage, LABEL_PLAN, type ContainerInfo, type DockerEngine } from '../docker/index.js';
import { SIMULATOR_PORTS, type SimulatorReadyPorts } from '../simulator/index.js';
import { explainContainerError, explainNetworkError, imageMissing, nameInUse } from './errors.js';
import { buildCommandFor, clientCommands, LABEL_DEPLOYMENT, type ContainerPlan, type DeploymentPlan, type NetworkPlan, type ReadyPort } from './plan.js';
import { PROBE_ATTEMPT_MS, probeArgv, probeFromHost, probeOutcome, type ProbeOutcome } from './probe.js';
import { describeReady, waitReady, type PortProber } from './wait.js';
import { runSteps, type Step } from '../steps/index.js';

/**
 * The one executor of deployment plans: a list of steps for the step runner (so the
 * CLI and the demo show them in their progress mode); whatever fails or is
 * interrupted, everything this run created is removed again before the error goes up.
 */

export interface RunningContainer {
  role: ContainerPlan['role'];
  name: string;
  id: string;
  /** Address per network. */
  networks: Record<string, string>;
}

export interface DeploymentResult {
  plan: DeploymentPlan;
  containers: RunningContainer[];
  network?: { name: string; id: string; subnet?: string; gateway?: string };
  /** The simulator's ports that accepted before it was declared ready. */
  readyPorts: ReadyPort[];
  /**
   * The stand-in's well-known ports, with the port mapper taken from the first ready
   * port: what the demo talks to. ctun-run itself knows only `readyPorts`.
   */
  simulatorPorts: SimulatorReadyPorts;
  /**
   * Where the PC reaches the simulator once the client is connected: the server's
   * tunnel address (integrated: the simulator is on that segment) or the
   * simulator's container address (separated, routed with --dest).
   */
  target: string;
  /** Separated: the client's --dest. */
  dest?: string;
  /** Integrated: the simulator's address on the default bridge (reachable from the Docker host only). */
  containerAddress?: string;
  /** The commands to run on the PC (when a tunnel server runs). */
  commands?: { configure: string; client: string };
}

export interface ExecuteOptions {
  engine: DockerEngine;
  logger: Logger;
  /** Each line of the containers' logs while waiting for readiness. */
  onLog?: (container: string, line: string) => void;
  /** One connect attempt from this host (deployments without a tunnel); default a real TCP connect. */
  probeFromHost?: (host: string, port: number) => Promise<ProbeOutcome>;
  /** How often readiness is polled; default 500 ms. */
  pollMs?: number;
}

/**
 * A deployment as steps for the step runner, and (after the last step) its result.
 * The first step registers the undo: it removes everything created so far, and
 * anything labelled with this run's id.
 */
export interface DeploymentSteps {
  steps: Step[];
  result(): DeploymentResult;
}

/** Whether two IPv4 CIDRs overlap. */
export function cidrOverlap(a: string, b: string): boolean {
  const parse = (c: string): [number, number] | undefined => {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(c);
    if (!m) return undefined;
    const ip = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
    const bits = Number(m[5]);
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return [(ip & mask) >>> 0, mask];
  };
  const pa = parse(a);
  const pb = parse(b);
  if (!pa || !pb) return false;
  const mask = (pa[1] & pb[1]) >>> 0;
  return ((pa[0] & mask) >>> 0) === ((pb[0] & mask) >>> 0);
}

/**
 * Subnets from Docker's default address pools (172.17-31.0.0/16, 192.168.0.0/16 in
 * /20 steps) that overlap neither a taken subnet nor `avoid`, in pool order.
 */
export function freeSubnets(taken: string[], avoid: string): string[] {
  const pools: string[] = [];
  for (let b = 17; b <= 31; b++) pools.push(`172.${b}.0.0/16`);
  for (let c = 0; c < 256; c += 16) pools.push(`192.168.${c}.0/20`);
  return pools.filter((p) => !cidrOverlap(p, avoid) && !taken.some((t) => cidrOverlap(p, t)));
}

export function deploymentSteps(plan: DeploymentPlan, options: ExecuteOptions): DeploymentSteps {
  const d: Deployment = { ...options, plan, created: [], running: [] };
  return {
    steps: [
      preflightStep(d),
      ...(plan.network ? [networkStep(d, plan.network)] : []),
      ...plan.containers.map((spec) => containerStep(d, spec)),
      readyStep(d),
      targetStep(d),
    ],
    result: () => {
      if (!d.result) throw new Error('the deployment has not finished its steps');
      return d.result;
    },
  };
}

/** What a deployment's steps share while they run. */
interface Deployment extends ExecuteOptions {
  plan: DeploymentPlan;
  /** Made so far, oldest first: what the undo removes. */
  created: Array<{ kind: 'container' | 'network'; id: string; name: string }>;
  running: RunningContainer[];
  network?: DeploymentResult['network'];
  result?: DeploymentResult;
}

/** Daemon, images and names, before anything is made; registers the deployment's undo. */
function preflightStep(d: Deployment): Step {
  const { plan, engine } = d;
  return {
    title: 'check the Docker daemon, the images and the names',
    run: async (ctx) => {
      ctx.onUndo(() => undoDeployment(d));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        engine.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new CtunError('DOCKER_UNAVAILABLE', 'the Docker daemon did not answer within 15 s', { hint: 'check `docker info` and the daemon log' })),
            15_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      for (const c of plan.containers) {
        const image = await engine.inspectImage(c.image);
        if (!image) throw imageMissing(c);
        if (c.imageRole === 'veos-ctun' && image.labels['io.ctun.install-ctun'] === 'false') {
          throw new CtunError('IMAGE_HAS_NO_TUNNEL', `image ${c.image} was built without the tunnel server, so --startCtun yes cannot start one`, {
            hint: `use an image built with --installCtun yes, e.g. ${metadata.images.veosCtun} (${buildCommandFor('veos-ctun', metadata.images.veosCtun)})`,
            exitCode: ExitCode.Usage,
          });
        }
        const existing = await engine.findContainer(c.name);
        if (existing) {
          // Containers inherit their image's labels (io.ctun.managed too): only
          // ctun-run's own deployment label says a container is a deployment's.
          throw nameInUse('container', c.name, existing.labels[LABEL_DEPLOYMENT], c.role === 'veos' ? '--veosDockerContainer' : '--ctunDockerContainer');
        }
      }
      if (plan.network) {
        const existing = await engine.findNetwork(plan.network.name);
        if (existing) throw nameInUse('network', plan.network.name, existing.labels[LABEL_DEPLOYMENT], '--dockerNetwork');
      }
    },
  };
}

/** The private network; a subnet Docker picks over the tunnel's is replaced by a free one. */
function networkStep(d: Deployment, spec: NetworkPlan): Step {
  const { plan, engine, logger, created } = d;
  return {
    title: `create network ${spec.name}`,
    run: async (ctx) => {
      ctx.checkAborted(`creating network ${spec.name}`);
      let id: string;
      try {
        id = await engine.createNetwork(spec);
      } catch (e) {
        throw explainNetworkError(e, spec);
      }
      created.push({ kind: 'network', id, name: spec.name });
      let info = await engine.findNetwork(id);
      const tunnelNet = `${plan.serverAddress}/${TUNNEL_DEFAULTS.prefix}`;
      if (info?.subnet && cidrOverlap(info.subnet, tunnelNet)) {
        if (spec.subnet) {
          throw new CtunError('NETWORK_SUBNET', `the subnet ${info.subnet} of network ${spec.name} overlaps the tunnel's ${tunnelNet}`, {
            hint: 'give another --subnet, e.g. --subnet 172.30.99.0/24',
          });
        }
        // Docker's default pools include 192.168.0.0/16 in /20 steps, one of which
        // holds the tunnel subnet: take the next free pool of the same kind instead.
        logger.info('network-subnet-overlaps-tunnel', { network: spec.name, subnet: info.subnet, tunnel: tunnelNet, action: 'choosing another subnet' });
        await engine.removeNetwork(id);
        created.pop();
        const taken = (await engine.listNetworks([])).map((n) => n.subnet).filter((x): x is string => !!x);
        const candidates = freeSubnets(taken, tunnelNet);
        let made: string | undefined;
        for (const subnet of candidates.slice(0, 20)) {
          ctx.checkAborted(`creating network ${spec.name}`);
          try {
            made = await engine.createNetwork({ ...spec, subnet });
            break;
          } catch (e) {
            // Taken meanwhile (another network, a host route): try the next one.
            if (!/overlap|pool|in use/i.test(daemonMessage(e))) throw explainNetworkError(e, spec);
          }
        }
        if (!made) {
          throw new CtunError('NETWORK_SUBNET', `no free subnet for network ${spec.name} that stays clear of the tunnel's ${tunnelNet}`, {
            hint: 'give one with --subnet, e.g. --subnet 172.30.99.0/24',
          });
        }
        id = made;
        created.push({ kind: 'network', id, name: spec.name });
        info = await engine.findNetwork(id);
      }
      d.network = { name: spec.name, id, ...(info?.subnet ? { subnet: info.subnet } : {}), ...(info?.gateway ? { gateway: info.gateway } : {}) };
      logger.info('network-created', { network: spec.name, subnet: info?.subnet });
    },
  };
}

/** Creates and starts one container; the daemon's refusals become CtunErrors with a hint. */
function containerStep(d: Deployment, spec: ContainerPlan): Step {
  const { engine, logger, created, running } = d;
  return {
    title: `start container ${spec.name} (${spec.image})`,
    run: async (ctx) => {
      ctx.checkAborted(`creating container ${spec.name}`);
      let id: string;
      try {
        id = await engine.createContainer(spec);
      } catch (e) {
        throw explainContainerError(e, spec, 'create');
      }
      created.push({ kind: 'container', id, name: spec.name });
      ctx.checkAborted(`starting container ${spec.name}`);
      try {
        await engine.startContainer(id);
      } catch (e) {
        throw explainContainerError(e, spec, 'start');
      }
      running.push({ role: spec.role, name: spec.name, id, networks: {} });
      logger.info('container-started', { container: spec.name, image: spec.image, id: id.slice(0, 12) });
    },
  };
}

// One attempt at a port spec, from where the plan says; the address is looked up
// each time, since a container has none until it runs.
function portProber(d: Deployment): PortProber {
  const { engine, running } = d;
  return async (spec) => {
    const target = await engine.findContainer(spec.target.container);
    const address = target && (spec.target.network ? target.networks[spec.target.network] : Object.values(target.networks)[0]);
    const from = spec.probe.from === 'host' ? 'the Docker host' : `container ${spec.probe.container}`;
    if (!address) return { open: false, reason: `${spec.target.container} has no address${spec.target.network ? ` on ${spec.target.network}` : ''} yet`, where: `from ${from}` };
    const where = `${formatHostPort(address, spec.port)} from ${from}`;
    if (spec.probe.from === 'host') return { ...(await (d.probeFromHost ?? probeFromHost)(address, spec.port)), where };
    const point = spec.probe.container;
    const prober = running.find((r) => r.name === point);
    if (!prober) return { open: false, reason: `container ${point} is not started`, where };
    const r = await engine.exec(prober.id, probeArgv(address, spec.port), PROBE_ATTEMPT_MS + 10_000);
    return { ...probeOutcome(r.exitCode, r.output), where };
  };
}

/** Waits (bounded) until every container is ready as its plan says; a failure or exit ends it early. */
function readyStep(d: Deployment): Step {
  const { plan, engine, logger, running } = d;
  const probe = portProber(d);
  return {
    title: `wait for ${[...new Set(plan.containers.flatMap((c) => c.ready.map((r) => describeReady(r, false))))].join(' and ')}`,
    run: async (ctx) => {
      await Promise.all(
        plan.containers.map(async (spec) => {
          const c = running.find((r) => r.name === spec.name)!;
          await waitReady({
            engine,
            id: c.id,
            name: spec.name,
            ready: spec.ready,
            timeoutMs: plan.readyTimeoutMs,
            probe,
            ...(d.pollMs ? { pollMs: d.pollMs } : {}),
            signal: ctx.signal,
            ...(d.onLog ? { onLine: (line: string) => d.onLog!(spec.name, line) } : {}),
          });
          logger.info('container-ready', { container: spec.name, awaited: spec.ready.map((r) => describeReady(r)).join(', ') });
        }),
      );
    },
  };
}

/** The addresses the containers got, and from them the target the PC reaches and its commands. */
function targetStep(d: Deployment): Step {
  const { plan, engine, logger, running } = d;
  return {
    title: 'find the target address',
    run: async (ctx) => {
      ctx.checkAborted('finding the target address');
      const infos = new Map<string, ContainerInfo>();
      for (const c of running) {
        const info = await engine.findContainer(c.id);
        if (!info) throw new CtunError('CONTAINER_EXITED', `container ${c.name} disappeared`, { hint: `see docker events; start again` });
        c.networks = info.networks;
        infos.set(c.name, info);
      }
      const veos = plan.containers.find((c) => c.role === 'veos')!;
      const readyPorts: ReadyPort[] = veos.ready.flatMap((r) => (r.kind === 'port' ? [{ protocol: r.protocol, port: r.port }] : []));
      const veosInfo = infos.get(veos.name)!;
      let dest: string | undefined;
      let containerAddress: string | undefined;
      if (plan.client?.destFrom) {
        dest = veosInfo.networks[plan.client.destFrom.network];
        if (!dest) {
          throw new CtunError('NO_TARGET_ADDRESS', `container ${veos.name} has no address on network ${plan.client.destFrom.network}`, {
            hint: `see docker inspect ${veos.name}`,
          });
        }
      } else {
        containerAddress = Object.values(veosInfo.networks)[0];
      }
      const result: DeploymentResult = {
        plan,
        containers: running,
        ...(d.network ? { network: d.network } : {}),
        readyPorts,
        simulatorPorts: { portMapper: readyPorts[0]?.port ?? SIMULATOR_PORTS.portMapper, xcp: SIMULATOR_PORTS.xcp, discovery: SIMULATOR_PORTS.discovery },
        target: dest ?? plan.serverAddress,
        ...(dest ? { dest } : {}),
        ...(containerAddress ? { containerAddress } : {}),
        ...(plan.client ? { commands: clientCommands(plan.client, dest) } : {}),
      };
      d.result = result;
      logger.info('deployment-ready', { deployment: plan.deployment, kind: plan.kind, target: result.target });
    },
  };
}

/** Removes everything created so far, and anything labelled with this run's id. */
async function undoDeployment(d: Deployment): Promise<void> {
  const { plan, engine, logger, created } = d;
  const errors: unknown[] = [];
  for (const r of created.splice(0).reverse()) {
    try {
      if (r.kind === 'container') await engine.removeContainer(r.id);
      else await engine.removeNetwork(r.id);
      logger.info('removed', { [r.kind]: r.name });
    } catch (e) {
      errors.push(e);
    }
  }
  // A create whose answer never came back still carries this run's label.
  for (const c of await engine.listContainers([`${LABEL_PLAN}=${plan.runId}`]).catch(() => [])) {
    await engine.removeContainer(c.id).catch((e: unknown) => errors.push(e));
  }
  for (const n of await engine.listNetworks([`${LABEL_PLAN}=${plan.runId}`]).catch(() => [])) {
    await engine.removeNetwork(n.id).catch((e: unknown) => errors.push(e));
  }
  if (errors.length) logger.warn('cleanup-incomplete', { errors: errors.length, first: (errors[0] as Error)?.message, hint: 'ctun-run clean' });
}

/**
 * Runs a plan's steps in order, without progress output; on failure or interruption
 * undoes everything and rethrows. The containers stay running on success.
 */
export async function executeDeployment(plan: DeploymentPlan, options: ExecuteOptions & { signal?: AbortSignal }): Promise<DeploymentResult> {
  const deployment = deploymentSteps(plan, options);
  await runSteps(deployment.steps, { progress: 'silent', logger: options.logger, ...(options.signal ? { signal: options.signal } : {}) });
  return deployment.result();
}
