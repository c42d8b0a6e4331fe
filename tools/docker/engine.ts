import type { Readable } from 'node:stream';
import type { DockerStreamEvent, DockerStreamResult } from './stream.js';
import type { ImageFileReader } from './files.js';

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
  /** Aborting it closes the build's connection, and the daemon stops the build. */
  signal?: AbortSignal;
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
  /** Bind mounts, as `docker inspect` lists them. */
  mounts: Array<{ type: string; source: string; target: string; readOnly: boolean }>;
}

export interface NetworkInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  subnet?: string;
  gateway?: string;
  /** `--internal`: no route out of the network. */
  internal: boolean;
  /** The Linux bridge in the host namespace, when the daemon names one. */
  bridge?: string;
}

/** A label filter: `key=value` entries, or a bare key for "has this label". */
export type LabelQuery = string[];

export type PortProtocol = 'udp' | 'tcp';

/** A container port published on the Docker host. */
export interface PortSpec {
  /** Port inside the container. */
  container: number;
  protocol: PortProtocol;
  /** Port on the Docker host. */
  host: number;
  /** Address on the Docker host it is published on; '' for all. */
  hostIp: string;
}

/** A host file mounted read-only into a container. */
export interface BindMount {
  source: string;
  target: string;
}

/** What creating a container takes (run/plan.ts's ContainerPlan is one). */
export interface ContainerSpec {
  name: string;
  image: string;
  /** Overrides the image's entrypoint (argv) when set. */
  entrypoint?: string[];
  /** Arguments after the entrypoint; undefined keeps the image's CMD. */
  cmd?: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  capAdd: string[];
  /** Host devices passed in, same path inside. */
  devices: string[];
  /** Host files bind-mounted read-only (the TLS files of `--tls`); none when absent. */
  mounts?: BindMount[];
  sysctls: Record<string, string>;
  /** /dev/shm size in bytes (0: Docker's default). */
  shmSize: number;
  ports: PortSpec[];
  /** Network to attach to; undefined: Docker's default bridge. */
  network?: string;
}

export interface NetworkSpec {
  name: string;
  driver: 'bridge';
  labels: Record<string, string>;
  /** Subnet in CIDR; undefined lets Docker choose. */
  subnet?: string;
}

/**
 * The one interface in front of the Docker daemon: images, containers, networks,
 * logs, exec. {@link connectDocker} is the real one (dockerode); `createMemoryDocker`
 * is its in-memory twin for unit tests. A refusal by the daemon is thrown as is
 * (`dockerStatus`, `daemonMessage` read it); absent things answer `undefined`.
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
  /** Removes a tag (the image with its last one); absent is fine. */
  removeImage(ref: string, options?: { force?: boolean }): Promise<void>;
  /** Images carrying all of `labels` (every image when none are given). */
  listImages(labels?: Record<string, string>): Promise<ImageInfo[]>;
  /** One `docker save` archive of all `refs` (shared layers once). */
  saveImages(refs: string[]): Promise<Readable>;
  /** Loads a `docker save` archive; an error inside the answer stream throws. */
  loadImages(archive: Readable): Promise<void>;

  findContainer(nameOrId: string): Promise<ContainerInfo | undefined>;
  /** Creates a container; the daemon's refusal is thrown as is (see run's explainDockerError). */
  createContainer(spec: ContainerSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** Stops it (default 5 s before SIGKILL); already stopped or absent is fine. */
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

  findNetwork(nameOrId: string): Promise<NetworkInfo | undefined>;
  createNetwork(spec: NetworkSpec): Promise<string>;
  /** Absent is fine. */
  removeNetwork(id: string): Promise<void>;
  listNetworks(labels: LabelQuery): Promise<NetworkInfo[]>;

  /**
   * Reads files out of an image without running it (the SBOM's inventory); the real
   * engine has one, the in-memory twin only when a test gives it `memoryImageFiles`.
   */
  imageFiles?: ImageFileReader;
}

/** Splits `repo[:tag]` (a registry host with a port is not a tag). */
export function splitImageRef(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash && colon !== -1) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

