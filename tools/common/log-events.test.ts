/**
 * One convention for log event names: kebab-case keys (`client-resumed`,
 * `image-built`). They are what JSON log consumers filter on, so a sentence or a
 * stray capital is a broken filter. This reads every logger call in the source —
 * direct (`log.info(…)`) and through the server's helpers that take the level first
 * (`logLimited('warn', …)`, `logSecurity(level, …)`) — and names each event literal in
 * the event argument (a ternary of two names counts both) that breaks it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const KEBAB = /^[a-z0-9]+(-[a-z0-9]+)*$/;
/** Calls whose first argument is the event, and helpers whose second one is. */
const DIRECT = /(?<!console)\.(?:debug|info|warn|error)\(/g;
const LEVEL_FIRST = /\b(?:logLimited|logSecurity)\(/g;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'results' ? [] : files(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** The text of argument `n` (0-based) of the call whose `(` ends at `start`. */
function argument(text: string, start: number, n: number): string {
  let depth = 0;
  let quote: string | undefined;
  let index = 0;
  let from = start;
  for (let i = start; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if ((c === ')' || c === ']' || c === '}') && depth > 0) depth--;
    else if ((c === ',' || c === ')') && depth === 0) {
      if (index === n) return text.slice(from, i);
      if (c === ')') return '';
      index++;
      from = i + 1;
    }
  }
  return '';
}

/** Every literal event name in the source, with where it is. */
function events(): Array<{ where: string; event: string }> {
  const found: Array<{ where: string; event: string }> = [];
  for (const file of ['tools', 'bench', 'scripts', 'test'].flatMap((d) => files(join(ROOT, d)))) {
    const text = readFileSync(file, 'utf8');
    for (const [re, n] of [[DIRECT, 0], [LEVEL_FIRST, 1]] as const) {
      for (const m of text.matchAll(re)) {
        const arg = argument(text, m.index + m[0].length, n);
        const line = text.slice(0, m.index).split('\n').length;
        for (const lit of arg.matchAll(/(['"`])((?:(?!\1)[^\\]|\\.)*)\1/g)) found.push({ where: `${relative(ROOT, file)}:${line}`, event: lit[2]! });
      }
    }
  }
  return found;
}

describe('log event names', () => {
  it('are kebab-case keys everywhere', () => {
    const all = events();
    // The scan sees direct calls, both branches of a ternary, the level-first helpers and every folder.
    const names = new Set(all.map((e) => e.event));
    for (const known of ['client-connected', 'client-resumed', 'tls-handshake-failed', 'frame-dropped', 'image-built', 'k8s-wait', 'container-ready']) expect(names).toContain(known);
    expect(all.filter((e) => !KEBAB.test(e.event)).map((e) => `${e.where}: "${e.event}"`)).toEqual([]);
  });
});
