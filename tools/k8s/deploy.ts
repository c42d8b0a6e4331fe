import { CtunError, formatHostPort, unbracket, type Logger } from '../common/index.js';
import { systemClock, type Clock, type KubeApi, type PodLike } from './api.js';
import { discoverNodePort, targetPod, type NodeAddress } from './discover.js';
import { resolveParams, type K8sParams } from './params.js';
import { startLocalForward, type LocalForward, type PodStreamOpener } from './portforward.js';
import { MANAGED_SELECTOR, manifest, OBJECT_NAMES, renderManifests, SIMULATOR_CONTAINER, SIMULATOR_SELECTOR, TUNNEL_CONTAINER, type K8sObject, type ManifestKey, type RenderedManifest } from './render.js';
import { waitForPods } from './wait.js';

export type DeploymentMode = 'integrated' | 'separate';
/** How the client reaches the server: the Service's NodePort, or a port-forward through the API server. */
export type Via = 'nodeport' | 'port-forward';

export interface DeployOptions {
  mode: DeploymentMode;
  /** Manifest parameters; the license server is required here. */
  params: K8sParams & { licenseServer: string };
  namespace: string;
  /** Default `nodeport`. `port-forward` renders the server with `--transport tcp` and applies no Service. */
  via?: Via;
  /** Overall wait for readiness; default 180 000 ms. */
  timeoutMs?: number;
  /** Poll interval of the wait; default 2000 ms. */
  intervalMs?: number;
  /** Address to print instead of the discovered node address. */
  nodeAddress?: string;
  api: KubeApi;
  logger: Logger;
  clock?: Clock;
}

export interface Deployed {
  mode: DeploymentMode;
  via: Via;
  namespace: string;
  /** `Kind/name` of each applied object, in order. */
  applied: string[];
  /** The tunnel server pod. */
  serverPod: string;
  /** NodePort access (via nodeport). */
  nodePort?: number;
  node?: NodeAddress;
  /** Separated: the simulator pod the client routes to. */
  target?: { name: string; ip: string };
  transport: 'udp' | 'tcp';
}

/**
 * Which manifests a deployment applies. The server manifests carry the Service with
 * their own server's selector, so the standalone ctun-service.yaml is not needed; the
 * NetworkPolicy comes first, so the tunnel server pod never runs without it.
 */
export function manifestsFor(mode: DeploymentMode): ManifestKey[] {
  return mode === 'integrated' ? ['networkPolicy', 'integrated'] : ['networkPolicy', 'simulator', 'separateServer'];
}

/**
 * The objects to apply, in the seed's order (the policy, then the Service); through a
 * port-forward no Service at all.
 */
export function objectsFor(rendered: RenderedManifest[], mode: DeploymentMode, via: Via): K8sObject[] {
  const objects = manifestsFor(mode).flatMap((k) => manifest(rendered, k).objects);
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  const services = objects.filter((o) => o.kind === 'Service');
  return [...policies, ...(via === 'nodeport' ? services : []), ...objects.filter((o) => o.kind !== 'Service' && o.kind !== 'NetworkPolicy')];
}

function containerImages(objects: K8sObject[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of objects) {
    const spec = (o as { spec?: { template?: { spec?: { containers?: Array<{ name: string; image: string }> } } } }).spec?.template?.spec;
    for (const c of spec?.containers ?? []) out[c.name] = c.image;
  }
  return out;
}

/**
 * Applies a deployment (server-side apply), waits for its pods, and discovers what a
 * client needs: node address and NodePort, or the server pod for a port-forward, and
 * (separated) the target pod's IP.
 */
export async function deploy(o: DeployOptions): Promise<Deployed> {
  const via = o.via ?? 'nodeport';
  const clock = o.clock ?? systemClock;
  const params = resolveParams({ ...o.params, namespace: undefined, transport: via === 'port-forward' ? 'tcp' : o.params.transport });
  if (via === 'port-forward' && o.params.transport === 'udp') {
    throw new CtunError('K8S_PARAMS', '--via port-forward carries TCP only; the tunnel runs with --transport tcp there', { hint: 'leave out --transport udp' });
  }
  const rendered = renderManifests(params);
  const objects = objectsFor(rendered, o.mode, via);
  const applied: string[] = [];
  for (const obj of objects) {
    await o.api.apply(obj, o.namespace);
    applied.push(`${obj.kind}/${obj.metadata.name}`);
    o.logger.info('k8s-applied', { object: `${obj.kind}/${obj.metadata.name}`, namespace: o.namespace });
  }
  const images = containerImages(objects);
  // One overall deadline: the later waits get what the earlier ones left.
  const deadline = clock.now() + (o.timeoutMs ?? 180_000);
  const left = (): number => Math.max(0, deadline - clock.now());
  const wait = (selector: string, count: number, what: string): Promise<PodLike[]> =>
    waitForPods(o.api, { namespace: o.namespace, selector, count, what, timeoutMs: left(), intervalMs: o.intervalMs, images, clock, logger: o.logger });

  let server: PodLike;
  let target: { name: string; ip: string } | undefined;
  if (o.mode === 'integrated') {
    [server] = (await wait(`app=${OBJECT_NAMES.integrated}`, 1, `the simulator and tunnel server pod (containers ${SIMULATOR_CONTAINER} and ${TUNNEL_CONTAINER})`)) as [PodLike];
  } else {
    const sims = await wait(SIMULATOR_SELECTOR, params.replicas, 'the simulator pods');
    [server] = (await wait(`app=${OBJECT_NAMES.separateServer}`, 1, 'the separate tunnel server pod')) as [PodLike];
    target = targetPod(sims, params.ipFamily);
  }
  const serverPod = server.metadata?.name ?? '?';
  const result: Deployed = { mode: o.mode, via, namespace: o.namespace, applied, serverPod, transport: params.transport, ...(target ? { target } : {}) };
  if (via === 'nodeport') {
    // An address the user gives wins; it may be written `[fd00::5]`, the client takes it bare.
    const given = o.nodeAddress === undefined ? undefined : { address: unbracket(o.nodeAddress), source: '--node-address' };
    const found = await discoverNodePort(o.api, { namespace: o.namespace, service: OBJECT_NAMES.service, transport: params.transport, serverPod: server, family: params.ipFamily, nodeAddress: given });
    result.nodePort = found.nodePort;
    result.node = found.node;
  }
  o.logger.info('k8s-ready', {
    mode: o.mode,
    serverPod,
    node: result.node?.address,
    nodeSource: result.node?.source,
    nodePort: result.nodePort,
    target: target?.ip,
  });
  return result;
}

/** `ctun client` arguments for a deployment (host and port from NodePort or a local forward). */
export function clientArgs(d: Deployed, local?: { port: number }): string[] {
  const args = ['client'];
  if (d.via === 'port-forward') {
    if (!local) throw new Error('a port-forward deployment needs the local port');
    args.push('127.0.0.1', '--port', String(local.port));
  } else {
    args.push(d.node!.address, '--port', String(d.nodePort));
  }
  if (d.transport === 'tcp') args.push('--transport', 'tcp');
  if (d.target) args.push('--dest', d.target.ip);
  return args;
}

/** The command to print: `ctun client 192.168.49.2 --port 31723 --dest 10.244.0.7`. */
export function clientCommand(d: Deployed, local?: { port: number }): string {
  return ['ctun', ...clientArgs(d, local)].join(' ');
}

/**
 * What `ctun-run k8s integrated|separate` prints: the seed's variables (KUBERNETES_IP,
 * NODEPORT_PORT, TARGET_IP: bare addresses, as shell variables and the client take
 * them), where the tunnel is (`[fd00::5]:31723/udp`: an IPv6 address bracketed before
 * its port), and the client command (`args`, after `ctun`).
 */
export function accessLines(d: Deployed, args: string[]): string[] {
  const lines: string[] = [];
  if (d.node) {
    lines.push(`KUBERNETES_IP=${d.node.address}   # ${d.node.source}`, `NODEPORT_PORT=${d.nodePort}`, `# the tunnel: ${formatHostPort(d.node.address, d.nodePort!)}/${d.transport}`);
  } else {
    lines.push(`# port-forward to pod ${d.serverPod} port ${d.transport}`);
  }
  if (d.target) lines.push(`TARGET_IP=${d.target.ip}   # pod ${d.target.name}`);
  lines.push(['ctun', ...args].join(' '));
  return lines;
}

/** Starts the loopback listener of a port-forward deployment (server pod, its tunnel port). */
export function forwardTo(d: Deployed, open: PodStreamOpener, o: { port: number; localPort?: number; logger: Logger }): Promise<LocalForward> {
  return startLocalForward(open, { namespace: d.namespace, pod: d.serverPod, port: o.port, localPort: o.localPort, logger: o.logger });
}

/** Deletes every Deployment and Service ctun applied in the namespace (found by label). */
export async function deleteDeployment(api: KubeApi, namespace: string, logger: Logger): Promise<string[]> {
  const deleted = await api.deleteMatching(namespace, MANAGED_SELECTOR);
  for (const d of deleted) logger.info('k8s-deleted', { object: d, namespace });
  return deleted;
}
