/**
 * The tunnel inside each deployment for `ctun-run status`: the server's clients
 * (address, identity with --tls, since when), bytes each way and drops. Read from
 * the running server itself: `ctun status --json` run inside its container asks the
 * server's --metrics endpoint on that container's loopback (the deployment sets
 * CTUN_METRICS), so no port is published for it.
 */
import { formatTunnelStatus, type Figures } from '../tunnel/index.js';
import type { DockerEngine } from '../docker/index.js';
import { formatStatus, type DeploymentStatus } from './manage.js';

export interface TunnelStatus {
  /** The container the tunnel server runs in. */
  container: string;
  /** The server's figures, when it answered. */
  figures?: Figures;
  /** Why there are no figures (not running, no endpoint, an image without it). */
  error?: string;
}

export type DeploymentWithTunnel = DeploymentStatus & { tunnel?: TunnelStatus };

/** How long one `docker exec` of `ctun status` may take. */
const QUERY_TIMEOUT_MS = 10_000;

/** The container of a deployment that runs its tunnel server: the separate server, or the integrated simulator container. */
function serverContainer(d: DeploymentStatus): DeploymentStatus['containers'][number] | undefined {
  return d.containers.find((c) => c.role === 'ctun-server') ?? (d.kind === 'integrated' ? d.containers.find((c) => c.role === 'veos') : undefined);
}

/** Asks one server; never throws (a deployment whose server does not answer still lists). */
export async function queryTunnel(engine: Pick<DockerEngine, 'exec'>, container: string): Promise<TunnelStatus> {
  try {
    const r = await engine.exec(container, ['ctun', 'status', '--json'], QUERY_TIMEOUT_MS);
    if (r.exitCode === 126 || r.exitCode === 127) return { container, error: 'no tunnel server in this container (no ctun in its image)' };
    if (r.exitCode !== 0) return { container, error: r.output.trim().split('\n')[0] ?? `ctun status exited ${r.exitCode}` };
    return { container, figures: JSON.parse(r.output.slice(r.output.indexOf('{'))) as Figures };
  } catch (e) {
    return { container, error: (e as Error).message };
  }
}

/** Adds `tunnel` to every deployment with a running tunnel server container. */
export async function withTunnelStatus(engine: Pick<DockerEngine, 'exec'>, list: DeploymentStatus[]): Promise<DeploymentWithTunnel[]> {
  return Promise.all(
    list.map(async (d) => {
      const c = serverContainer(d);
      if (c === undefined) return d;
      if (c.state !== 'running') return { ...d, tunnel: { container: c.name, error: `${c.name} is ${c.state}` } };
      return { ...d, tunnel: await queryTunnel(engine, c.name) };
    }),
  );
}

/** `formatStatus` of each deployment, followed by its tunnel's figures. */
export function formatStatusWithTunnel(list: DeploymentWithTunnel[]): string {
  if (list.length === 0) return formatStatus(list);
  return list
    .map((d) => {
      const lines = [formatStatus([d]).trimEnd()];
      if (d.tunnel?.figures) lines.push(...formatTunnelStatus(d.tunnel.figures, '  '));
      else if (d.tunnel?.error) lines.push(`  tunnel      no figures from ${d.tunnel.container}: ${d.tunnel.error}`);
      return lines.join('\n');
    })
    .join('\n') + '\n';
}
