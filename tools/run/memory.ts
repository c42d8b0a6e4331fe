import { createMemoryDocker } from '../docker/index.js';
import type { ContainerInfo, LabelQuery, NetworkInfo, RunEngine } from './engine.js';
import type { ContainerPlan, NetworkPlan } from './plan.js';

/**
 * The in-memory twin of {@link RunEngine}, for unit tests of the executor: containers
 * "run" a script of log lines (and may exit), the daemon's refusals are thrown with
 * a status code and a message, as dockerode does.
 */
export class FakeDockerError extends Error {
  readonly json: { message: string };
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(`(HTTP code ${statusCode}) ${message}`);
    this.json = { message };
  }
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

export interface MemoryRunOptions {
  images?: Array<string | { ref: string; labels: Record<string, string> }>;
  /** What each container does once started; default prints nothing and runs. */
  script?: (spec: ContainerPlan) => ContainerScript;
  /** Fail a create or start: return the error to throw. */
  refuse?: (spec: ContainerPlan, step: 'create' | 'start') => Error | undefined;
  /** Subnets handed out, in order, to networks created without one; then 172.30.0.0/24. */
  subnets?: string[];
  /** Containers in which an exec finds no probe runtime (an image without the tunnel). */
  execRefused?: (spec: ContainerPlan) => boolean;
  /** Containers that exist beforehand (by name), e.g. to test "name in use". */
  existing?: Array<{ name: string; labels?: Record<string, string> }>;
}

interface MemContainer {
  info: ContainerInfo;
  spec?: ContainerPlan;
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

export function createMemoryRunEngine(options: MemoryRunOptions = {}): RunEngine & {
  containers: Map<string, MemContainer>;
  networks: Map<string, NetworkInfo>;
  calls: string[];
} {
  const images = createMemoryDocker({ images: (options.images ?? []).map((i) => (typeof i === 'string' ? i : i.ref)) });
  for (const i of options.images ?? []) if (typeof i !== 'string') images.images.get(i.ref)!.labels = i.labels;
  const containers = new Map<string, MemContainer>();
  const networks = new Map<string, NetworkInfo>();
  const calls: string[] = [];
  let counter = 0;
  const nextId = (): string => (++counter).toString(16).padStart(64, 'c');
  for (const e of options.existing ?? []) {
    const id = nextId();
    containers.set(id, {
      info: { id, name: e.name, image: 'other', labels: e.labels ?? {}, state: 'running', exitCode: 0, networks: {}, ports: {} },
      open: new Set(),
      log: '',
      listeners: new Set(),
      timers: [],
    });
  }
  const find = (nameOrId: string): MemContainer | undefined => {
    for (const c of containers.values()) if (c.info.id === nameOrId || c.info.name === nameOrId) return c;
    return undefined;
  };
  const write = (c: MemContainer, text: string): void => {
    c.log += text;
    for (const l of c.listeners) l(text);
  };
  const engine: RunEngine & { containers: typeof containers; networks: typeof networks; calls: string[] } = {
    images,
    containers,
    networks,
    calls,
    async findContainer(nameOrId) {
      const c = find(nameOrId);
      return c ? structuredClone(c.info) : undefined;
    },
    async createContainer(spec) {
      calls.push(`create ${spec.name}`);
      const refused = options.refuse?.(spec, 'create');
      if (refused) throw refused;
      if (find(spec.name)) throw new FakeDockerError(409, `Conflict. The container name "/${spec.name}" is already in use by container "x".`);
      if (!(await images.imageExists(spec.image))) throw new FakeDockerError(404, `No such image: ${spec.image}`);
      const id = nextId();
      const nets: Record<string, string> = {};
      const net = spec.network ?? 'bridge';
      nets[net] = `172.30.0.${containers.size + 2}`;
      const ports: Record<string, string[]> = {};
      for (const p of spec.ports) ports[`${p.container}/${p.protocol}`] = [`${p.hostIp || '0.0.0.0'}:${p.host}`];
      containers.set(id, {
        info: { id, name: spec.name, image: spec.image, labels: spec.labels, state: 'created', exitCode: 0, networks: nets, ports },
        spec,
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
      if (!c || c.info.state !== 'running') throw new FakeDockerError(409, `Container ${id} is not running`);
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
    async createNetwork(spec: NetworkPlan) {
      calls.push(`create network ${spec.name}`);
      if ([...networks.values()].some((n) => n.name === spec.name)) throw new FakeDockerError(409, `network with name ${spec.name} already exists`);
      const id = nextId();
      const subnet = spec.subnet ?? options.subnets?.shift() ?? '172.30.0.0/24';
      networks.set(id, { id, name: spec.name, labels: spec.labels, subnet, gateway: subnet.replace(/\.0\/\d+$/, '.1') });
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
  return engine;
}
