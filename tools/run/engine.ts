import { PassThrough } from 'node:stream';
import Dockerode from 'dockerode';
import { connectDocker, type DockerEngine } from '../docker/index.js';
import type { ContainerPlan, NetworkPlan } from './plan.js';

/**
 * Containers and networks, the part of the Docker API deployments need. It sits in
 * tools/run because tools/docker covers images so far; `createMemoryRunEngine` is
 * its in-memory twin for unit tests of the executor.
 */

export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  /** `created`, `running`, `exited`, ... */
  state: string;
  exitCode: number;
  /** Address per network name. */
  networks: Record<string, string>;
  /** `1723/udp` → `0.0.0.0:1723`. */
  ports: Record<string, string[]>;
}

export interface NetworkInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  subnet?: string;
  gateway?: string;
}

/** A label filter: `key=value` entries, or a bare key for "has this label". */
export type LabelQuery = string[];

export interface RunEngine {
  /** Images (the one wrapper in tools/docker). */
  readonly images: Pick<DockerEngine, 'ping' | 'inspectImage'>;
  findContainer(nameOrId: string): Promise<ContainerInfo | undefined>;
  /** Creates a container from a plan; the daemon's refusal is thrown as is (see explainDockerError). */
  createContainer(spec: ContainerPlan): Promise<string>;
  startContainer(id: string): Promise<void>;
  stopContainer(id: string, timeoutSeconds?: number): Promise<void>;
  /** Removes it (force: also when running); absent is fine. */
  removeContainer(id: string): Promise<void>;
  listContainers(labels: LabelQuery): Promise<ContainerInfo[]>;
  /**
   * Follows a container's log (stdout and stderr, from its start) and calls `onText`
   * with each chunk until `stop()` or the container ends.
   */
  followLogs(id: string, onText: (text: string) => void): Promise<{ stop(): void; ended: Promise<void> }>;
  /**
   * Runs argv inside a running container (`docker exec`), stdout and stderr together;
   * rejects when the daemon refuses (container not running) or after `timeoutMs`.
   */
  exec(id: string, argv: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }>;
  findNetwork(name: string): Promise<NetworkInfo | undefined>;
  createNetwork(spec: NetworkPlan): Promise<string>;
  removeNetwork(id: string): Promise<void>;
  listNetworks(labels: LabelQuery): Promise<NetworkInfo[]>;
}

function statusCode(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

function toInfo(i: Dockerode.ContainerInspectInfo): ContainerInfo {
  const networks: Record<string, string> = {};
  for (const [name, n] of Object.entries(i.NetworkSettings?.Networks ?? {})) if (n.IPAddress) networks[name] = n.IPAddress;
  const ports: Record<string, string[]> = {};
  for (const [p, bindings] of Object.entries(i.NetworkSettings?.Ports ?? {})) {
    ports[p] = (bindings ?? []).map((b) => `${b.HostIp || '0.0.0.0'}:${b.HostPort}`);
  }
  return {
    id: i.Id,
    name: i.Name.replace(/^\//, ''),
    image: i.Config.Image,
    labels: i.Config.Labels ?? {},
    state: i.State.Status,
    exitCode: i.State.ExitCode,
    networks,
    ports,
  };
}

function networkInfo(n: Dockerode.NetworkInspectInfo): NetworkInfo {
  const config = n.IPAM?.Config?.[0];
  const info: NetworkInfo = { id: n.Id, name: n.Name, labels: n.Labels ?? {} };
  if (config?.Subnet) info.subnet = config.Subnet;
  if (config?.Gateway) info.gateway = config.Gateway;
  return info;
}

class DockerodeRunEngine implements RunEngine {
  constructor(
    readonly docker: Dockerode,
    readonly images: DockerEngine,
  ) {}

  async findContainer(nameOrId: string): Promise<ContainerInfo | undefined> {
    try {
      return toInfo(await this.docker.getContainer(nameOrId).inspect());
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  async createContainer(s: ContainerPlan): Promise<string> {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
    for (const p of s.ports) {
      const key = `${p.container}/${p.protocol}`;
      exposed[key] = {};
      (bindings[key] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.host) });
    }
    const options: Dockerode.ContainerCreateOptions = {
      name: s.name,
      Image: s.image,
      Env: Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
      Labels: s.labels,
      ExposedPorts: exposed,
      HostConfig: {
        CapAdd: s.capAdd,
        Devices: s.devices.map((d) => ({ PathOnHost: d, PathInContainer: d, CgroupPermissions: 'rwm' })),
        Sysctls: s.sysctls,
        PortBindings: bindings,
        ...(s.mounts?.length ? { Mounts: s.mounts.map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: true })) } : {}),
        ...(s.shmSize ? { ShmSize: s.shmSize } : {}),
        ...(s.network ? { NetworkMode: s.network } : {}),
      },
    };
    if (s.entrypoint) options.Entrypoint = s.entrypoint;
    if (s.cmd) options.Cmd = s.cmd;
    const c = await this.docker.createContainer(options);
    return c.id;
  }

  async startContainer(id: string): Promise<void> {
    await this.docker.getContainer(id).start();
  }

  async stopContainer(id: string, timeoutSeconds = 5): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutSeconds });
    } catch (e) {
      // 304: already stopped; 404: gone.
      if (statusCode(e) !== 304 && statusCode(e) !== 404) throw e;
    }
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (e) {
      // 404: gone; 409: removal already in progress.
      if (statusCode(e) !== 404 && statusCode(e) !== 409) throw e;
    }
  }

  async listContainers(labels: LabelQuery): Promise<ContainerInfo[]> {
    const list = await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: labels }) });
    const out: ContainerInfo[] = [];
    for (const c of list) {
      const info = await this.findContainer(c.Id);
      if (info) out.push(info);
    }
    return out;
  }

  async followLogs(id: string, onText: (text: string) => void): Promise<{ stop(): void; ended: Promise<void> }> {
    const container = this.docker.getContainer(id);
    const stream = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream & {
      destroy(): void;
    };
    const out = new PassThrough();
    out.on('data', (d: Buffer) => onText(d.toString('utf8')));
    // Without a TTY the daemon multiplexes stdout and stderr with 8-byte headers.
    this.docker.modem.demuxStream(stream, out, out);
    const ended = new Promise<void>((resolve) => {
      stream.on('end', () => resolve());
      stream.on('close', () => resolve());
      stream.on('error', () => resolve());
    });
    return { stop: () => stream.destroy(), ended };
  }

  async exec(id: string, argv: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    const exec = await this.docker.getContainer(id).exec({ Cmd: argv, AttachStdout: true, AttachStderr: true });
    const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as NodeJS.ReadableStream & { destroy(): void };
    let output = '';
    const out = new PassThrough();
    out.on('data', (d: Buffer) => (output += d.toString('utf8')));
    this.docker.modem.demuxStream(stream, out, out);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => {
          stream.on('end', () => resolve());
          stream.on('close', () => resolve());
          stream.on('error', () => resolve());
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`docker exec ${argv[0]} in ${id.slice(0, 12)} did not end within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      stream.destroy();
    }
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? -1, output };
  }

  async findNetwork(name: string): Promise<NetworkInfo | undefined> {
    try {
      return networkInfo(await this.docker.getNetwork(name).inspect());
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  async createNetwork(s: NetworkPlan): Promise<string> {
    const n = await this.docker.createNetwork({
      Name: s.name,
      Driver: s.driver,
      Labels: s.labels,
      CheckDuplicate: true,
      ...(s.subnet ? { IPAM: { Driver: 'default', Config: [{ Subnet: s.subnet }] } } : {}),
    });
    return n.id;
  }

  async removeNetwork(id: string): Promise<void> {
    try {
      await this.docker.getNetwork(id).remove();
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
    }
  }

  async listNetworks(labels: LabelQuery): Promise<NetworkInfo[]> {
    const list = await this.docker.listNetworks({ filters: { label: labels } });
    return list.map((n) => networkInfo(n));
  }
}

/** The real engine, on dockerode (one connection shared with the image wrapper). */
export function connectRunEngine(options: { dockerode?: Dockerode } = {}): RunEngine & { docker: Dockerode } {
  const docker = options.dockerode ?? new Dockerode();
  return new DockerodeRunEngine(docker, connectDocker({ dockerode: docker }));
}
