/** The real {@link DockerEngine}, on dockerode: the only module that imports it. */
import { PassThrough, type Readable } from 'node:stream';
import Dockerode from 'dockerode';
import { CtunError, ExitCode, formatHostPort } from '../common/index.js';
import type {
  BuildRequest,
  ContainerInfo,
  ContainerSpec,
  DockerEngine,
  ImageInfo,
  ImportRequest,
  LabelQuery,
  NetworkInfo,
  NetworkSpec,
} from './engine.js';
import { splitImageRef } from './engine.js';
import { dockerStatus } from './errors.js';
import { dockerodeImageFiles, type ImageFileReader } from './files.js';
import { labelFilter } from './labels.js';
import { readDockerStream, type DockerStreamEvent, type DockerStreamResult } from './stream.js';

function toInfo(i: Dockerode.ContainerInspectInfo): ContainerInfo {
  const networks: Record<string, string> = {};
  for (const [name, n] of Object.entries(i.NetworkSettings?.Networks ?? {})) if (n.IPAddress) networks[name] = n.IPAddress;
  const ports: Record<string, string[]> = {};
  for (const [p, bindings] of Object.entries(i.NetworkSettings?.Ports ?? {})) {
    ports[p] = (bindings ?? []).map((b) => formatHostPort(b.HostIp || '0.0.0.0', b.HostPort));
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
    mounts: (i.Mounts ?? []).map((m) => ({ type: m.Type, source: m.Source, target: m.Destination, readOnly: !m.RW })),
  };
}

function networkInfo(n: Dockerode.NetworkInspectInfo): NetworkInfo {
  const config = n.IPAM?.Config?.[0];
  const info: NetworkInfo = { id: n.Id, name: n.Name, labels: n.Labels ?? {}, internal: n.Internal === true };
  const bridge = n.Options?.['com.docker.network.bridge.name'];
  if (bridge) info.bridge = bridge;
  if (config?.Subnet) info.subnet = config.Subnet;
  if (config?.Gateway) info.gateway = config.Gateway;
  return info;
}

/**
 * The daemon's answer, or `fallback` when it answers one of `statuses` (404: no such
 * thing; for stop and remove also 304 already stopped, 409 removal in progress).
 */
async function unless<T, F>(statuses: number[], fallback: F, call: Promise<T>): Promise<T | F> {
  try {
    return await call;
  } catch (e) {
    const s = dockerStatus(e);
    if (s !== undefined && statuses.includes(s)) return fallback;
    throw e;
  }
}

class DockerodeEngine implements DockerEngine {
  readonly imageFiles: ImageFileReader;

  constructor(private readonly docker: Dockerode) {
    this.imageFiles = dockerodeImageFiles(docker);
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (e) {
      throw new CtunError('DOCKER_UNAVAILABLE', `cannot reach the Docker daemon: ${(e as Error).message}`, {
        hint: 'start it (`dockerd &` or `systemctl start docker`) and check `docker info`; DOCKER_HOST selects another daemon',
        exitCode: ExitCode.Failure,
        cause: e,
      });
    }
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    try {
      const i = await this.docker.getImage(ref).inspect();
      return {
        id: i.Id,
        tags: i.RepoTags ?? [],
        labels: i.Config?.Labels ?? {},
        created: i.Created,
        size: i.Size,
      };
    } catch (e) {
      if (dockerStatus(e) === 404) return undefined;
      throw new CtunError('DOCKER_API', `inspecting image ${ref} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  async imageExists(ref: string): Promise<boolean> {
    return (await this.inspectImage(ref)) !== undefined;
  }

  async build(request: BuildRequest, onEvent?: (e: DockerStreamEvent) => void): Promise<DockerStreamResult & { imageId: string }> {
    const subject = request.tags[0] ?? 'image';
    const options: Dockerode.ImageBuildOptions = {
      // Several `t` query parameters tag the result with every name at once.
      t: request.tags as unknown as string,
      dockerfile: request.dockerfile ?? 'Dockerfile',
      rm: true,
      forcerm: true,
      nocache: request.noCache ?? false,
      version: '1',
    };
    if (request.buildArgs) options.buildargs = request.buildArgs;
    if (request.labels) options.labels = request.labels;
    if (request.extraHosts?.length) options.extrahosts = request.extraHosts.join(',');
    if (request.network) options.networkmode = request.network;
    if (request.signal) options.abortSignal = request.signal;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.buildImage(request.context, options);
    } catch (e) {
      throw new CtunError('BUILD_REJECTED', `the Docker daemon refused to build ${subject}: ${(e as Error).message}`, {
        hint: 'check the build context and options (run with --print-plan to see them)',
        cause: e,
      });
    }
    const result = await readDockerStream(stream, { operation: 'build', subject, ...(onEvent ? { onEvent } : {}) });
    // The classic builder names the image as a short id; resolve the full one.
    const info = await this.inspectImage(subject);
    if (!info) {
      throw new CtunError('BUILD_NO_IMAGE', `the build of ${subject} ended without an image`, {
        hint: 'see the build output; the daemon may have been interrupted',
      });
    }
    return { ...result, imageId: info.id };
  }

  async importImage(request: ImportRequest, onEvent?: (e: DockerStreamEvent) => void): Promise<{ imageId: string }> {
    const subject = `${request.repo}:${request.tag}`;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.importImage(request.rootfs, {
        repo: request.repo,
        tag: request.tag,
        ...(request.changes?.length ? { changes: request.changes } : {}),
      });
    } catch (e) {
      throw new CtunError('IMPORT_REJECTED', `the Docker daemon refused to import ${subject}: ${(e as Error).message}`, { cause: e });
    }
    const result = await readDockerStream(stream, { operation: 'import', subject, ...(onEvent ? { onEvent } : {}) });
    const info = await this.inspectImage(subject);
    if (!info) throw new CtunError('IMPORT_NO_IMAGE', `the import of ${subject} ended without an image`);
    return { imageId: result.imageId ?? info.id };
  }

  async pullImage(ref: string, onEvent?: (e: DockerStreamEvent) => void): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.pull(ref);
    } catch (e) {
      throw new CtunError('PULL_FAILED', `pulling ${ref} failed: ${(e as Error).message}`, {
        hint: 'check the registry name (--dockerRepository) and that the daemon can reach it',
        cause: e,
      });
    }
    await readDockerStream(stream, { operation: 'pull', subject: ref, ...(onEvent ? { onEvent } : {}) });
  }

  async tagImage(source: string, target: string): Promise<void> {
    const { repo, tag } = splitImageRef(target);
    await this.docker.getImage(source).tag({ repo, tag });
  }

  async removeImage(ref: string, options: { force?: boolean } = {}): Promise<void> {
    await unless([404], undefined, this.docker.getImage(ref).remove({ force: options.force ?? false }));
  }

  async listImages(labels: Record<string, string> = {}): Promise<ImageInfo[]> {
    const list = await this.docker.listImages({ filters: JSON.stringify(labelFilter(labels)) } as Dockerode.ListImagesOptions);
    return list.map((i) => ({
      id: i.Id,
      tags: i.RepoTags ?? [],
      labels: i.Labels ?? {},
      created: new Date(i.Created * 1000).toISOString(),
      size: i.Size,
    }));
  }

  async saveImages(refs: string[]): Promise<Readable> {
    // GET /images/get?names=…: one archive for all, each shared layer once (not in the typings).
    const d = this.docker as unknown as { getImages(opts: { names: string[] }): Promise<Readable> };
    return d.getImages({ names: refs });
  }

  async loadImages(archive: Readable): Promise<void> {
    const stream = (await this.docker.loadImage(archive as never)) as unknown as NodeJS.ReadableStream;
    await readDockerStream(stream, { operation: 'import', subject: 'the bundle images' });
  }

  async findContainer(nameOrId: string): Promise<ContainerInfo | undefined> {
    const i = await unless([404], undefined, this.docker.getContainer(nameOrId).inspect());
    return i && toInfo(i);
  }

  async createContainer(s: ContainerSpec): Promise<string> {
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
    await unless([304, 404], undefined, this.docker.getContainer(id).stop({ t: timeoutSeconds }));
  }

  async removeContainer(id: string): Promise<void> {
    await unless([404, 409], undefined, this.docker.getContainer(id).remove({ force: true, v: true }));
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
    const n = await unless([404], undefined, this.docker.getNetwork(name).inspect());
    return n && networkInfo(n);
  }

  async createNetwork(s: NetworkSpec): Promise<string> {
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
    await unless([404], undefined, this.docker.getNetwork(id).remove());
  }

  async listNetworks(labels: LabelQuery): Promise<NetworkInfo[]> {
    const list = await this.docker.listNetworks({ filters: { label: labels } });
    return list.map((n) => networkInfo(n));
  }
}

/** The real engine, on dockerode (DOCKER_HOST or the local socket). */
export function connectDocker(): DockerEngine {
  return new DockerodeEngine(new Dockerode());
}
