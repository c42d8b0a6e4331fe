import type { K8sObject } from './render.js';

/**
 * The little of the Kubernetes API that ctun uses, shaped as the API's JSON (the
 * fields read are the API's own names), so recorded responses drive the same code as
 * a cluster does. The real implementation is in cluster.ts (@kubernetes/client-node);
 * the twin in recorded.ts replays JSON fixtures.
 */
export interface KubeApi {
  /** Server-side apply (field manager `ctun`, conflicts forced). */
  apply(object: K8sObject, namespace: string): Promise<void>;
  readService(namespace: string, name: string): Promise<ServiceLike>;
  listPods(namespace: string, labelSelector: string): Promise<PodLike[]>;
  listNodes(): Promise<NodeLike[]>;
  /** Deletes the Deployments, Services and NetworkPolicies matching the selector; returns `Kind/name` of each. */
  deleteMatching(namespace: string, labelSelector: string): Promise<string[]>;
  /** Host name or address of the API server (minikube's node address is the same). */
  serverHost(): string;
}

export interface ServiceLike {
  metadata?: { name?: string };
  spec?: { type?: string; ports?: Array<{ name?: string; protocol?: string; port?: number; nodePort?: number }> };
}

export interface NodeLike {
  metadata?: { name?: string };
  status?: { addresses?: Array<{ type?: string; address?: string }> };
}

export interface ContainerStateLike {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: unknown };
  terminated?: { exitCode?: number; reason?: string; message?: string; signal?: number };
}

export interface ContainerStatusLike {
  name?: string;
  ready?: boolean;
  restartCount?: number;
  state?: ContainerStateLike;
  lastState?: ContainerStateLike;
}

export interface PodLike {
  metadata?: { name?: string; deletionTimestamp?: unknown };
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    podIP?: string;
    /** A dual-stack pod's IPs, the primary (`podIP`) first. */
    podIPs?: Array<{ ip?: string }>;
    conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }>;
    containerStatuses?: ContainerStatusLike[];
    initContainerStatuses?: ContainerStatusLike[];
  };
}

/** Time, injectable so waits are tested without waiting. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};
