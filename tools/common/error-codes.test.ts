/**
 * One home per error code: the union in error-codes.ts, every code in it raised
 * somewhere in tools/, and every one documented in the README's error-code table —
 * no code missing there, no row for a code that no longer exists.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printError } from '../cli/common.js';
import { CtunError, ERROR_CODES, ExitCode } from './index.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** The rows of README.md's "### Error codes" table: code → exit column. */
function readmeCodes(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n### Error codes\n');
  expect(start, 'README.md has a "### Error codes" section').toBeGreaterThan(0);
  const section = readme.slice(start + 1).split(/\n#{2,3} /)[0]!;
  const rows = new Map<string, string>();
  for (const m of section.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]+) \|[^|]+\|[^|]+\|$/gm)) rows.set(m[1]!, m[2]!.trim());
  return rows;
}

/** Every non-test TypeScript source under tools/, but the list itself. */
function sources(dir = join(ROOT, 'tools')): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...sources(path));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && e.name !== 'error-codes.ts') out.push(readFileSync(path, 'utf8'));
  }
  return out;
}

describe('error codes', () => {
  it('are unique', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
  });

  it('each has a row in the README table, and each row names a code of the union', () => {
    const rows = readmeCodes();
    expect([...ERROR_CODES].filter((c) => !rows.has(c)), 'codes without a README row').toEqual([]);
    expect([...rows.keys()].filter((c) => !(ERROR_CODES as readonly string[]).includes(c)), 'README rows for codes that do not exist').toEqual([]);
  });

  it('each README row gives exit codes ctun has', () => {
    const known = new Set<number>(Object.values(ExitCode));
    for (const [code, exit] of readmeCodes()) {
      const numbers = [...exit.matchAll(/\d+/g)].map((m) => Number(m[0]));
      expect(numbers.length, `${code}: exit column "${exit}"`).toBeGreaterThan(0);
      for (const n of numbers) expect(known.has(n), `${code}: exit ${n}`).toBe(true);
    }
  });

  it('each is raised somewhere in tools/ (none kept after its last use)', () => {
    const text = sources().join('\n');
    expect(ERROR_CODES.filter((c) => !text.includes(`'${c}'`))).toEqual([]);
  });

  it('--verbose prints the code a user looks up in the table', () => {
    let out = '';
    const e = new CtunError('TAP_MISSING', 'TAP device nope0 does not exist on this host', { hint: 'make it', exitCode: ExitCode.Device });
    expect(printError('ctun', e, true, (s) => (out += s))).toBe(6);
    expect(out).toBe('ctun: error: TAP device nope0 does not exist on this host\nctun: hint: make it\nctun: code: TAP_MISSING (exit 6)\n');
    out = '';
    printError('ctun', e, false, (s) => (out += s));
    expect(out).not.toContain('code:');
  });
});
