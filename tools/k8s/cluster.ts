import { existsSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, NetworkingV1Api, PatchStrategy, PortForward } from '@kubernetes/client-node';
import { CtunError, ExitCode } from '../common/index.js';
import type { KubeApi, NodeLike, PodLike, ServiceLike } from './api.js';
import type { PodStreamOpener } from './portforward.js';
import type { K8sObject } from './render.js';

/** The field manager of every server-side apply. */
export const FIELD_MANAGER = 'ctun';

export interface KubeConfigOptions {
  /** Context to use; default: the kubeconfig's current context. */
  context?: string;
}

/**
 * Where a kubeconfig would come from: the files of KUBECONFIG that exist, else
 * ~/.kube/config, else `in-cluster` inside a pod; undefined when there is none (the
 * client library would then silently try http://localhost:8080).
 */
export function kubeconfigSource(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const isFile = (p: string): boolean => existsSync(p) && statSync(p).isFile();
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(delimiter).filter((p) => p !== '' && isFile(p));
    return files.length > 0 ? files.join(delimiter) : undefined;
  }
  const home = env.HOME ?? homedir();
  const file = join(home, '.kube', 'config');
  if (isFile(file)) return file;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) return 'in-cluster';
  return undefined;
}

/** Loads KUBECONFIG or ~/.kube/config (or the in-cluster config), and selects the context. */
export function loadKubeConfig(o: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigSource() === undefined) {
    throw new CtunError('K8S_CONFIG', process.env.KUBECONFIG ? `no kubeconfig: none of KUBECONFIG=${process.env.KUBECONFIG} exists` : 'no kubeconfig: KUBECONFIG is not set and ~/.kube/config does not exist', {
      hint: 'start a cluster (minikube start) or point KUBECONFIG at its config',
    });
  }
  try {
    kc.loadFromDefault();
  } catch (e) {
    throw new CtunError('K8S_CONFIG', `cannot read the kubeconfig: ${(e as Error).message}`, { hint: 'set KUBECONFIG, or create ~/.kube/config (minikube start does)', cause: e });
  }
  if (o.context !== undefined) {
    if (!kc.getContexts().some((c) => c.name === o.context)) {
      throw new CtunError('K8S_CONFIG', `no context "${o.context}" in the kubeconfig`, {
        hint: `known contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'}`,
        exitCode: ExitCode.Usage,
      });
    }
    kc.setCurrentContext(o.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new CtunError('K8S_CONFIG', 'the kubeconfig has no current cluster', { hint: 'kubectl config use-context NAME, or give --context' });
  }
  return kc;
}

/** The namespace of the current context, else `default`. */
export function contextNamespace(kc: KubeConfig): string {
  return kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
}

/** Turns client errors into a CtunError that says what was asked and what the API said. */
function apiError(what: string, e: unknown): CtunError {
  const err = e as { code?: number | string; body?: unknown; message?: string };
  const http = typeof err.code === 'number' ? err.code : undefined;
  let detail = err.message ?? String(e);
  if (typeof err.body === 'string') {
    try {
      const status = JSON.parse(err.body) as { message?: string };
      if (status.message) detail = status.message;
    } catch {
      detail = err.body.slice(0, 300);
    }
  } else if (err.body && typeof err.body === 'object' && 'message' in err.body) {
    detail = String((err.body as { message: unknown }).message);
  }
  const hint =
    http === 401 || http === 403
      ? 'the kubeconfig user lacks the rights for this (RBAC); ask for them or use another --context'
      : http === undefined
        ? 'is the cluster running and the context right? kubectl cluster-info'
        : undefined;
  return new CtunError('K8S_API', `${what}: ${http ? `HTTP ${http}: ` : ''}${detail}`, { hint, cause: e });
}

/** {@link KubeApi} on a real cluster through @kubernetes/client-node. */
export class ClusterApi implements KubeApi {
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly networking: NetworkingV1Api;

  constructor(readonly kc: KubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.networking = kc.makeApiClient(NetworkingV1Api);
  }

  async apply(object: K8sObject, namespace: string): Promise<void> {
    const body = { ...object, metadata: { ...object.metadata, namespace } };
    try {
      await this.objects.patch(body, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (e) {
      throw apiError(`apply ${object.kind}/${object.metadata.name} in ${namespace}`, e);
    }
  }

  async readService(namespace: string, name: string): Promise<ServiceLike> {
    try {
      return await this.core.readNamespacedService({ name, namespace });
    } catch (e) {
      throw apiError(`read service ${name} in ${namespace}`, e);
    }
  }

  async listPods(namespace: string, labelSelector: string): Promise<PodLike[]> {
    try {
      return (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
    } catch (e) {
      throw apiError(`list pods ${labelSelector} in ${namespace}`, e);
    }
  }

  async listNodes(): Promise<NodeLike[]> {
    try {
      return (await this.core.listNode()).items;
    } catch (e) {
      throw apiError('list nodes', e);
    }
  }

  async deleteMatching(namespace: string, labelSelector: string): Promise<string[]> {
    const deleted: string[] = [];
    try {
      for (const d of (await this.apps.listNamespacedDeployment({ namespace, labelSelector })).items) {
        const name = d.metadata?.name;
        if (!name) continue;
        await this.apps.deleteNamespacedDeployment({ name, namespace, propagationPolicy: 'Foreground' });
        deleted.push(`Deployment/${name}`);
      }
      for (const s of (await this.core.listNamespacedService({ namespace, labelSelector })).items) {
        const name = s.metadata?.name;
        if (!name) continue;
        await this.core.deleteNamespacedService({ name, namespace });
        deleted.push(`Service/${name}`);
      }
      for (const p of (await this.networking.listNamespacedNetworkPolicy({ namespace, labelSelector })).items) {
        const name = p.metadata?.name;
        if (!name) continue;
        await this.networking.deleteNamespacedNetworkPolicy({ name, namespace });
        deleted.push(`NetworkPolicy/${name}`);
      }
    } catch (e) {
      throw apiError(`delete ${labelSelector} in ${namespace}`, e);
    }
    return deleted;
  }

  serverHost(): string {
    const server = this.kc.getCurrentCluster()?.server ?? '';
    try {
      return new URL(server).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return server;
    }
  }

  /** Opens port-forward streams to a pod through the API server (WebSocket). */
  portForwardOpener(): PodStreamOpener {
    const pf = new PortForward(this.kc);
    return async (namespace: string, pod: string, port: number, socket: Socket) => {
      const ws = await pf.portForward(namespace, pod, [port], socket, null, socket);
      const conn = typeof ws === 'function' ? ws() : ws;
      if (!conn) throw new CtunError('K8S_PORT_FORWARD', `port-forward to ${pod}:${port} did not open`);
      conn.on('close', () => socket.destroy());
      conn.on('error', () => socket.destroy());
      socket.on('close', () => conn.close());
    };
  }
}
