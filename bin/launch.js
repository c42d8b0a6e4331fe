// What the three bins share. First, a Node older than package.json `engines` gets one
// line instead of a syntax error deep in a bundle (so this file keeps to syntax old
// Node parses). Then: in a checkout, the TypeScript through tsx (no compile step);
// in an installed package, the bundle in lib/ (no tsx, no TypeScript, no node_modules).
import { existsSync, readFileSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);

/**
 * Why `version` (e.g. "18.20.4") cannot run ctun under `range` (engines.node, of the
 * form ">=MAJOR.MINOR.PATCH"), or undefined when it can.
 */
export function nodeTooOld(version, range) {
  const want = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(range.trim());
  if (!want) return undefined;
  const have = version.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const w = Number(want[i + 1]);
    if ((have[i] ?? 0) > w) return undefined;
    if ((have[i] ?? 0) < w) return `Node ${version} is too old: ctun needs Node ${range.replace(/^>=\s*/, '')} or newer`;
  }
  return undefined;
}

export async function launch(name) {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8'));
  const problem = nodeTooOld(process.versions.node, pkg.engines.node);
  if (problem) {
    process.stderr.write(`${name}: error: ${problem} (${process.execPath})\n`);
    process.stderr.write(`${name}: hint: put a newer Node first on PATH, or use the release tarball, which carries its own\n`);
    process.exit(1); // ExitCode.Usage: the way it was started is wrong, nothing ran
  }
  const source = new URL(`tools/cli/${name}.ts`, ROOT);
  if (existsSync(source)) {
    const { register } = await import('tsx/esm/api');
    register();
    await import(source.href);
  } else {
    await import(new URL(`lib/${name}.mjs`, ROOT).href);
  }
}
