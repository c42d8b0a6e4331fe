/**
 * The integrated and separated flows on a real cluster: runs when a kubeconfig is
 * configured (KUBECONFIG or ~/.kube/config) and its current context answers; skips
 * with one line saying why otherwise. The images must be in the cluster
 * (`minikube image load ...`), and the separated flow needs a kubelet that allows
 * net.ipv4.ip_forward. Uses its own namespace and deletes it afterwards.
 */
import { CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryLogger } from '../../tools/common/index.js';
import { clientCommand, ClusterApi, deleteDeployment, deploy, kubeconfigSource, loadKubeConfig } from '../../tools/k8s/index.js';

async function clusterReason(): Promise<string | undefined> {
  const source = kubeconfigSource();
  if (!source) return 'no kubeconfig (KUBECONFIG unset or missing, no ~/.kube/config)';
  try {
    const kc = loadKubeConfig();
    const answer = await Promise.race([
      kc.makeApiClient(VersionApi).getCode().then(() => 'ok'),
      new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 5_000).unref()),
    ]);
    if (answer !== 'ok') return `the current context of ${source} did not answer within 5 s`;
  } catch (e) {
    return `the current context of ${source} is not reachable: ${(e as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

const reason = await clusterReason();
if (reason) console.log(`k8s-cluster: skipped: ${reason}`);
const suite = reason ? describe.skip : describe;
const LICENSE = process.env.CTUN_TEST_LICENSE_SERVER ?? '22350@license.invalid';

suite('k8s on a real cluster', () => {
  const namespace = `ctun-test-${process.pid}`;
  const kc = reason ? undefined : loadKubeConfig();
  const api = kc ? new ClusterApi(kc) : undefined;

  afterAll(async () => {
    if (!kc || !api) return;
    await deleteDeployment(api, namespace, createMemoryLogger()).catch(() => []);
    await kc.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('creates its namespace with the privileged Pod Security level (NET_ADMIN, hostPath, sysctl)', async () => {
    await kc!.makeApiClient(CoreV1Api).createNamespace({
      body: { metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'privileged', 'app.kubernetes.io/managed-by': 'ctun' } } },
    });
  });

  it('integrated: applies, waits, discovers node address and NodePort', async () => {
    const d = await deploy({ mode: 'integrated', params: { licenseServer: LICENSE }, namespace, api: api!, logger: createMemoryLogger(), timeoutMs: 300_000 });
    expect(d.nodePort).toBeGreaterThanOrEqual(30000);
    expect(clientCommand(d)).toMatch(/^ctun client \S+ --port \d+$/);
  }, 330_000);

  it('separated: applies, waits for the simulators and the server, discovers the target pod IP', async () => {
    await deleteDeployment(api!, namespace, createMemoryLogger());
    const d = await deploy({ mode: 'separate', params: { licenseServer: LICENSE, replicas: 2 }, namespace, api: api!, logger: createMemoryLogger(), timeoutMs: 300_000 });
    expect(d.target?.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(clientCommand(d)).toMatch(/^ctun client \S+ --port \d+ --dest \S+$/);
  }, 330_000);
});
