import { isIPv4, isIPv6 } from 'node:net';
import { CtunError } from '../common/index.js';
import type { KubeApi, NodeLike, PodLike, ServiceLike } from './api.js';
import type { K8sIpFamily, K8sTransport } from './params.js';

/** Whether an address is of the family asked for (`dual`: any). */
function ofFamily(address: string, family: K8sIpFamily): boolean {
  return family === 'dual' || (family === 'ipv4' ? isIPv4(address) : isIPv6(address));
}

const FAMILY_NAME: Record<Exclude<K8sIpFamily, 'dual'>, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/** The NodePort of the Service's port for the transport. */
export function nodePortOf(service: ServiceLike, transport: K8sTransport): number {
  const protocol = transport.toUpperCase();
  const port = (service.spec?.ports ?? []).find((p) => (p.protocol ?? 'TCP') === protocol);
  if (!port) {
    throw new CtunError('K8S_DISCOVER', `service ${service.metadata?.name ?? '?'} has no ${protocol} port`, {
      hint: 'render and apply it with the same --transport as the server',
    });
  }
  if (service.spec?.type !== 'NodePort' && service.spec?.type !== 'LoadBalancer') {
    throw new CtunError('K8S_DISCOVER', `service ${service.metadata?.name ?? '?'} is of type ${service.spec?.type ?? '?'}, not NodePort`);
  }
  if (!port.nodePort) throw new CtunError('K8S_DISCOVER', `service ${service.metadata?.name ?? '?'} has no nodePort allocated yet`);
  return port.nodePort;
}

export interface NodeAddress {
  address: string;
  /** Where it came from, for the log: `ExternalIP of node x`, `API server host`. */
  source: string;
}

/**
 * The address a client outside the cluster uses: the node that runs the server pod
 * (any node forwards a NodePort, but that one needs no extra hop), its ExternalIP when
 * it has one (clouds), else its InternalIP (minikube, kind, bare metal). Without node
 * information (e.g. no RBAC to list nodes), the API server's host, as `minikube ip`.
 * With a family (`ipv4`, `ipv6`) only addresses of that family count; `dual` takes the
 * one the node lists first (a dual-stack node lists its primary family first). No
 * address of the family asked for is an error that says what to give instead.
 */
export function nodeAddressOf(nodes: NodeLike[], nodeName: string | undefined, apiServerHost: string, family: K8sIpFamily = 'dual'): NodeAddress {
  const candidates = nodeName ? nodes.filter((n) => n.metadata?.name === nodeName) : [];
  for (const n of [...candidates, ...nodes]) {
    for (const type of ['ExternalIP', 'InternalIP']) {
      const a = n.status?.addresses?.find((x) => x.type === type && x.address && ofFamily(x.address, family));
      if (a?.address) return { address: a.address, source: `${type} of node ${n.metadata?.name ?? '?'}` };
    }
  }
  if (family !== 'dual' && !ofFamily(apiServerHost, family)) {
    const seen = nodes.flatMap((n) => (n.status?.addresses ?? []).filter((x) => x.type === 'ExternalIP' || x.type === 'InternalIP').map((x) => x.address));
    throw new CtunError('K8S_DISCOVER', `no ${FAMILY_NAME[family]} node address for the client: the nodes list ${seen.length ? seen.join(', ') : 'none'}, the API server is ${apiServerHost}`, {
      hint: `give the address the client dials with --node-address, or leave out --ip-family ${family}`,
    });
  }
  return { address: apiServerHost, source: `API server host (no ${family === 'dual' ? '' : `${FAMILY_NAME[family]} `}node addresses visible)` };
}

/**
 * The simulator pod a separated client routes to: the first Ready pod by name, and
 * its pod IP (what the seed read with `kubectl exec POD -- hostname -I`): the primary
 * one (`dual`), or of a dual-stack pod's IPs (`podIPs`) the one of the family asked for.
 */
export function targetPod(pods: PodLike[], family: K8sIpFamily = 'dual'): { name: string; ip: string } {
  // dual: an IPv4 pod IP where the pod has one. The separate server's manifest asks
  // only for IPv4 forwarding under dual (an IPv6 one is another unsafe sysctl every
  // node's kubelet would have to allow), so an IPv6 --dest needs --ip-family ipv6.
  const ipOf = (p: PodLike): string | undefined => {
    const ips = [p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)].filter((ip): ip is string => !!ip);
    return family === 'dual' ? (ips.find((ip) => ofFamily(ip, 'ipv4')) ?? ips[0]) : ips.find((ip) => ofFamily(ip, family));
  };
  const ready = pods
    .filter((p) => p.status?.phase === 'Running' && ipOf(p) && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'))
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  const p = ready[0];
  if (!p) throw new CtunError('K8S_DISCOVER', `no Ready simulator pod with ${family === 'dual' ? 'a' : `an ${FAMILY_NAME[family]}`} pod IP`);
  return { name: p.metadata?.name ?? '?', ip: ipOf(p)! };
}

/** NodePort and node address of a deployed tunnel server (`nodeAddress`: given, not discovered). */
export async function discoverNodePort(
  api: KubeApi,
  o: { namespace: string; service: string; transport: K8sTransport; serverPod?: PodLike; family?: K8sIpFamily; nodeAddress?: NodeAddress | undefined },
): Promise<{ nodePort: number; node: NodeAddress }> {
  const service = await api.readService(o.namespace, o.service);
  const nodePort = nodePortOf(service, o.transport);
  if (o.nodeAddress) return { nodePort, node: o.nodeAddress };
  let nodes: NodeLike[] = [];
  try {
    nodes = await api.listNodes();
  } catch {
    // Listing nodes needs a ClusterRole many users lack; the API server host is the fallback.
  }
  return { nodePort, node: nodeAddressOf(nodes, o.serverPod?.spec?.nodeName, api.serverHost(), o.family) };
}
