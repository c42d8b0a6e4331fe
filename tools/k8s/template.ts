import { Document, isMap, isPair, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { CtunError } from '../common/index.js';

/**
 * Manifest templates are YAML, so they stay readable and keep their comments. A string
 * scalar that is exactly `{{path}}` becomes the value at that path with its type (a
 * number, a list, a map); `{{...path}}` as a list item splices a list in; a value of
 * `undefined` removes the map entry or list item; `{{path}}` inside a longer string is
 * interpolated. A placeholder without a value, or a value no placeholder uses, is an
 * error, so a template and its renderer cannot drift apart silently.
 */
export type TemplateValues = Record<string, unknown>;

const WHOLE = /^\{\{(\.\.\.)?([A-Za-z][A-Za-z0-9_.]*)\}\}$/;
const INNER = /\{\{([A-Za-z][A-Za-z0-9_.]*)\}\}/g;

interface Lookup {
  get(path: string): unknown;
  used: Set<string>;
}

function lookup(values: TemplateValues, name: string): Lookup {
  const used = new Set<string>();
  return {
    used,
    get(path) {
      const parts = path.split('.');
      let cur: unknown = values;
      for (let i = 0; i < parts.length; i++) {
        const key = parts[i]!;
        if (cur instanceof ValueGroup) cur = cur.values;
        if (typeof cur !== 'object' || cur === null || !(key in cur)) {
          throw new CtunError('TEMPLATE', `${name}: no value for {{${path}}}`);
        }
        cur = (cur as Record<string, unknown>)[key];
        used.add(parts.slice(0, i + 1).join('.'));
      }
      if (cur instanceof ValueGroup) throw new CtunError('TEMPLATE', `${name}: {{${path}}} is a group; use one of its keys`);
      return cur;
    },
  };
}

function keepComments(from: Node, to: Node): Node {
  if (from.commentBefore) to.commentBefore = from.commentBefore;
  if (from.comment) to.comment = from.comment;
  return to;
}

type Filled = { kind: 'node'; node: Node } | { kind: 'remove' } | { kind: 'splice'; nodes: Node[] };

function fill(doc: Document, node: Node, l: Lookup, name: string): Filled {
  if (isScalar(node)) {
    if (typeof node.value !== 'string') return { kind: 'node', node };
    const whole = WHOLE.exec(node.value);
    if (whole) {
      const value = l.get(whole[2]!);
      if (value === undefined) return { kind: 'remove' };
      if (whole[1]) {
        if (!Array.isArray(value)) throw new CtunError('TEMPLATE', `${name}: {{...${whole[2]}}} needs a list, got ${typeof value}`);
        return { kind: 'splice', nodes: value.map((v) => doc.createNode(v) as Node) };
      }
      return { kind: 'node', node: keepComments(node, doc.createNode(value) as Node) };
    }
    if (INNER.test(node.value)) {
      INNER.lastIndex = 0;
      node.value = node.value.replace(INNER, (_m, path: string) => {
        const v = l.get(path);
        if (v === undefined || (typeof v === 'object' && v !== null)) {
          throw new CtunError('TEMPLATE', `${name}: {{${path}}} inside a string needs a scalar value`);
        }
        return String(v);
      });
    }
    return { kind: 'node', node };
  }
  if (isMap(node)) {
    node.items = node.items.filter((pair) => {
      if (!isPair(pair) || pair.value === null) return true;
      const r = fill(doc, pair.value as Node, l, name);
      if (r.kind === 'remove') return false;
      if (r.kind === 'splice') throw new CtunError('TEMPLATE', `${name}: {{...}} is only allowed as a list item`);
      pair.value = r.node;
      return true;
    });
    return { kind: 'node', node };
  }
  if (isSeq(node)) {
    const items: unknown[] = [];
    for (const item of node.items) {
      const r = fill(doc, item as Node, l, name);
      if (r.kind === 'node') items.push(r.node);
      else if (r.kind === 'splice') items.push(...r.nodes);
    }
    node.items = items;
    return { kind: 'node', node };
  }
  return { kind: 'node', node };
}

/** Fills one template; returns the YAML document (comments kept). */
export function fillTemplate(text: string, values: TemplateValues, name = 'template'): Document {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) throw new CtunError('TEMPLATE', `${name}: not valid YAML: ${doc.errors[0]!.message}`);
  const l = lookup(values, name);
  if (doc.contents) {
    const r = fill(doc, doc.contents as Node, l, name);
    if (r.kind !== 'node') throw new CtunError('TEMPLATE', `${name}: the document itself cannot be a placeholder`);
    doc.contents = r.node as typeof doc.contents;
  }
  const unused = leafPaths(values).filter((p) => !l.used.has(p));
  if (unused.length > 0) throw new CtunError('TEMPLATE', `${name}: values not used by the template: ${unused.join(', ')}`);
  return doc;
}

/** Paths a template must use: top-level keys, and the keys of nested plain groups (not lists or manifest fragments). */
export function leafPaths(values: TemplateValues, prefix = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(values)) {
    const path = prefix + k;
    if (v instanceof ValueGroup) out.push(...leafPaths(v.values, path + '.'));
    else out.push(path);
  }
  return out;
}

/**
 * A group of template values addressed as `{{group.key}}`, each of which the template
 * must use (a plain object value, by contrast, is a manifest fragment used as a whole).
 */
export class ValueGroup {
  constructor(readonly values: TemplateValues) {}
}

/** Values for {@link fillTemplate}: groups become lookups by path. */
export function group(values: TemplateValues): ValueGroup {
  return new ValueGroup(values);
}

/** The placeholder paths a template text refers to. */
export function templateRefs(text: string): Set<string> {
  const refs = new Set<string>();
  for (const m of text.matchAll(/\{\{(?:\.\.\.)?([A-Za-z][A-Za-z0-9_.]*)\}\}/g)) refs.add(m[1]!);
  return refs;
}

/** The part of `values` that `refs` names (groups keep only the named keys). */
export function pickValues(values: TemplateValues, refs: Set<string>): TemplateValues {
  const out: TemplateValues = {};
  for (const [k, v] of Object.entries(values)) {
    if (v instanceof ValueGroup) {
      const sub: TemplateValues = {};
      for (const [sk, sv] of Object.entries(v.values)) if (refs.has(`${k}.${sk}`)) sub[sk] = sv;
      if (Object.keys(sub).length > 0) out[k] = new ValueGroup(sub);
    } else if (refs.has(k)) out[k] = v;
  }
  return out;
}
