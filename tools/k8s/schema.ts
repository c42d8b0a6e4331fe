import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { CtunError } from '../common/index.js';
import type { K8sObject } from './render.js';

/**
 * Validation of manifests against the Kubernetes API schema of a given minor release,
 * offline.
 *
 * The schemas come from the npm packages `cdk8s-plus-29` ... `cdk8s-plus-32`, one per
 * Kubernetes minor release, maintained by the cdk8s project and generated from that
 * release's OpenAPI document. Each ships its type model as a jsii assembly (`.jsii`):
 * every API definition (`io.k8s.api.core.v1.PodSpec`, ...) with its properties, their
 * types, whether they are required, and, in a `@schema` tag, the exact JSON field name.
 * This module turns that model into JSON Schema (strict: unknown fields are errors, as
 * `kubectl apply` reports them) and checks objects with ajv.
 *
 * What the model does not carry: enum values (e.g. a Service `type`), formats and
 * numeric ranges. Those the apiserver checks; our tests assert the ones we rely on.
 */

/** Minor releases with a schema package installed (dev dependencies). */
export const SCHEMA_VERSIONS = ['1.29', '1.30', '1.31', '1.32'] as const;
export type SchemaVersion = (typeof SCHEMA_VERSIONS)[number];

interface JsiiTypeRef {
  primitive?: 'string' | 'number' | 'boolean' | 'any' | 'date' | 'json';
  fqn?: string;
  collection?: { kind: 'array' | 'map'; elementtype: JsiiTypeRef };
  union?: { types: JsiiTypeRef[] };
}
interface JsiiProperty {
  name: string;
  optional?: boolean;
  type: JsiiTypeRef;
  docs?: { custom?: { schema?: string } };
}
interface JsiiType {
  kind: 'interface' | 'class' | 'enum';
  fqn: string;
  name: string;
  datatype?: boolean;
  properties?: JsiiProperty[];
  docs?: { custom?: { schema?: string } };
}
interface JsiiAssembly {
  name: string;
  types: Record<string, JsiiType>;
}

type JsonSchema = Record<string, unknown>;

/** One minor release's schema: definitions by API name, and a validator per top-level kind. */
export interface KubernetesSchema {
  version: SchemaVersion;
  /** The npm package and version the schema was read from. */
  source: string;
  /** Names of the API definitions known, e.g. `io.k8s.api.core.v1.PodSpec`. */
  definitions: Set<string>;
  validate(object: unknown): SchemaIssue[];
}

export interface SchemaIssue {
  /** JSON pointer into the object, e.g. `/spec/template/spec/containers/0`. */
  path: string;
  message: string;
}

function projectRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function packageDir(version: SchemaVersion, root: string): string {
  return join(root, 'node_modules', `cdk8s-plus-${version.split('.')[1]}`);
}

/** `io.k8s.api.apps.v1.Deployment` for `apps/v1` and `Deployment`; core is `v1`. */
export function definitionName(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
  const g = group === '' ? 'core' : group!.split('.')[0]!;
  return `io.k8s.api.${g}.${version}.${kind}`;
}

function defRef(fqn: string): string {
  return `#/definitions/${fqn.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

function typeSchema(t: JsiiTypeRef, asm: JsiiAssembly): JsonSchema {
  if (t.primitive) {
    switch (t.primitive) {
      case 'string':
      case 'date':
        return { type: 'string' };
      case 'number':
        return { type: 'number' };
      case 'boolean':
        return { type: 'boolean' };
      default:
        return {};
    }
  }
  if (t.collection) {
    const items = typeSchema(t.collection.elementtype, asm);
    return t.collection.kind === 'array' ? { type: 'array', items } : { type: 'object', additionalProperties: items };
  }
  if (t.union) return { anyOf: t.union.types.map((u) => typeSchema(u, asm)) };
  if (t.fqn) {
    const target = asm.types[t.fqn];
    if (!target) return {};
    // Quantity ("256Mi", 2) and IntOrString (8080, "http") are classes in the model.
    if (target.kind === 'class') return { type: ['string', 'number'] };
    if (target.kind === 'enum') return { type: 'string' };
    return { $ref: defRef(t.fqn) };
  }
  return {};
}

function structSchema(t: JsiiType, asm: JsiiAssembly): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const p of t.properties ?? []) {
    const json = p.docs?.custom?.schema?.split('#')[1] ?? p.name;
    properties[json] = typeSchema(p.type, asm);
    if (!p.optional) required.push(json);
  }
  return { type: 'object', properties, required, additionalProperties: false };
}

function formatIssue(e: ErrorObject): SchemaIssue {
  const path = e.instancePath || '/';
  if (e.keyword === 'additionalProperties') {
    return { path, message: `unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"` };
  }
  if (e.keyword === 'required') return { path, message: `missing required field "${(e.params as { missingProperty: string }).missingProperty}"` };
  return { path, message: e.message ?? e.keyword };
}

const cache = new Map<string, KubernetesSchema>();

/** Loads one minor release's schema from its package (cached). */
export function loadSchema(version: SchemaVersion, options: { root?: string } = {}): KubernetesSchema {
  const root = options.root ?? projectRoot();
  const key = `${root}:${version}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const dir = packageDir(version, root);
  const file = join(dir, '.jsii');
  if (!existsSync(file)) {
    throw new CtunError('K8S_SCHEMA', `no Kubernetes ${version} schema: ${file} is missing`, {
      hint: `the schemas come from the dev dependency cdk8s-plus-${version.split('.')[1]}; run npm install in the checkout`,
    });
  }
  const asm = JSON.parse(readFileSync(file, 'utf8')) as JsiiAssembly;
  const pkgVersion = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const prefix = `${asm.name}.k8s.`;
  const definitions: Record<string, JsonSchema> = {};
  const names = new Set<string>();
  const byName = new Map<string, JsiiType>();
  for (const t of Object.values(asm.types)) {
    if (!t.fqn.startsWith(prefix) || t.kind !== 'interface' || !t.datatype) continue;
    definitions[defRef(t.fqn).slice('#/definitions/'.length)] = structSchema(t, asm);
    const name = t.docs?.custom?.schema;
    if (name) {
      names.add(name);
      // Top-level kinds are the Kube<Kind>Props structs (metadata and spec).
      if (t.name.startsWith('Kube') && t.name.endsWith('Props')) byName.set(name, t);
    }
  }
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addSchema({ $id: 'k8s', definitions });
  const validators = new Map<string, ValidateFunction>();
  const validatorFor = (apiVersion: string, kind: string): ValidateFunction | undefined => {
    const name = definitionName(apiVersion, kind);
    const cached = validators.get(name);
    if (cached) return cached;
    const top = byName.get(name);
    if (!top) return undefined;
    const body = structSchema(top, asm) as { properties: Record<string, unknown>; required: string[] };
    const schema = {
      type: 'object',
      properties: { apiVersion: { const: apiVersion }, kind: { const: kind }, ...rewriteRefs(body.properties) },
      required: ['apiVersion', 'kind', 'metadata', ...body.required],
      additionalProperties: false,
    };
    const v = ajv.compile(schema);
    validators.set(name, v);
    return v;
  };
  const schema: KubernetesSchema = {
    version,
    source: `cdk8s-plus-${version.split('.')[1]}@${pkgVersion}`,
    definitions: names,
    validate(object) {
      const o = object as Partial<K8sObject> | null;
      if (typeof o !== 'object' || o === null || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
        return [{ path: '/', message: 'not a Kubernetes object (apiVersion and kind are required)' }];
      }
      const v = validatorFor(o.apiVersion, o.kind);
      if (!v) return [{ path: '/', message: `no schema for ${o.apiVersion} ${o.kind} in Kubernetes ${version}` }];
      if (v(o)) return [];
      return (v.errors ?? []).map(formatIssue);
    },
  };
  cache.set(key, schema);
  return schema;
}

/** Refs inside the top-level schema point into the shared `k8s` schema. */
function rewriteRefs(value: unknown): any {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = k === '$ref' && typeof v === 'string' ? `k8s${v}` : rewriteRefs(v);
    return out;
  }
  return value;
}

/** Validates objects against one release; throws a CtunError listing every issue. */
export function assertValid(objects: K8sObject[], version: SchemaVersion, what = 'manifest'): void {
  const schema = loadSchema(version);
  const lines: string[] = [];
  for (const o of objects) {
    for (const issue of schema.validate(o)) lines.push(`${o.kind}/${o.metadata?.name ?? '?'} ${issue.path}: ${issue.message}`);
  }
  if (lines.length > 0) {
    throw new CtunError('K8S_INVALID', `${what} is not valid for Kubernetes ${version}: ${lines.join('; ')}`, {
      hint: `schema from ${schema.source}`,
    });
  }
}
