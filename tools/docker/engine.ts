import Dockerode from 'dockerode';
import { CtunError, ExitCode } from '../common/index.js';
import { readDockerStream, type DockerStreamEvent, type DockerStreamResult } from './stream.js';

/** What a build needs: a tar context and the options the Engine API takes. */
export interface BuildRequest {
  /** The build context as a tar stream (see `createContextTar`). */
  context: NodeJS.ReadableStream;
  /** Tags; the first is the name used in messages. At least one. */
  tags: string[];
  /** Dockerfile path inside the context; default `Dockerfile`. */
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
  /** `host:ip` entries for the build containers' /etc/hosts. */
  extraHosts?: string[];
  /** Network for RUN steps (e.g. an internal network for offline builds). */
  network?: string;
  /** Ignore the layer cache; default false. */
  noCache?: boolean;
}

export interface ImportRequest {
  /** A root file system as a tar stream. */
  rootfs: NodeJS.ReadableStream;
  repo: string;
  tag: string;
  /** Dockerfile instructions applied on import (`LABEL ...`, `CMD ...`, `ENV ...`). */
  changes?: string[];
}

export interface ImageInfo {
  id: string;
  tags: string[];
  labels: Record<string, string>;
  created: string;
  size: number;
}

/**
 * The one interface in front of the Docker daemon. {@link connectDocker} is the real
 * one (dockerode); `createMemoryDocker` is its in-memory twin for unit tests.
 */
export interface DockerEngine {
  /** Throws a CtunError with a hint when the daemon cannot be reached. */
  ping(): Promise<void>;
  inspectImage(ref: string): Promise<ImageInfo | undefined>;
  imageExists(ref: string): Promise<boolean>;
  /** Builds and waits for the whole stream; a failed step throws `DockerStreamError`. */
  build(request: BuildRequest, onEvent?: (e: DockerStreamEvent) => void): Promise<DockerStreamResult & { imageId: string }>;
  importImage(request: ImportRequest, onEvent?: (e: DockerStreamEvent) => void): Promise<{ imageId: string }>;
  /** Pulls from a registry; a failure inside the stream throws `DockerStreamError`. */
  pullImage(ref: string, onEvent?: (e: DockerStreamEvent) => void): Promise<void>;
  tagImage(source: string, target: string): Promise<void>;
  removeImage(ref: string, options?: { force?: boolean }): Promise<void>;
  /** Images carrying all of `labels`. */
  listImages(labels: Record<string, string>): Promise<ImageInfo[]>;
}

/** Splits `repo[:tag]` (a registry host with a port is not a tag). */
export function splitImageRef(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash && colon !== -1) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

function statusCode(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

export interface ConnectOptions {
  /** Passed to dockerode; default: DOCKER_HOST or the local socket. */
  dockerode?: Dockerode;
}

class DockerodeEngine implements DockerEngine {
  constructor(readonly docker: Dockerode) {}

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
      if (statusCode(e) === 404) return undefined;
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
    try {
      await this.docker.getImage(ref).remove({ force: options.force ?? false });
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
    }
  }

  async listImages(labels: Record<string, string>): Promise<ImageInfo[]> {
    const list = await this.docker.listImages({
      filters: JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }),
    } as Dockerode.ListImagesOptions);
    return list.map((i) => ({
      id: i.Id,
      tags: i.RepoTags ?? [],
      labels: i.Labels ?? {},
      created: new Date(i.Created * 1000).toISOString(),
      size: i.Size,
    }));
  }
}

/** The real engine, on dockerode. */
export function connectDocker(options: ConnectOptions = {}): DockerEngine & { docker: Dockerode } {
  return new DockerodeEngine(options.dockerode ?? new Dockerode());
}
