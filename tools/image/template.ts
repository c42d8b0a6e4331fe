import { CtunError } from '../common/index.js';

/**
 * Fills `{{name}}` placeholders. A placeholder without a value, or a value no
 * placeholder uses, is an error: a template and its plan cannot drift apart silently.
 */
export function renderTemplate(text: string, values: Record<string, string>, name = 'template'): string {
  const used = new Set<string>();
  const out = text.replace(/\{\{([A-Za-z][A-Za-z0-9]*)\}\}/g, (_m, key: string) => {
    const v = values[key];
    if (v === undefined) throw new CtunError('TEMPLATE', `${name}: no value for {{${key}}}`);
    used.add(key);
    return v;
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length) throw new CtunError('TEMPLATE', `${name}: values not used by the template: ${unused.join(', ')}`);
  // Empty sections leave blank lines; keep the output tidy.
  return out.replace(/\n{3,}/g, '\n\n');
}
