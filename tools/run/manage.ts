import type { Logger } from '../common/index.js';
import { LABEL_MANAGED, type ContainerInfo, type DockerEngine, type NetworkInfo } from '../docker/index.js';
import { LABEL_DEPLOYMENT, LABEL_DEPLOYMENT_KIND, LABEL_ROLE } from './plan.js';

/**
 * status, stop and clean act only on what ctun-run labelled: containers and networks
 * carrying io.ctun.managed=true and a deployment label. Images are never touched.
 */
const OURS = [`${LABEL_MANAGED}=true`, LABEL_DEPLOYMENT];

export interface DeploymentStatus {
  deployment: string;
  kind: string;
  containers: Array<{ name: string; role: string; image: string; state: string; exitCode: number; networks: Record<string, string>; ports: Record<string, string[]> }>;
  networks: Array<{ name: string; subnet?: string }>;
}

function group(containers: ContainerInfo[], networks: NetworkInfo[]): DeploymentStatus[] {
  const byName = new Map<string, DeploymentStatus>();
  const get = (labels: Record<string, string>): DeploymentStatus => {
    const name = labels[LABEL_DEPLOYMENT] ?? '?';
    let d = byName.get(name);
    if (!d) byName.set(name, (d = { deployment: name, kind: labels[LABEL_DEPLOYMENT_KIND] ?? '?', containers: [], networks: [] }));
    return d;
  };
  for (const c of containers) {
    get(c.labels).containers.push({
      name: c.name,
      role: c.labels[LABEL_ROLE] ?? '?',
      image: c.image,
      state: c.state,
      exitCode: c.exitCode,
      networks: c.networks,
      ports: c.ports,
    });
  }
  for (const n of networks) get(n.labels).networks.push({ name: n.name, ...(n.subnet ? { subnet: n.subnet } : {}) });
  return [...byName.values()].sort((a, b) => a.deployment.localeCompare(b.deployment));
}

/** The labelled deployments, grouped, optionally only one. */
export async function deploymentStatus(engine: DockerEngine, deployment?: string): Promise<DeploymentStatus[]> {
  const filter = deployment ? [...OURS, `${LABEL_DEPLOYMENT}=${deployment}`] : OURS;
  return group(await engine.listContainers(filter), await engine.listNetworks(filter));
}

/** Human lines for `ctun-run status`. */
export function formatStatus(list: DeploymentStatus[]): string {
  if (list.length === 0) return 'no ctun-run deployments on this Docker host\n';
  const lines: string[] = [];
  for (const d of list) {
    lines.push(`${d.deployment} (${d.kind})`);
    for (const c of d.containers) {
      const addr = Object.entries(c.networks).map(([n, ip]) => `${ip} on ${n}`).join(', ');
      const ports = Object.entries(c.ports).flatMap(([p, b]) => b.map((x) => `${x}->${p}`)).join(', ');
      lines.push(`  ${c.role.padEnd(11)} ${c.name}  ${c.state}${c.state === 'exited' ? ` (${c.exitCode})` : ''}  ${c.image}${addr ? `  ${addr}` : ''}${ports ? `  ${ports}` : ''}`);
    }
    for (const n of d.networks) lines.push(`  network     ${n.name}${n.subnet ? `  ${n.subnet}` : ''}`);
  }
  return lines.join('\n') + '\n';
}

export interface RemoveResult {
  containers: string[];
  networks: string[];
}

/**
 * Removes labelled deployments (containers, then their networks). `stop` and `clean`
 * differ in scope: stop removes one deployment (or all running ones), clean every
 * labelled leftover, running or not.
 */
export async function removeDeployments(engine: DockerEngine, logger: Logger, options: { deployment?: string } = {}): Promise<RemoveResult> {
  const filter = options.deployment ? [...OURS, `${LABEL_DEPLOYMENT}=${options.deployment}`] : OURS;
  const out: RemoveResult = { containers: [], networks: [] };
  const containers = await engine.listContainers(filter);
  // Stop with a grace period first so the tunnel server removes its NAT rules and
  // the simulator exits cleanly; then remove.
  await Promise.all(containers.filter((c) => c.state === 'running').map((c) => engine.stopContainer(c.id, 3)));
  for (const c of containers) {
    await engine.removeContainer(c.id);
    out.containers.push(c.name);
    logger.info('removed', { container: c.name });
  }
  for (const n of await engine.listNetworks(filter)) {
    await engine.removeNetwork(n.id);
    out.networks.push(n.name);
    logger.info('removed', { network: n.name });
  }
  return out;
}

/**
 * Stops labelled containers (one deployment or all) without removing them, so their
 * logs stay readable (`docker logs`); `clean` removes them.
 */
export async function stopDeployments(engine: DockerEngine, logger: Logger, options: { deployment?: string } = {}): Promise<string[]> {
  const filter = options.deployment ? [...OURS, `${LABEL_DEPLOYMENT}=${options.deployment}`] : OURS;
  const running = (await engine.listContainers(filter)).filter((c) => c.state === 'running');
  await Promise.all(
    running.map(async (c) => {
      await engine.stopContainer(c.id, 3);
      logger.info('stopped', { container: c.name });
    }),
  );
  return running.map((c) => c.name);
}
