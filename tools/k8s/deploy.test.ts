import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMemoryLogger, CtunError } from '../common/index.js';
import {
  accessLines,
  clientArgs,
  clientCommand,
  deleteDeployment,
  deploy,
  forwardTo,
  nodeAddressOf,
  nodePortOf,
  RecordedKubeApi,
  startLocalForward,
  targetPod,
  waitForPods,
  type Clock,
  type NodeLike,
  type PodLike,
  type PodStreamOpener,
} from './index.js';
import { exitCodeMeaning } from './wait.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'k8s');
const fx = (...names: string[]): RecordedKubeApi => RecordedKubeApi.fromFiles(...names.map((n) => join(FIXTURES, n)));

/** A clock whose sleep advances time at once. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return { slept, now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)) };
}

const base = { namespace: 'default', logger: createMemoryLogger() };

describe('wait for readiness', () => {
  it('follows pods pending → running → ready, polling with the clock', async () => {
    const api = fx('pods-integrated-startup.json');
    const clock = fakeClock();
    const log = createMemoryLogger();
    const ready = await waitForPods(api, { ...base, logger: log, selector: 'app=veos-ctun', count: 1, what: 'the pod', clock, intervalMs: 2000 });
    expect(ready.map((p) => p.metadata?.name)).toEqual(['veos-ctun-7d9c5b6f4-x2kqp']);
    expect(clock.slept).toEqual([2000, 2000, 2000]);
    const statuses = log.lines.filter((l) => l.event === 'k8s-wait').map((l) => l.fields.status);
    expect(statuses).toEqual([
      'no pods yet',
      'veos-ctun-7d9c5b6f4-x2kqp Pending, ctun: ContainerCreating, veos: ContainerCreating',
      'veos-ctun-7d9c5b6f4-x2kqp Running, veos: running, not ready',
      'veos-ctun-7d9c5b6f4-x2kqp Running, Ready',
    ]);
  });

  it('a container in CrashLoopBackOff fails the wait at once, naming the container, its last exit code and what it means', async () => {
    const api = fx('pods-crashloop.json');
    const err = await waitForPods(api, { ...base, selector: 'app=veos-ctun', count: 1, what: 'the pod', clock: fakeClock() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CtunError);
    expect((err as CtunError).code).toBe('K8S_CRASHLOOP');
    expect((err as CtunError).message).toBe(
      'container ctun of pod veos-ctun-7d9c5b6f4-x2kqp is in CrashLoopBackOff after 3 restarts: last exit code 2 (missing privileges (NET_ADMIN, or /dev/net/tun not mounted)), reason Error',
    );
    expect((err as CtunError).hint).toContain('kubectl logs veos-ctun-7d9c5b6f4-x2kqp -c ctun --previous');
  });

  it('an image the cluster cannot pull fails at once with the image and how to load it', async () => {
    const err = (await waitForPods(fx('pods-imagepull.json'), { ...base, selector: 'app=veos-ctun', count: 1, what: 'the pod', clock: fakeClock(), images: { ctun: 'dspace/ctun/local-server:23.1.0' } }).catch((e: unknown) => e)) as CtunError;
    expect(err.code).toBe('K8S_IMAGE');
    expect(err.message).toMatch(/container ctun of pod \S+ cannot get its image dspace\/ctun\/local-server:23\.1\.0 \(ImagePullBackOff\)/);
    expect(err.hint).toContain('minikube image load dspace/ctun/local-server:23.1.0');
  });

  it('a forbidden sysctl fails with the kubelet flag to set', async () => {
    const err = (await waitForPods(fx('pods-sysctl-forbidden.json'), { ...base, selector: 'app=ctun-separate-server', count: 1, what: 'server', clock: fakeClock() }).catch((e: unknown) => e)) as CtunError;
    expect(err.message).toBe('pod ctun-separate-server-58c4b9d7f6-zt5hw failed (SysctlForbidden): Pod forbidden sysctl: "net.ipv4.ip_forward" not allowlisted');
    expect(err.hint).toContain('--allowed-unsafe-sysctls=net.ipv4.ip_forward');
  });

  it('times out after the bound, saying what was awaited, for how long, and the last status seen', async () => {
    const clock = fakeClock();
    const err = (await waitForPods(fx('pods-unschedulable.json'), { ...base, selector: 'app=veos-ctun', count: 1, what: 'the simulator and tunnel server pod', clock, timeoutMs: 30_000, intervalMs: 4_000 }).catch((e: unknown) => e)) as CtunError;
    expect(err.code).toBe('K8S_WAIT_TIMEOUT');
    expect(err.message).toBe(
      'waited 30 s for the simulator and tunnel server pod (1 pod labelled app=veos-ctun in namespace default) to be Ready; 0 ready; last seen: veos-ctun-7d9c5b6f4-x2kqp Pending, unschedulable: 0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.',
    );
    expect(clock.now()).toBe(30_000);
    expect(clock.slept.every((ms) => ms <= 4_000)).toBe(true);
  });
});

describe('discovery', () => {
  it('NodePort of the transport\'s protocol; a missing protocol is an error', async () => {
    const api = fx('cluster-minikube.json');
    const svc = await api.readService('default', 'ctun-service');
    expect(nodePortOf(svc, 'udp')).toBe(31723);
    expect(() => nodePortOf(svc, 'tcp')).toThrow(/has no TCP port/);
  });

  it('node address: the server pod\'s node, ExternalIP before InternalIP; the API server host as fallback', async () => {
    const cloud = await fx('cluster-cloud.json').listNodes();
    expect(nodeAddressOf(cloud, 'pool-a-2', 'api')).toEqual({ address: '203.0.113.12', source: 'ExternalIP of node pool-a-2' });
    const mk = await fx('cluster-minikube.json').listNodes();
    expect(nodeAddressOf(mk, 'minikube', 'x')).toEqual({ address: '192.168.49.2', source: 'InternalIP of node minikube' });
    expect(nodeAddressOf([], 'minikube', '192.168.49.2').source).toMatch(/API server host/);
  });
});

describe('discovery on IPv6 and dual-stack clusters', () => {
  const node = (name: string, ...addresses: Array<[string, string]>): NodeLike => ({ metadata: { name }, status: { addresses: addresses.map(([type, address]) => ({ type, address })) } });
  const dualV4First = node('n1', ['InternalIP', '10.0.0.5'], ['InternalIP', 'fd00::5'], ['Hostname', 'n1']);
  const dualV6First = node('n1', ['InternalIP', 'fd00::5'], ['InternalIP', '10.0.0.5']);

  it('node address: dual takes the family the node lists first; ipv4 and ipv6 take theirs', () => {
    expect(nodeAddressOf([dualV4First], 'n1', 'api')).toEqual({ address: '10.0.0.5', source: 'InternalIP of node n1' });
    expect(nodeAddressOf([dualV6First], 'n1', 'api', 'dual')).toEqual({ address: 'fd00::5', source: 'InternalIP of node n1' });
    expect(nodeAddressOf([dualV4First], 'n1', 'api', 'ipv6').address).toBe('fd00::5');
    expect(nodeAddressOf([dualV6First], 'n1', 'api', 'ipv4').address).toBe('10.0.0.5');
  });

  it('node address: an ExternalIP of the other family does not count; the server pod\'s node still comes first', () => {
    const cloud = [node('a', ['InternalIP', 'fd00::4']), node('b', ['ExternalIP', '203.0.113.7'], ['InternalIP', 'fd00::6'])];
    expect(nodeAddressOf(cloud, 'b', 'api', 'ipv6')).toEqual({ address: 'fd00::6', source: 'InternalIP of node b' });
    expect(nodeAddressOf(cloud, 'b', 'api', 'dual')).toEqual({ address: '203.0.113.7', source: 'ExternalIP of node b' });
    expect(nodeAddressOf(cloud, 'gone', 'api', 'ipv6').address).toBe('fd00::4');
  });

  it('node address: none of the family asked for is an error naming what was seen and what to give', () => {
    expect(() => nodeAddressOf([node('n1', ['InternalIP', '10.0.0.5'])], 'n1', '10.0.0.1', 'ipv6')).toThrowError(
      expect.objectContaining({
        code: 'K8S_DISCOVER',
        message: 'no IPv6 node address for the client: the nodes list 10.0.0.5, the API server is 10.0.0.1',
        hint: 'give the address the client dials with --node-address, or leave out --ip-family ipv6',
      }),
    );
    // Without node information an API server of that family is the fallback, as for IPv4.
    expect(nodeAddressOf([], 'n1', 'fd00::1', 'ipv6')).toEqual({ address: 'fd00::1', source: 'API server host (no IPv6 node addresses visible)' });
  });

  it('target pod: of a dual-stack pod\'s IPs the family asked for; dual takes the IPv4 one (the server forwards IPv4 unless --ip-family ipv6)', () => {
    const pod = (name: string, ...ips: string[]): PodLike => ({
      metadata: { name },
      status: { phase: 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })), conditions: [{ type: 'Ready', status: 'True' }] },
    });
    const pods = [pod('veos-b', 'fd00:10:244::c', '10.244.0.12'), pod('veos-a', 'fd00:10:244::b', '10.244.0.11')];
    expect(targetPod(pods)).toEqual({ name: 'veos-a', ip: '10.244.0.11' });
    expect(targetPod(pods, 'ipv4')).toEqual({ name: 'veos-a', ip: '10.244.0.11' });
    expect(targetPod(pods, 'ipv6')).toEqual({ name: 'veos-a', ip: 'fd00:10:244::b' });
    expect(targetPod([pod('veos-a', 'fd00:10:244::b')])).toEqual({ name: 'veos-a', ip: 'fd00:10:244::b' });
    expect(() => targetPod([pod('veos-a', 'fd00:10:244::b')], 'ipv4')).toThrow('no Ready simulator pod with an IPv4 pod IP');
  });

  it('an IPv6-only cluster: the Service prefers dual stack, the client is told the node\'s IPv6 address bare and the tunnel as [addr]:port', async () => {
    const api = fx('cluster-ipv6.json', 'pods-integrated-startup.json');
    const d = await deploy({ mode: 'integrated', params: { licenseServer: 'lic' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() });
    const service = api.applied.find((a) => a.object.kind === 'Service')!.object as any;
    expect(service.spec.ipFamilyPolicy).toBe('PreferDualStack');
    expect(service.spec.ipFamilies).toBeUndefined();
    expect(d.node).toEqual({ address: 'fd00::5', source: 'InternalIP of node kind-control-plane' });
    expect(clientCommand(d)).toBe('ctun client fd00::5 --port 31723');
    expect(accessLines(d, clientArgs(d))).toEqual(['KUBERNETES_IP=fd00::5   # InternalIP of node kind-control-plane', 'NODEPORT_PORT=31723', '# the tunnel: [fd00::5]:31723/udp', 'ctun client fd00::5 --port 31723']);
  });

  it('--node-address may be written [addr]: the client gets it bare', async () => {
    const api = fx('cluster-ipv6.json', 'pods-integrated-startup.json');
    const d = await deploy({ mode: 'integrated', params: { licenseServer: 'lic', ipFamily: 'ipv4' }, nodeAddress: '[fd00::7]', namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() });
    expect(d.node).toEqual({ address: 'fd00::7', source: '--node-address' });
    expect(clientCommand(d)).toBe('ctun client fd00::7 --port 31723');
    // --ip-family ipv4 on a cluster whose nodes have only IPv6 addresses, without --node-address: said at once.
    await expect(deploy({ mode: 'integrated', params: { licenseServer: 'lic', ipFamily: 'ipv4' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() })).rejects.toMatchObject({ code: 'K8S_DISCOVER', message: expect.stringContaining('no IPv4 node address') });
  });
});

describe('deploy against recorded API responses', () => {
  it('integrated: applies the NetworkPolicy, the service, then the pod (server-side), waits, discovers node and NodePort, prints the exact client command', async () => {
    const api = fx('cluster-minikube.json', 'pods-integrated-startup.json');
    const d = await deploy({ mode: 'integrated', params: { licenseServer: '22350@lic.example' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() });
    expect(api.applied.map((a) => `${a.object.kind}/${a.object.metadata.name}`)).toEqual(['NetworkPolicy/ctun-tunnel-port-only', 'Service/ctun-service', 'Deployment/veos-ctun']);
    expect(api.applied.every((a) => a.namespace === 'default')).toBe(true);
    expect(JSON.stringify(api.applied[2]!.object)).toContain('22350@lic.example');
    expect(d).toMatchObject({ serverPod: 'veos-ctun-7d9c5b6f4-x2kqp', nodePort: 31723, node: { address: '192.168.49.2' } });
    expect(clientCommand(d)).toBe('ctun client 192.168.49.2 --port 31723');
  });

  it('separated: waits for 5 simulators and the server, routes to the first ready simulator by name', async () => {
    const api = fx('cluster-minikube.json', 'pods-separated.json');
    const d = await deploy({ mode: 'separate', params: { licenseServer: 'lic' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() });
    expect(api.applied.map((a) => a.object.metadata.name)).toEqual(['ctun-tunnel-port-only', 'ctun-service', 'veos', 'ctun-separate-server']);
    expect(d.target).toEqual({ name: 'veos-6f8d9c7b5-4hzkq', ip: '10.244.0.12' });
    expect(clientCommand(d)).toBe('ctun client 192.168.49.2 --port 31723 --dest 10.244.0.12');
  });

  it('without the right to list nodes, the API server host is used', async () => {
    const rec = fx('cluster-minikube.json', 'pods-integrated-startup.json', 'nodes-forbidden.json');
    const d = await deploy({ mode: 'integrated', params: { licenseServer: 'lic' }, namespace: 'default', api: rec, logger: createMemoryLogger(), clock: fakeClock() });
    expect(d.node).toEqual({ address: '192.168.49.2', source: 'API server host (no node addresses visible)' });
  });

  it('a crash-looping server fails the deployment with the container\'s exit code', async () => {
    const api = fx('cluster-minikube.json', 'pods-crashloop.json');
    await expect(deploy({ mode: 'integrated', params: { licenseServer: 'lic' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() })).rejects.toThrow(/container ctun .* last exit code 2/);
  });

  it('via port-forward: TCP server, the NetworkPolicy but no Service, client to 127.0.0.1 with --transport tcp', async () => {
    const api = fx('pods-integrated-startup.json');
    const d = await deploy({ mode: 'integrated', via: 'port-forward', params: { licenseServer: 'lic' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() });
    expect(api.applied.map((a) => a.object.kind)).toEqual(['NetworkPolicy', 'Deployment']);
    const ctun = (api.applied[1]!.object as any).spec.template.spec.containers.find((c: any) => c.name === 'ctun');
    expect(ctun.args).toEqual(expect.arrayContaining(['--transport', 'tcp']));
    expect(ctun.ports).toEqual([{ name: 'ctun-tcp', containerPort: 1723, protocol: 'TCP' }, { name: 'metrics', containerPort: 9723, protocol: 'TCP' }]);
    expect(api.calls).not.toContain('readService ctun-service');
    expect(clientArgs(d, { port: 40123 })).toEqual(['client', '127.0.0.1', '--port', '40123', '--transport', 'tcp']);
    await expect(deploy({ mode: 'integrated', via: 'port-forward', params: { licenseServer: 'lic', transport: 'udp' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() })).rejects.toThrow(/carries TCP only/);
  });

  it('delete removes what carries the managed-by label, found by label', async () => {
    const api = fx('cluster-minikube.json', 'pods-separated.json');
    await deploy({ mode: 'separate', params: { licenseServer: 'lic' }, namespace: 'default', api, logger: createMemoryLogger(), clock: fakeClock() });
    expect(await deleteDeployment(api, 'default', createMemoryLogger())).toEqual(['NetworkPolicy/ctun-tunnel-port-only', 'Service/ctun-service', 'Deployment/veos', 'Deployment/ctun-separate-server']);
    expect(api.deleted).toEqual([{ namespace: 'default', selector: 'app.kubernetes.io/managed-by=ctun' }]);
  });
});

describe('port-forward listener', () => {
  /** Stands in for the API server's stream: connects to a local "pod" port. */
  function loopbackOpener(podPort: number, seen: string[]): PodStreamOpener {
    return async (namespace, pod, port, socket) => {
      seen.push(`${namespace}/${pod}:${port}`);
      const upstream = connect(podPort, '127.0.0.1');
      await new Promise<void>((resolve, reject) => upstream.once('connect', resolve).once('error', reject));
      socket.pipe(upstream).pipe(socket);
      upstream.on('close', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
    };
  }

  it('carries each loopback connection to the pod port, both ways, and closes cleanly', async () => {
    const pod = createServer((s) => s.on('data', (d) => s.write(Buffer.concat([Buffer.from('pod:'), d]))));
    await new Promise<void>((r) => pod.listen(0, '127.0.0.1', r));
    const podPort = (pod.address() as { port: number }).port;
    const seen: string[] = [];
    const log = createMemoryLogger();
    const d = { mode: 'integrated', via: 'port-forward', namespace: 'sim', applied: [], serverPod: 'veos-ctun-abc', transport: 'tcp' } as const;
    await using fwd = await forwardTo({ ...d, applied: [] }, loopbackOpener(podPort, seen), { port: 1723, logger: log });
    expect(fwd.localPort).toBeGreaterThan(0);
    for (const msg of ['one', 'two']) {
      const c: Socket = connect(fwd.localPort, '127.0.0.1');
      const reply = await new Promise<string>((resolve, reject) => {
        c.once('data', (b) => resolve(b.toString()));
        c.once('error', reject);
        c.write(msg);
      });
      expect(reply).toBe(`pod:${msg}`);
      c.destroy();
    }
    expect(seen).toEqual(['sim/veos-ctun-abc:1723', 'sim/veos-ctun-abc:1723']);
    expect(fwd.connections()).toBe(2);
    await new Promise<void>((r) => pod.close(() => r()));
  });

  it('a stream that cannot open closes the local connection and says why', async () => {
    const log = createMemoryLogger();
    await using fwd = await startLocalForward(async () => {
      throw new Error('pods "x" is forbidden');
    }, { namespace: 'n', pod: 'x', port: 1723, logger: log });
    const c = connect(fwd.localPort, '127.0.0.1');
    await new Promise<void>((resolve) => c.once('close', () => resolve()).on('error', () => {}));
    expect(log.lines.find((l) => l.event === 'k8s-port-forward-failed')?.fields.error).toBe('pods "x" is forbidden');
  });

  it('a taken local port is an error with a hint', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    await expect(startLocalForward(async () => {}, { namespace: 'n', pod: 'x', port: 1723, localPort: port, logger: createMemoryLogger() })).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+/);
    await new Promise<void>((r) => taken.close(() => r()));
  });
});

describe('exit codes of the simulator container', () => {
  it('are explained as the stand-in\'s (any simulator image may run there), and not guessed for others', () => {
    expect(exitCodeMeaning('veos', 3)).toBe('for the stand-in simulator: license server unreachable (DS_CMU_SERVER)');
    expect(exitCodeMeaning('veos', 42)).toBeUndefined();
    expect(exitCodeMeaning('ctun', 2)).toBe('missing privileges (NET_ADMIN, or /dev/net/tun not mounted)');
  });
});
