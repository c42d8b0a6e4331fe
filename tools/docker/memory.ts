import { PassThrough, Readable } from 'node:stream';
import { CtunError, formatHostPort } from '../common/index.js';
import { readTarEntries } from './context.js';
import type { BuildRequest, ContainerInfo, ContainerSpec, DockerEngine, ImageInfo, ImportRequest, LabelQuery, NetworkInfo, NetworkSpec } from './engine.js';
import { DockerRefusal } from './errors.js';
import { readDockerStream, type DockerStreamEvent, type DockerStreamMessage, type DockerStreamResult } from './stream.js';

export interface MemoryBuild {
  tags: string[];
  dockerfile: string;
  files: Map<string, Buffer>;
  request: Omit<BuildRequest, 'context'>;
}

export interface MemoryDockerOptions<S extends ContainerSpec = ContainerSpec> {
  /** Images that exist from the start, by name or with their labels. */
  images?: Array<string | { ref: string; labels: Record<string, string> }>;
  /**
   * The stream the "daemon" answers a build with. Default: one `Step n/N` per
   * Dockerfile instruction and success. Return an `errorDetail` message to fail.
   */
  respond?: (build: MemoryBuild) => DockerStreamMessage[];
  /** Whether ping succeeds; default true. */
  reachable?: boolean;
  /** What each container does once started; default prints nothing and runs. */
  script?: (spec: S) => ContainerScript;
  /** Fail a create or start: return the error to throw. */
  refuse?: (spec: S, step: 'create' | 'start') => Error | undefined;
  /** Subnets handed out, in order, to networks created without one; then 172.30.0.0/24. */
  subnets?: string[];
  /** Containers in which an exec finds no probe runtime (an image without the tunnel). */
  execRefused?: (spec: S) => boolean;
  /** Containers that exist beforehand (by name), e.g. to test "name in use". */
  existing?: Array<{ name: string; labels?: Record<string, string> }>;
  /** Networks that exist beforehand (by name), e.g. an internal build network. */
  existingNetworks?: Array<{ name: string; internal?: boolean }>;
}

export interface ContainerScript {
  /** Log lines, written one per `intervalMs` after start. */
  lines: string[];
  /** Exit with this code after the lines. */
  exitCode?: number;
  intervalMs?: number;
  /**
   * TCP ports that accept once every line is printed (what a readiness probe finds);
   * default none.
   */
  openPorts?: number[];
}

interface MemContainer<S> {
  info: ContainerInfo;
  spec?: S;
  /** Ports accepting now (see ContainerScript.openPorts). */
  open: Set<number>;
  log: string;
  listeners: Set<(t: string) => void>;
  timers: NodeJS.Timeout[];
}

function matches(labels: Record<string, string>, query: LabelQuery): boolean {
  return query.every((q) => {
    const i = q.indexOf('=');
    return i < 0 ? q in labels : labels[q.slice(0, i)] === q.slice(i + 1);
  });
}

/** Default answer: every Dockerfile instruction becomes a step, then success. */
export function defaultBuildResponse(build: MemoryBuild): DockerStreamMessage[] {
  const lines = build.dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const out: DockerStreamMessage[] = [];
  lines.forEach((l, i) => {
    out.push({ stream: `Step ${i + 1}/${lines.length} : ${l}` }, { stream: '\n' }, { stream: ` ---> ${String(i).padStart(12, '0')}\n` });
  });
  out.push({ aux: { ID: `sha256:${'0'.repeat(64)}` } }, { stream: 'Successfully built 000000000000\n' });
  return out;
}

/** The in-memory twin with what it recorded, for tests to look at. */
export type MemoryDocker<S extends ContainerSpec = ContainerSpec> = DockerEngine & {
  builds: MemoryBuild[];
  imports: Array<Omit<ImportRequest, 'rootfs'> & { bytes: number }>;
  images: Map<string, ImageInfo>;
  containers: Map<string, MemContainer<S>>;
  networks: Map<string, NetworkInfo>;
  /** Container and network calls in order: `create NAME`, `start NAME`, `exec NAME HOST:PORT`, ... */
  calls: string[];
};

/**
 * The in-memory twin of {@link DockerEngine}. Images: it unpacks each build context,
 * answers with a scripted stream that goes through the same stream reader as the real
 * daemon, and remembers images. Containers "run" a script of log lines (and may exit);
 * the daemon's refusals are thrown as {@link DockerRefusal}, shaped as dockerode's.
 * For unit tests of plans and executors.
 */
export function createMemoryDocker<S extends ContainerSpec = ContainerSpec>(options: MemoryDockerOptions<S> = {}): MemoryDocker<S> {
  const images = new Map<string, ImageInfo>();
  let counter = 0;
  const addImage = (refs: string[], labels: Record<string, string> = {}): string => {
    const id = `sha256:${(++counter).toString(16).padStart(64, '0')}`;
    for (const r of refs) images.set(r, { id, tags: refs, labels, created: new Date(0).toISOString(), size: 0 });
    return id;
  };
  for (const i of options.images ?? []) (typeof i === 'string' ? addImage([i]) : addImage([i.ref], i.labels));
  const builds: MemoryBuild[] = [];
  const imports: Array<Omit<ImportRequest, 'rootfs'> & { bytes: number }> = [];
  const respond = options.respond ?? defaultBuildResponse;
  const containers = new Map<string, MemContainer<S>>();
  const networks = new Map<string, NetworkInfo>();
  const calls: string[] = [];
  let containerCounter = 0;
  const nextId = (): string => (++containerCounter).toString(16).padStart(64, 'c');
  for (const e of options.existing ?? []) {
    const id = nextId();
    containers.set(id, {
      info: { id, name: e.name, image: 'other', labels: e.labels ?? {}, state: 'running', exitCode: 0, networks: {}, ports: {}, mounts: [] },
      open: new Set(),
      log: '',
      listeners: new Set(),
      timers: [],
    });
  }
  for (const n of options.existingNetworks ?? []) {
    const id = nextId();
    networks.set(id, { id, name: n.name, labels: {}, internal: n.internal ?? false });
  }
  const find = (nameOrId: string): MemContainer<S> | undefined => {
    for (const c of containers.values()) if (c.info.id === nameOrId || c.info.name === nameOrId) return c;
    return undefined;
  };
  const write = (c: MemContainer<S>, text: string): void => {
    c.log += text;
    for (const l of c.listeners) l(text);
  };

  const engine: DockerEngine = {
    async ping() {
      if (options.reachable === false) throw new CtunError('DOCKER_UNAVAILABLE', 'cannot reach the Docker daemon (memory twin set unreachable)');
    },
    async inspectImage(ref) {
      return images.get(ref.includes(':') ? ref : `${ref}:latest`) ?? images.get(ref);
    },
    async imageExists(ref) {
      return (await engine.inspectImage(ref)) !== undefined;
    },
    async build(request, onEvent?: (e: DockerStreamEvent) => void): Promise<DockerStreamResult & { imageId: string }> {
      const files = await readTarEntries(request.context);
      const dockerfileName = request.dockerfile ?? 'Dockerfile';
      const dockerfile = files.get(dockerfileName)?.toString('utf8');
      if (dockerfile === undefined) throw new CtunError('BUILD_REJECTED', `no ${dockerfileName} in the build context`);
      const { context: _context, signal: _signal, ...rest } = request;
      const build: MemoryBuild = { tags: request.tags, dockerfile, files, request: rest };
      builds.push(build);
      const stream = new PassThrough();
      const result = readDockerStream(stream, { operation: 'build', subject: request.tags[0] ?? 'image', ...(onEvent ? { onEvent } : {}) });
      for (const m of respond(build)) stream.write(JSON.stringify(m) + '\r\n');
      stream.end();
      const r = await result;
      // Labels set in the Dockerfile (LABEL k="v" ...), as the daemon would record them.
      const labels: Record<string, string> = { ...request.labels };
      for (const m of dockerfile.replace(/\\\n/g, ' ').matchAll(/^LABEL\s+(.*)$/gm)) {
        for (const kv of m[1]!.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
          labels[kv[1]!] = kv[2]!.startsWith('"') ? (JSON.parse(kv[2]!) as string) : kv[2]!;
        }
      }
      return { ...r, imageId: addImage(request.tags, labels) };
    },
    async importImage(request) {
      let bytes = 0;
      for await (const c of request.rootfs as AsyncIterable<Buffer>) bytes += c.length;
      const { rootfs: _r, ...rest } = request;
      imports.push({ ...rest, bytes });
      return { imageId: addImage([`${request.repo}:${request.tag}`]) };
    },
    async pullImage(ref) {
      if (!images.has(ref)) throw new CtunError('PULL_FAILED', `pulling ${ref} failed: no registry in the memory twin`);
    },
    async tagImage(source, target) {
      const info = await engine.inspectImage(source);
      if (!info) throw new CtunError('IMAGE_MISSING', `no such image: ${source}`);
      images.set(target, { ...info, tags: [...info.tags, target] });
    },
    async removeImage(ref) {
      images.delete(ref);
    },
    async listImages(labels = {}) {
      const seen = new Set<string>();
      return [...images.values()].filter((i) => {
        if (seen.has(i.id)) return false;
        seen.add(i.id);
        return Object.entries(labels).every(([k, v]) => i.labels[k] === v);
      });
    },
    async saveImages(refs) {
      for (const r of refs) if (!(await engine.imageExists(r))) throw new DockerRefusal(404, `reference does not exist: ${r}`);
      return Readable.from([Buffer.from(`saved ${refs.join(',')}`)]);
    },
    async loadImages(archive) {
      for await (const _chunk of archive) void _chunk;
    },
    async findContainer(nameOrId) {
      const c = find(nameOrId);
      return c ? structuredClone(c.info) : undefined;
    },
    async createContainer(spec) {
      calls.push(`create ${spec.name}`);
      const refused = options.refuse?.(spec as S, 'create');
      if (refused) throw refused;
      if (find(spec.name)) throw new DockerRefusal(409, `Conflict. The container name "/${spec.name}" is already in use by container "x".`);
      if (!(await engine.imageExists(spec.image))) throw new DockerRefusal(404, `No such image: ${spec.image}`);
      const id = nextId();
      const nets: Record<string, string> = {};
      const net = spec.network ?? 'bridge';
      nets[net] = `172.30.0.${containers.size + 2}`;
      const ports: Record<string, string[]> = {};
      for (const p of spec.ports) ports[`${p.container}/${p.protocol}`] = [formatHostPort(p.hostIp || '0.0.0.0', p.host)];
      containers.set(id, {
        info: {
          id,
          name: spec.name,
          image: spec.image,
          labels: spec.labels,
          state: 'created',
          exitCode: 0,
          networks: nets,
          ports,
          mounts: (spec.mounts ?? []).map((m) => ({ type: 'bind', source: m.source, target: m.target, readOnly: true })),
        },
        spec: spec as S,
        open: new Set(),
        log: '',
        listeners: new Set(),
        timers: [],
      });
      return id;
    },
    async startContainer(id) {
      const c = find(id)!;
      calls.push(`start ${c.info.name}`);
      const refused = c.spec && options.refuse?.(c.spec, 'start');
      if (refused) throw refused;
      c.info.state = 'running';
      const script = c.spec && options.script ? options.script(c.spec) : { lines: [] };
      const interval = script.intervalMs ?? 5;
      script.lines.forEach((line, i) => c.timers.push(setTimeout(() => write(c, line + '\n'), interval * (i + 1))));
      c.timers.push(setTimeout(() => script.openPorts?.forEach((p) => c.open.add(p)), interval * (script.lines.length + 1)));
      if (script.exitCode !== undefined) {
        c.timers.push(
          setTimeout(() => {
            c.open.clear();
            c.info.state = 'exited';
            c.info.exitCode = script.exitCode!;
          }, interval * (script.lines.length + 1)),
        );
      }
    },
    async stopContainer(id) {
      const c = find(id);
      if (!c) return;
      calls.push(`stop ${c.info.name}`);
      for (const t of c.timers) clearTimeout(t);
      c.info.state = 'exited';
    },
    async removeContainer(id) {
      const c = find(id);
      if (!c) return;
      calls.push(`remove ${c.info.name}`);
      for (const t of c.timers) clearTimeout(t);
      containers.delete(c.info.id);
    },
    async listContainers(query) {
      return [...containers.values()].filter((c) => matches(c.info.labels, query)).map((c) => structuredClone(c.info));
    },
    async followLogs(id, onText) {
      const c = find(id)!;
      if (c.log) onText(c.log);
      c.listeners.add(onText);
      return { stop: () => void c.listeners.delete(onText), ended: new Promise<void>(() => {}) };
    },
    async exec(id, argv) {
      // Understands the readiness probe (`node -e SCRIPT HOST PORT MS`): a connect to
      // the container with that address, answered as the real script answers.
      const c = find(id);
      calls.push(`exec ${c?.info.name ?? id} ${argv.slice(-3, -1).join(':')}`);
      if (!c || c.info.state !== 'running') throw new DockerRefusal(409, `Container ${id} is not running`);
      if (c.spec && options.execRefused?.(c.spec)) return { exitCode: 126, output: `OCI runtime exec failed: exec: "${argv[0]}": stat ${argv[0]}: no such file or directory` };
      const [host, port] = argv.slice(-3, -1);
      const target = [...containers.values()].find((x) => Object.values(x.info.networks).includes(host!));
      if (target && target.info.state === 'running' && target.open.has(Number(port))) return { exitCode: 0, output: 'open\n' };
      return { exitCode: 1, output: target ? 'ECONNREFUSED\n' : 'EHOSTUNREACH\n' };
    },
    async findNetwork(name) {
      for (const n of networks.values()) if (n.name === name || n.id === name) return structuredClone(n);
      return undefined;
    },
    async createNetwork(spec: NetworkSpec) {
      calls.push(`create network ${spec.name}`);
      if ([...networks.values()].some((n) => n.name === spec.name)) throw new DockerRefusal(409, `network with name ${spec.name} already exists`);
      const id = nextId();
      const subnet = spec.subnet ?? options.subnets?.shift() ?? '172.30.0.0/24';
      networks.set(id, { id, name: spec.name, labels: spec.labels, subnet, gateway: subnet.replace(/\.0\/\d+$/, '.1'), internal: false });
      return id;
    },
    async removeNetwork(id) {
      const n = networks.get(id) ?? [...networks.values()].find((x) => x.name === id);
      if (!n) return;
      calls.push(`remove network ${n.name}`);
      networks.delete(n.id);
    },
    async listNetworks(query) {
      return [...networks.values()].filter((n) => matches(n.labels, query)).map((n) => structuredClone(n));
    },
  };
  return Object.assign(engine, { builds, imports, images, containers, networks, calls });
}
