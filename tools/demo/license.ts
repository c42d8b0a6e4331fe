/**
 * The license stand-in for the demo: a container from the simulator image running
 * `license_standin.py` in the host's network namespace, bound to the Docker bridge's
 * gateway address. Every container reaches that address (the host's own), whichever
 * bridge network it is on, and nothing outside the host does.
 */
import { CtunError } from '../common/index.js';
import { ctunLabels, LABEL_PLAN, type DockerEngine } from '../docker/index.js';
import { LABEL_DEPLOYMENT, LABEL_DEPLOYMENT_KIND, LABEL_ROLE, waitReady, type ContainerPlan } from '../run/index.js';
import { LICENSE_READY_PATTERN, licenseStandinCommand, SIMULATOR_PORTS } from '../simulator/index.js';

export const LICENSE_CONTAINER = 'ctun-demo-license';

export interface LicenseStandin {
  /** The value for LICENSE_SERVER / DS_CMU_SERVER: `port@address`. */
  server: string;
  id: string;
  remove(): Promise<void>;
}

function firstAddress(cidr: string): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) return undefined;
  const ip = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
  const mask = Number(m[5]) === 0 ? 0 : (~0 << (32 - Number(m[5]))) >>> 0;
  const first = ((ip & mask) >>> 0) + 1;
  return [first >>> 24, (first >>> 16) & 255, (first >>> 8) & 255, first & 255].join('.');
}

export async function startLicenseStandin(
  engine: DockerEngine,
  options: { image: string; port?: number; name?: string; timeoutMs?: number; signal?: AbortSignal },
): Promise<LicenseStandin> {
  const bridge = await engine.findNetwork('bridge');
  // The default bridge often lists only its subnet; its gateway is then the first address.
  const gateway = bridge?.gateway ?? (bridge?.subnet ? firstAddress(bridge.subnet) : undefined);
  if (!gateway) {
    throw new CtunError('NO_BRIDGE', "Docker's default bridge network has no gateway address", { hint: 'check `docker network inspect bridge`' });
  }
  const name = options.name ?? LICENSE_CONTAINER;
  const port = options.port ?? SIMULATOR_PORTS.license;
  const old = await engine.findContainer(name);
  if (old) {
    if (old.labels[LABEL_ROLE] !== 'license') {
      throw new CtunError('NAME_IN_USE', `a container named ${name} already exists and is not the demo's license stand-in`, { hint: `remove it: docker rm -f ${name}` });
    }
    await engine.removeContainer(old.id);
  }
  const spec: ContainerPlan = {
    role: 'license',
    name,
    image: options.image,
    imageRole: 'veos',
    entrypoint: licenseStandinCommand(undefined, port, gateway),
    cmd: [],
    env: {},
    labels: ctunLabels('container/license', { [LABEL_DEPLOYMENT]: name, [LABEL_DEPLOYMENT_KIND]: 'license-standin', [LABEL_ROLE]: 'license', [LABEL_PLAN]: name }),
    capAdd: [],
    devices: [],
    sysctls: {},
    shmSize: 0,
    ports: [],
    network: 'host',
    ready: [{ what: 'the license stand-in', pattern: LICENSE_READY_PATTERN.source }],
  };
  const id = await engine.createContainer(spec);
  const remove = (): Promise<void> => engine.removeContainer(id);
  try {
    await engine.startContainer(id);
    await waitReady({ engine, id, name, ready: spec.ready, timeoutMs: options.timeoutMs ?? 20_000, ...(options.signal ? { signal: options.signal } : {}) });
  } catch (e) {
    await remove();
    throw e;
  }
  return { server: `${port}@${gateway}`, id, remove };
}
