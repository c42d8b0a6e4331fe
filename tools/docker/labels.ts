import { metadata } from '../common/index.js';

/**
 * Every Docker resource and image ctun makes carries these labels, so status and
 * cleanup find them by label, never by name patterns.
 */
export const LABEL_MANAGED = 'io.ctun.managed';
export const LABEL_KIND = 'io.ctun.kind';
export const LABEL_VERSION = 'io.ctun.version';
export const LABEL_PLAN = 'io.ctun.plan';

/** What a resource is: `image/local-server`, `image/base`, `container/veos`, ... */
export type ResourceKind = string;

/** The labels for one resource: managed, kind, version, plus `extra`. */
export function ctunLabels(kind: ResourceKind, extra: Record<string, string> = {}): Record<string, string> {
  return {
    [LABEL_MANAGED]: 'true',
    [LABEL_KIND]: kind,
    [LABEL_VERSION]: metadata.ctunVersion,
    ...extra,
  };
}

/** A label filter for the Docker API (`{label: ["k=v", ...]}`). */
export function labelFilter(labels: Record<string, string>): { label: string[] } {
  return { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
}
