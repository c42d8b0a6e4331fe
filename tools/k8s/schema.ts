import * as clientModels from '@kubernetes/client-node/dist/gen/models/all.js';
import { CtunError } from '../common/index.js';
import type { K8sObject } from './render.js';
// The generated validators of kubernetes-models, one per top-level kind we may render
// or a user may pass; static imports so the bundles carry them (no node_modules at run time).
import { validate as validateConfigMap } from 'kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap';
import { validate as validateDaemonSet } from 'kubernetes-models/_schemas/IoK8sApiAppsV1DaemonSet';
import { validate as validateDeployment } from 'kubernetes-models/_schemas/IoK8sApiAppsV1Deployment';
import { validate as validateJob } from 'kubernetes-models/_schemas/IoK8sApiBatchV1Job';
import { validate as validateNamespace } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Namespace';
import { validate as validateNetworkPolicy } from 'kubernetes-models/_schemas/IoK8sApiNetworkingV1NetworkPolicy';
import { validate as validatePod } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Pod';
import { validate as validatePodDisruptionBudget } from 'kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget';
import { validate as validateSecret } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Secret';
import { validate as validateService } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Service';
import { validate as validateServiceAccount } from 'kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount';
import { validate as validateStatefulSet } from 'kubernetes-models/_schemas/IoK8sApiAppsV1StatefulSet';

/**
 * Validation of manifests against the Kubernetes API, offline and from an install
 * (everything it reads is bundled into ctun-run).
 *
 * Two well-kept packages generated from the API's OpenAPI document do the work:
 * - `kubernetes-models`: a compiled JSON-Schema validator per definition: types,
 *   required fields, enum values (a Service `type`, an `imagePullPolicy`), formats.
 * - `@kubernetes/client-node` (the official client, ctun's own for `k8s apply`): its
 *   API model lists every field of every definition; a field it does not list is
 *   reported as unknown, as `kubectl apply` (strict field validation) does. The
 *   OpenAPI document allows unknown fields, so the validators above do not.
 * A field newer than the client's API release is then refused: the release named in
 * SCHEMA_VERSIONS is the one the manifests are proven valid for.
 */

/** The Kubernetes minor release validated against (the API model of @kubernetes/client-node 1.4). */
export const SCHEMA_VERSIONS = ['1.34'] as const;
export type SchemaVersion = (typeof SCHEMA_VERSIONS)[number];

/** The packages the checks come from, for messages. */
const SOURCE = 'kubernetes-models and @kubernetes/client-node (versions: package.json)';

/** One release's validation: the definitions known, and a check of any object. */
export interface KubernetesSchema {
  version: SchemaVersion;
  /** The packages the schema was read from. */
  source: string;
  /** Top-level definitions that can be validated, e.g. `io.k8s.api.apps.v1.Deployment`. */
  definitions: Set<string>;
  validate(object: unknown): SchemaIssue[];
}

export interface SchemaIssue {
  /** JSON pointer into the object, e.g. `/spec/template/spec/containers/0`. */
  path: string;
  message: string;
}

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}
type Validator = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

const VALIDATORS: Record<string, Validator> = {
  'io.k8s.api.apps.v1.DaemonSet': validateDaemonSet,
  'io.k8s.api.apps.v1.Deployment': validateDeployment,
  'io.k8s.api.apps.v1.StatefulSet': validateStatefulSet,
  'io.k8s.api.batch.v1.Job': validateJob,
  'io.k8s.api.core.v1.ConfigMap': validateConfigMap,
  'io.k8s.api.core.v1.Namespace': validateNamespace,
  'io.k8s.api.core.v1.Pod': validatePod,
  'io.k8s.api.core.v1.Secret': validateSecret,
  'io.k8s.api.core.v1.Service': validateService,
  'io.k8s.api.core.v1.ServiceAccount': validateServiceAccount,
  'io.k8s.api.networking.v1.NetworkPolicy': validateNetworkPolicy,
  'io.k8s.api.policy.v1.PodDisruptionBudget': validatePodDisruptionBudget,
};

/** `io.k8s.api.apps.v1.Deployment` for `apps/v1` and `Deployment`; core is `v1`. */
export function definitionName(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
  const g = group === '' ? 'core' : group!.split('.')[0]!;
  return `io.k8s.api.${g}.${version}.${kind}`;
}

/** The client's model name of a top-level kind: `V1Deployment` for apps/v1 Deployment. */
function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop()!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

interface AttributeType {
  baseName: string;
  type: string;
}
type ModelClass = { getAttributeTypeMap(): AttributeType[] };
const models = clientModels as unknown as Record<string, ModelClass | undefined>;

/** Fields of `value` that the API model of `type` does not have, with their paths. */
function unknownFields(value: unknown, type: string, path: string, out: SchemaIssue[]): void {
  if (value === null || typeof value !== 'object') return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1]!, `${path}/${i}`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${path}/${k}`, out);
    return;
  }
  const model = models[type];
  // A primitive, IntOrString, or a free-form object: no field list to hold it to.
  if (typeof model?.getAttributeTypeMap !== 'function' || Array.isArray(value)) return;
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = fields.get(k);
    if (t === undefined) out.push({ path: path || '/', message: `unknown field "${k}"` });
    else unknownFields(v, t, `${path}/${k}`, out);
  }
}

function formatIssue(e: AjvError): SchemaIssue {
  const path = e.instancePath || '/';
  switch (e.keyword) {
    case 'required':
      return { path, message: `missing required field "${String(e.params.missingProperty)}"` };
    case 'enum':
      return { path, message: `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'type':
      return { path, message: `must be ${String(e.params.type)}` };
    default:
      return { path, message: e.message ?? e.keyword };
  }
}

const schema: KubernetesSchema = {
  version: SCHEMA_VERSIONS[0],
  source: SOURCE,
  definitions: new Set(Object.keys(VALIDATORS)),
  validate(object) {
    const o = object as Partial<K8sObject> | null;
    if (typeof o !== 'object' || o === null || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
      return [{ path: '/', message: 'not a Kubernetes object (apiVersion and kind are required)' }];
    }
    const validator = VALIDATORS[definitionName(o.apiVersion, o.kind)];
    const model = modelName(o.apiVersion, o.kind);
    if (!validator || typeof models[model]?.getAttributeTypeMap !== 'function') {
      return [{ path: '/', message: `no schema for ${o.apiVersion} ${o.kind} in Kubernetes ${SCHEMA_VERSIONS[0]}` }];
    }
    const issues: SchemaIssue[] = [];
    // The OpenAPI document marks no top-level field required; an object without a name cannot be applied.
    if (!o.metadata) issues.push({ path: '/', message: 'missing required field "metadata"' });
    if (!validator(o)) issues.push(...(validator.errors ?? []).map(formatIssue));
    unknownFields(o, model, '', issues);
    return issues;
  },
};

/** The schema of a release (only SCHEMA_VERSIONS exist). */
export function loadSchema(version: SchemaVersion = SCHEMA_VERSIONS[0]): KubernetesSchema {
  if (version !== schema.version) {
    throw new CtunError('K8S_SCHEMA', `no Kubernetes ${String(version)} schema (this ctun validates against ${SCHEMA_VERSIONS.join(', ')})`, {
      hint: `drop the version, or use ${SCHEMA_VERSIONS[0]}`,
    });
  }
  return schema;
}

/** Validates objects against one release; throws a CtunError listing every issue. */
export function assertValid(objects: K8sObject[], version: SchemaVersion = SCHEMA_VERSIONS[0], what = 'manifest'): void {
  const s = loadSchema(version);
  const lines: string[] = [];
  for (const o of objects) {
    for (const issue of s.validate(o)) lines.push(`${o.kind}/${o.metadata?.name ?? '?'} ${issue.path}: ${issue.message}`);
  }
  if (lines.length > 0) {
    throw new CtunError('K8S_INVALID', `${what} is not valid for Kubernetes ${version}: ${lines.join('; ')}`, {
      hint: `schema from ${s.source}`,
    });
  }
}
