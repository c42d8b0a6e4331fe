import { readFileSync } from 'node:fs';
import { CtunError } from '../common/index.js';
import type { KubeApi, NodeLike, PodLike, ServiceLike } from './api.js';
import type { K8sObject } from './render.js';

/**
 * The in-memory twin of {@link KubeApi}: answers from recorded API responses (JSON as
 * the API server sends it) and records what was applied and deleted. Pod lists are
 * sequences per selector: each call returns the next list, then the last one again,
 * which is how a test plays "Pending, then Running, then Ready".
 */
export interface Recording {
  services?: Record<string, ServiceLike>;
  nodes?: { items: NodeLike[] } | undefined;
  /** Selector → successive PodList responses. */
  pods?: Record<string, Array<{ items: PodLike[] }>>;
  serverHost?: string;
  /** Make listNodes fail like a 403 (no ClusterRole to list nodes). */
  forbidNodes?: boolean;
}

export class RecordedKubeApi implements KubeApi {
  readonly applied: Array<{ namespace: string; object: K8sObject }> = [];
  readonly deleted: Array<{ namespace: string; selector: string }> = [];
  readonly calls: string[] = [];
  private readonly cursor = new Map<string, number>();

  constructor(private readonly rec: Recording) {}

  /** Merges fixture files (each a partial {@link Recording}). */
  static fromFiles(...paths: string[]): RecordedKubeApi {
    const rec: Recording = {};
    for (const p of paths) {
      const part = JSON.parse(readFileSync(p, 'utf8')) as Recording;
      rec.services = { ...rec.services, ...part.services };
      rec.pods = { ...rec.pods, ...part.pods };
      if (part.nodes) rec.nodes = part.nodes;
      if (part.serverHost) rec.serverHost = part.serverHost;
      if (part.forbidNodes) rec.forbidNodes = true;
    }
    return new RecordedKubeApi(rec);
  }

  async apply(object: K8sObject, namespace: string): Promise<void> {
    this.calls.push(`apply ${object.kind}/${object.metadata.name}`);
    this.applied.push({ namespace, object: structuredClone(object) });
  }

  async readService(namespace: string, name: string): Promise<ServiceLike> {
    this.calls.push(`readService ${name}`);
    const s = this.rec.services?.[name];
    if (!s) throw new CtunError('K8S_API', `read service ${name} in ${namespace}: HTTP 404: services "${name}" not found`);
    return structuredClone(s);
  }

  async listPods(_namespace: string, labelSelector: string): Promise<PodLike[]> {
    this.calls.push(`listPods ${labelSelector}`);
    const seq = this.rec.pods?.[labelSelector] ?? [];
    const i = this.cursor.get(labelSelector) ?? 0;
    this.cursor.set(labelSelector, Math.min(i + 1, Math.max(seq.length - 1, 0)));
    return structuredClone(seq[i]?.items ?? []);
  }

  async listNodes(): Promise<NodeLike[]> {
    this.calls.push('listNodes');
    if (this.rec.forbidNodes) throw new CtunError('K8S_API', 'list nodes: HTTP 403: nodes is forbidden');
    return structuredClone(this.rec.nodes?.items ?? []);
  }

  async deleteMatching(namespace: string, labelSelector: string): Promise<string[]> {
    this.calls.push(`deleteMatching ${labelSelector}`);
    this.deleted.push({ namespace, selector: labelSelector });
    const wanted = labelSelector.split(',').map((kv) => kv.split('=') as [string, string]);
    const matching = this.applied.filter((a) => a.namespace === namespace && wanted.every(([k, v]) => a.object.metadata.labels?.[k] === v));
    return [...new Set(matching.map((a) => `${a.object.kind}/${a.object.metadata.name}`))];
  }

  serverHost(): string {
    return this.rec.serverHost ?? '127.0.0.1';
  }
}
