/**
 * The integrated and separated flows on a real cluster. The one skip: no kubeconfig
 * configured (KUBECONFIG unset or naming no file, no ~/.kube/config), said in one
 * line. A kubeconfig that is configured but broken (unreadable, no answer within
 * 5 s, refused) fails the first test, with what was wrong. The images must be in the
 * cluster (`minikube image load ...`), and the separated flow needs a kubelet that
 * allows net.ipv4.ip_forward. Uses its own namespace and deletes it afterwards.
 */
import { AppsV1Api, CoreV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryLogger } from '../../tools/common/index.js';
import { clientCommand, ClusterApi, deleteDeployment, deploy, kubeconfigSource, loadKubeConfig } from '../../tools/k8s/index.js';

const source = kubeconfigSource();
if (!source) console.log('k8s-cluster: skipped: no kubeconfig (KUBECONFIG unset or missing, no ~/.kube/config)');
const suite = source ? describe : describe.skip;
const LICENSE = process.env.CTUN_TEST_LICENSE_SERVER ?? '22350@license.invalid';
/** How long the configured cluster has to answer its version: a broken one fails the suite, it does not skip it. */
const ANSWER_MS = 5_000;

suite('k8s on a real cluster', () => {
  const namespace = `ctun-test-${process.pid}`;
  let kc: KubeConfig | undefined;
  let api: ClusterApi | undefined;
  /** The cluster of the first test; the later ones fail with this line when it did not answer. */
  const cluster = (): { kc: KubeConfig; api: ClusterApi } => {
    if (!kc || !api) throw new Error(`the configured cluster (${source}) did not answer: see the first test`);
    return { kc, api };
  };

  afterAll(async () => {
    if (!kc || !api) return;
    await deleteDeployment(api, namespace, createMemoryLogger()).catch(() => []);
    await kc.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it(`the configured cluster (${source}) answers within ${ANSWER_MS / 1000} s`, async () => {
    const config = loadKubeConfig();
    const answer = await Promise.race([
      config.makeApiClient(VersionApi).getCode().then((v) => `ok ${v.gitVersion}`),
      new Promise<string>((resolve) => setTimeout(() => resolve(`no answer within ${ANSWER_MS / 1000} s`), ANSWER_MS).unref()),
    ]);
    expect(answer, `the current context of ${source}`).toMatch(/^ok /);
    kc = config;
    api = new ClusterApi(config);
  }, ANSWER_MS + 5_000);

  it('creates its namespace with the privileged Pod Security level (NET_ADMIN, hostPath, sysctl)', async () => {
    const core = cluster().kc.makeApiClient(CoreV1Api);
    await core.createNamespace({
      body: { metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'privileged', 'app.kubernetes.io/managed-by': 'ctun' } } },
    });
    const ns = await core.readNamespace({ name: namespace });
    expect(ns.status?.phase).toBe('Active');
    expect(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
  });

  it('integrated: applies, waits, discovers node address and NodePort', async () => {
    const d = await deploy({ mode: 'integrated', params: { licenseServer: LICENSE }, namespace, api: cluster().api, logger: createMemoryLogger(), timeoutMs: 300_000 });
    expect(d.nodePort).toBeGreaterThanOrEqual(30000);
    expect(clientCommand(d)).toMatch(/^ctun client \S+ --port \d+$/);
    // What the strings say, checked on the cluster: the server pod is Ready, and the NodePort is the Service's.
    const pod = await cluster().kc.makeApiClient(CoreV1Api).readNamespacedPod({ name: d.serverPod, namespace });
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const service = await cluster().kc.makeApiClient(CoreV1Api).readNamespacedService({ name: 'ctun-service', namespace });
    expect(service.spec?.ports?.map((p) => p.nodePort)).toContain(d.nodePort);
  }, 330_000);

  it('separated: applies, waits for the simulators and the server, discovers the target pod IP', async () => {
    await deleteDeployment(cluster().api, namespace, createMemoryLogger());
    const d = await deploy({ mode: 'separate', params: { licenseServer: LICENSE, replicas: 2 }, namespace, api: cluster().api, logger: createMemoryLogger(), timeoutMs: 300_000 });
    expect(d.target?.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const target = await cluster().kc.makeApiClient(CoreV1Api).readNamespacedPod({ name: d.target!.name, namespace });
    expect(target.status?.podIP).toBe(d.target!.ip);
    const sims = await cluster().kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: 'veos', namespace });
    expect(sims.status?.readyReplicas).toBe(2);
    expect(clientCommand(d)).toMatch(/^ctun client \S+ --port \d+ --dest \S+$/);
  }, 330_000);
});
