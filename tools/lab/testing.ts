/**
 * Temporary folders for unit and integration tests: `tempDir` makes one under the OS
 * temp folder and the test file that imported this removes all of them when it ends
 * (the `afterAll` below attaches to that file, since vitest imports a file's modules
 * while it collects the file). Test-only: it imports vitest, so no index exports it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new empty folder `<tmp>/ctun-<purpose>-XXXXXX`, removed after the test file. */
export function tempDir(purpose: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ctun-${purpose}-`));
  made.push(dir);
  return dir;
}
