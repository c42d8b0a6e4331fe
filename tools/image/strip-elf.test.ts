/**
 * The pinned Node binary written without its symbols and debug sections: smaller by
 * what `strip` takes, and it still runs and loads the TAP addon (the dynamic symbols
 * the addon links against are kept). Anything else is copied as it is.
 */
import { execFile } from 'node:child_process';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../lab/testing.js';
import { projectPaths } from './paths.js';
import { strippedCopy, stripElf } from './strip-elf.js';

const run = promisify(execFile);
const paths = projectPaths();
const dir = tempDir('strip');

describe('stripElf', () => {
  it('cuts the pinned Node binary by its symbols and debug info; it still runs and loads the addon', async () => {
    const out = join(dir, 'node');
    const outcome = await stripElf(paths.nodeBinary, out);
    await chmod(out, 0o755);
    expect(outcome).toMatchObject({ done: 'stripped' });
    const [before, after] = await Promise.all([stat(paths.nodeBinary), stat(out)]);
    expect(after.size).toBeLessThan(before.size - 10 * 2 ** 20); // Node 24: 126 -> 108 MB
    if (outcome.done === 'stripped') expect(outcome.saved).toBe(before.size - after.size);
    const version = await run(out, ['--version']);
    expect(version.stdout.trim()).toBe((await run(paths.nodeBinary, ['--version'])).stdout.trim());
    const loaded = await run(out, ['-e', `const a = require(${JSON.stringify(paths.addon)}); console.log(typeof a.open)`]);
    expect(loaded.stdout.trim()).toBe('function');
  }, 60_000);

  it('copies a file that is not ELF unchanged, saying why', async () => {
    const src = join(dir, 'script');
    await writeFile(src, '#!/bin/sh\necho hi\n');
    expect(await stripElf(src, join(dir, 'copy'))).toEqual({ done: 'copied', reason: 'not an ELF file' });
    expect(await readFile(join(dir, 'copy'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
  });

  it('copies an already stripped binary unchanged', async () => {
    const once = join(dir, 'once');
    await stripElf(paths.nodeBinary, once);
    expect(await stripElf(once, join(dir, 'twice'))).toEqual({ done: 'copied', reason: 'nothing to strip' });
  }, 60_000);

  it('keeps one stripped copy per version of the source, so build contexts link the same file', async () => {
    const cache = join(dir, 'cache');
    const first = await strippedCopy(paths.nodeBinary, cache);
    const again = await strippedCopy(paths.nodeBinary, cache);
    expect(again).toBe(first);
    const [a, b] = await Promise.all([stat(first), stat(again)]);
    expect([b.ino, b.mtimeMs]).toEqual([a.ino, a.mtimeMs]);
    expect(a.size).toBeLessThan((await stat(paths.nodeBinary)).size);
  }, 60_000);
});
