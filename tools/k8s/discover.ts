import { CtunError } from '../common/index.js';
import type { KubeApi, NodeLike, PodLike, ServiceLike } from './api.js';
import type { K8sTransport } from './params.js';

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
 */
export function nodeAddressOf(nodes: NodeLike[], nodeName: string | undefined, apiServerHost: string): NodeAddress {
  const candidates = nodeName ? nodes.filter((n) => n.metadata?.name === nodeName) : [];
  for (const n of [...candidates, ...nodes]) {
    for (const type of ['ExternalIP', 'InternalIP']) {
      const a = n.status?.addresses?.find((x) => x.type === type && x.address);
      if (a?.address) return { address: a.address, source: `${type} of node ${n.metadata?.name ?? '?'}` };
    }
  }
  return { address: apiServerHost, source: 'API server host (no node addresses visible)' };
}

/**
 * The simulator pod a separated client routes to: the first Ready pod by name, and
 * its pod IP (what the seed read with `kubectl exec POD -- hostname -I`).
 */
export function targetPod(pods: PodLike[]): { name: string; ip: string } {
  const ready = pods
    .filter((p) => p.status?.phase === 'Running' && p.status.podIP && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'))
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  const p = ready[0];
  if (!p) throw new CtunError('K8S_DISCOVER', 'no Ready simulator pod with a pod IP');
  return { name: p.metadata?.name ?? '?', ip: p.status!.podIP! };
}

/** NodePort and node address of a deployed tunnel server. */
export async function discoverNodePort(api: KubeApi, o: { namespace: string; service: string; transport: K8sTransport; serverPod?: PodLike }): Promise<{ nodePort: number; node: NodeAddress }> {
  const service = await api.readService(o.namespace, o.service);
  const nodePort = nodePortOf(service, o.transport);
  let nodes: NodeLike[] = [];
  try {
    nodes = await api.listNodes();
  } catch {
    // Listing nodes needs a ClusterRole many users lack; the API server host is the fallback.
  }
  return { nodePort, node: nodeAddressOf(nodes, o.serverPod?.spec?.nodeName, api.serverHost()) };
}
