/**
 * The real API adapter (cluster.ts, over @kubernetes/client-node) against a local
 * HTTP server on loopback that speaks the API's shape for the calls ctun makes:
 * discovery, server-side apply, pods list by label selector, service read, nodes
 * list, list+delete by label, the port-forward WebSocket. The client library is
 * pointed at it by a kubeconfig file of this test's own, so the adapter's real
 * requests are checked (paths, patch content type, field manager, force, label
 * selectors, the port-forward upgrade) and deploy's wait/discover logic and the
 * local forward run over real HTTP responses.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, CtunError } from '../common/index.js';
import { ClusterApi, clientCommand, deleteDeployment, deploy, FIELD_MANAGER, loadKubeConfig, startLocalForward, type Clock } from './index.js';

/** The little of `ws` used here: the WebSocket library @kubernetes/client-node speaks port-forward with (it ships no types). */
interface WsSocket {
  protocol: string;
  send(data: Buffer): void;
  on(event: 'message', listener: (data: Buffer) => void): void;
  terminate(): void;
}
interface WsServer {
  clients: Set<WsSocket>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, done: (ws: WsSocket) => void): void;
  close(): void;
}
const { WebSocketServer } = createRequire(import.meta.url)('ws') as {
  WebSocketServer: new (o: { noServer: true; handleProtocols: (protocols: Set<string>) => string | false }) => WsServer;
};

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType?: string;
  body?: unknown;
}

type Obj = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: Record<string, unknown> };

/** Equality-only selectors (`a=b,c=d`), the only kind ctun sends. */
function matches(selector: string | null, labels: Record<string, string> = {}): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return labels[k!] === v;
  });
}

const RESOURCES: Record<string, Array<{ name: string; kind: string; namespaced: boolean }>> = {
  '/api/v1': [
    { name: 'pods', kind: 'Pod', namespaced: true },
    { name: 'services', kind: 'Service', namespaced: true },
    { name: 'nodes', kind: 'Node', namespaced: false },
    { name: 'namespaces', kind: 'Namespace', namespaced: false },
  ],
  '/apis/apps/v1': [{ name: 'deployments', kind: 'Deployment', namespaced: true }],
  '/apis/networking.k8s.io/v1': [{ name: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true }],
};

/**
 * A small API server: applied Deployments get pods that are Pending on the first list
 * and Ready (with a pod IP) from the second; applied Services get a nodePort.
 */
class FakeApiServer {
  readonly seen: Seen[] = [];
  readonly objects = new Map<string, Obj>();
  private readonly lists = new Map<string, number>();
  /** Port-forward upgrades seen: path with query, and the subprotocol agreed. */
  readonly forwards: Array<{ url: string; protocol: string }> = [];
  private server?: Server;
  private wss?: WsServer;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.read(req).then((raw) => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const body = raw ? (JSON.parse(raw) as unknown) : undefined;
        this.seen.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, contentType: req.headers['content-type'], body });
        const [status, answer] = this.answer(req.method ?? '', url, body as Obj | undefined);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      });
    });
    // Port-forward, as the API server speaks it: a WebSocket of the channel protocol;
    // each binary frame starts with its channel (0 data, 1 error), and the first frame
    // of each channel carries the port (2 bytes, little-endian). The "pod" echoes.
    this.wss = new WebSocketServer({ noServer: true, handleProtocols: (ps) => (ps.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false) });
    this.server.on('upgrade', (req, socket, head) => {
      this.wss!.handleUpgrade(req, socket, head, (ws) => {
        this.forwards.push({ url: req.url ?? '', protocol: ws.protocol });
        const port = Number(new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('ports'));
        const portBytes = [port & 0xff, port >> 8];
        ws.send(Buffer.from([0, ...portBytes]));
        ws.send(Buffer.from([1, ...portBytes]));
        ws.on('message', (data: Buffer) => {
          if (data[0] === 0 && data.length > 1) ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(data.subarray(1).toString().toUpperCase())]));
        });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    for (const c of this.wss?.clients ?? []) c.terminate();
    this.wss?.close();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private read(req: IncomingMessage): Promise<string> {
    return new Promise((resolve) => {
      let s = '';
      req.on('data', (c: Buffer) => (s += c.toString()));
      req.on('end', () => resolve(s));
    });
  }

  private answer(method: string, url: URL, body: Obj | undefined): [number, unknown] {
    const p = url.pathname;
    if (method === 'GET' && RESOURCES[p]) return [200, { kind: 'APIResourceList', groupVersion: p.replace(/^\/apis?\//, ''), resources: RESOURCES[p] }];
    if (method === 'GET' && p === '/api/v1/nodes') {
      return [200, { kind: 'NodeList', items: [{ metadata: { name: 'node-a' }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.10' }] } }] }];
    }
    const m = /^\/apis?\/(?:[^/]+\/)?v1\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    if (!m) return [404, { kind: 'Status', code: 404, message: `no route ${method} ${p}` }];
    const [, ns, resource, name] = m as unknown as [string, string, string, string | undefined];
    const key = (n: string): string => `${ns}/${resource}/${n}`;
    if (method === 'PATCH' && name) {
      const stored: Obj = resource === 'services' ? this.withNodePort(body!) : body!;
      this.objects.set(key(name), stored);
      return [200, stored];
    }
    if (method === 'GET' && name) {
      const o = this.objects.get(key(name));
      return o ? [200, o] : [404, { kind: 'Status', code: 404, message: `${resource} "${name}" not found` }];
    }
    if (method === 'DELETE' && name) {
      this.objects.delete(key(name));
      return [200, { kind: 'Status', status: 'Success' }];
    }
    if (method === 'GET' && resource === 'pods') return [200, { kind: 'PodList', items: this.pods(ns, url.searchParams.get('labelSelector')) }];
    if (method === 'GET') {
      const items = [...this.objects.entries()].filter(([k, o]) => k.startsWith(`${ns}/${resource}/`) && matches(url.searchParams.get('labelSelector'), o.metadata.labels)).map(([, o]) => o);
      return [200, { kind: 'List', items }];
    }
    return [405, { kind: 'Status', code: 405, message: `${method} ${p}` }];
  }

  private withNodePort(o: Obj): Obj {
    const spec = o.spec as { ports?: Array<Record<string, unknown>> };
    return { ...o, spec: { ...spec, ports: (spec.ports ?? []).map((port, i) => ({ ...port, nodePort: 31723 + i })) } };
  }

  /** The pods of the namespace's Deployments: Pending on the first list of a selector, Ready afterwards. */
  private pods(ns: string, selector: string | null): unknown[] {
    const n = (this.lists.get(`${ns}:${selector}`) ?? 0) + 1;
    this.lists.set(`${ns}:${selector}`, n);
    const out: unknown[] = [];
    let ip = 7;
    for (const [k, d] of this.objects) {
      if (!k.startsWith(`${ns}/deployments/`)) continue;
      const spec = d.spec as { replicas?: number; template: { metadata: { labels: Record<string, string> } } };
      for (let i = 0; i < (spec.replicas ?? 1); i++) {
        ip++;
        if (!matches(selector, spec.template.metadata.labels)) continue;
        const ready = n > 1;
        out.push({
          metadata: { name: `${d.metadata.name}-pod-${i}`, labels: spec.template.metadata.labels },
          spec: { nodeName: 'node-a' },
          status: ready
            ? { phase: 'Running', podIP: `10.244.0.${ip}`, conditions: [{ type: 'Ready', status: 'True' }] }
            : { phase: 'Pending', conditions: [{ type: 'Ready', status: 'False' }] },
        });
      }
    }
    return out;
  }
}

/** A clock whose sleep advances time at once. */
function fakeClock(): Clock {
  let t = 0;
  return { now: () => t, sleep: async (ms) => void (t += ms) };
}

describe('ClusterApi (the real adapter) against a local API server', () => {
  const server = new FakeApiServer();
  let dir = '';
  let savedKubeconfig: string | undefined;
  let api: ClusterApi;

  beforeAll(async () => {
    await server.start();
    dir = mkdtempSync(join(tmpdir(), 'ctun-k8s-adapter-'));
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: ctun-test-local, cluster: {server: "' + server.url + '", insecure-skip-tls-verify: true}}]',
        'users: [{name: ctun-test-user, user: {token: ctun-test-token}}]',
        'contexts: [{name: ctun-test-ctx, context: {cluster: ctun-test-local, user: ctun-test-user, namespace: ctun-adapter}}]',
        'current-context: ctun-test-ctx',
        '',
      ].join('\n'),
    );
    savedKubeconfig = process.env.KUBECONFIG;
    process.env.KUBECONFIG = file;
    api = new ClusterApi(loadKubeConfig());
  });

  afterAll(async () => {
    if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = savedKubeconfig;
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deploys separated: server-side applies each object as ctun with force, polls pods by label, discovers NodePort, node and target pod', async () => {
    const d = await deploy({ mode: 'separate', params: { licenseServer: '22350@license.test', replicas: 2 }, namespace: 'ctun-adapter', api, logger: createMemoryLogger(), clock: fakeClock(), intervalMs: 1000 });

    const patches = server.seen.filter((s) => s.method === 'PATCH');
    expect(patches.map((s) => s.path)).toEqual([
      '/apis/networking.k8s.io/v1/namespaces/ctun-adapter/networkpolicies/ctun-tunnel-port-only',
      '/api/v1/namespaces/ctun-adapter/services/ctun-service',
      '/apis/apps/v1/namespaces/ctun-adapter/deployments/veos',
      '/apis/apps/v1/namespaces/ctun-adapter/deployments/ctun-separate-server',
    ]);
    for (const s of patches) {
      expect(s.contentType).toBe('application/apply-patch+yaml');
      expect(s.query.get('fieldManager')).toBe(FIELD_MANAGER);
      expect(s.query.get('force')).toBe('true');
      expect((s.body as Obj).metadata.namespace).toBe('ctun-adapter');
    }
    const podLists = server.seen.filter((s) => s.method === 'GET' && s.path === '/api/v1/namespaces/ctun-adapter/pods').map((s) => s.query.get('labelSelector'));
    expect(podLists).toEqual(['app=veos', 'app=veos', 'app=ctun-separate-server', 'app=ctun-separate-server']);
    expect(server.seen.some((s) => s.method === 'GET' && s.path === '/api/v1/namespaces/ctun-adapter/services/ctun-service')).toBe(true);

    expect(d.applied).toEqual(['NetworkPolicy/ctun-tunnel-port-only', 'Service/ctun-service', 'Deployment/veos', 'Deployment/ctun-separate-server']);
    expect(d.serverPod).toBe('ctun-separate-server-pod-0');
    expect(d.target).toEqual({ name: 'veos-pod-0', ip: '10.244.0.8' });
    expect(d.node).toEqual({ address: '192.0.2.10', source: 'InternalIP of node node-a' });
    expect(clientCommand(d)).toBe('ctun client 192.0.2.10 --port 31723 --dest 10.244.0.8');
  });

  it('deletes what it applied, found by the managed-by label', async () => {
    server.seen.length = 0;
    const deleted = await deleteDeployment(api, 'ctun-adapter', createMemoryLogger());
    expect(deleted.sort()).toEqual(['Deployment/ctun-separate-server', 'Deployment/veos', 'NetworkPolicy/ctun-tunnel-port-only', 'Service/ctun-service']);
    const lists = server.seen.filter((s) => s.method === 'GET');
    expect(lists.map((s) => s.path)).toEqual([
      '/apis/apps/v1/namespaces/ctun-adapter/deployments',
      '/api/v1/namespaces/ctun-adapter/services',
      '/apis/networking.k8s.io/v1/namespaces/ctun-adapter/networkpolicies',
    ]);
    for (const s of lists) expect(s.query.get('labelSelector')).toBe('app.kubernetes.io/managed-by=ctun');
    const deployDelete = server.seen.find((s) => s.method === 'DELETE' && s.path.endsWith('/deployments/veos'));
    expect((deployDelete?.body as { propagationPolicy?: string } | undefined)?.propagationPolicy ?? deployDelete?.query.get('propagationPolicy')).toBe('Foreground');
    expect([...server.objects.keys()]).toEqual([]);
  });

  it('an API error becomes a K8S_API error naming the call and the API message', async () => {
    const err = await api.readService('ctun-adapter', 'no-such').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CtunError);
    expect((err as CtunError).code).toBe('K8S_API');
    expect((err as CtunError).message).toBe('read service no-such in ctun-adapter: HTTP 404: services "no-such" not found');
  });

  it('serverHost is the kubeconfig server host', () => {
    expect(api.serverHost()).toBe('127.0.0.1');
  });

  it("port-forward: a local TCP connection is carried over the API server's WebSocket to the pod's port, both ways", async () => {
    await using forward = await startLocalForward(api.portForwardOpener(), { namespace: 'ctun-adapter', pod: 'ctun-server-pod-0', port: 1723, logger: createMemoryLogger() });
    const socket = connect(forward.localPort, '127.0.0.1');
    const answer = await new Promise<string>((resolve, reject) => {
      let got = '';
      socket.on('error', reject);
      setTimeout(() => reject(new Error(`no answer through the port-forward within 5 s (got "${got}")`)), 5_000).unref();
      socket.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.length >= 'hello pod'.length) resolve(got);
      });
      socket.write('hello pod');
    });
    socket.destroy();
    expect(answer).toBe('HELLO POD');
    expect(server.forwards).toEqual([{ url: '/api/v1/namespaces/ctun-adapter/pods/ctun-server-pod-0/portforward?ports=1723', protocol: 'v4.channel.k8s.io' }]);
  });
});
