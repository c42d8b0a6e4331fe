/**
 * A real protocol-v1 `ctun`: this repository as it was on the last commit before
 * protocol v2, taken out of git history (`git archive`) into a temporary folder and
 * run through tsx with this checkout's node_modules, as that checkout ran. No copy of
 * old code is kept in the tree: the peer is exactly what v1 users have.
 *
 * The old tree loads the TAP addon from `CTUN_ADDON` first; it is pointed at this
 * checkout's build, whose functions are a superset of the old ones (the old calls
 * pass fewer arguments; the new ones are optional).
 */
import { execFileSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../../tools/lab/testing.js';
import { ROOT } from './netns.js';

/**
 * The parent of a51d366 ("tunnel: protocol v2 …"): the newest commit whose ctun
 * speaks protocol v1 only (`git log -S'PROTOCOL_VERSION = 2'` finds the bump).
 */
export const V1_COMMIT = '8678d1e9c3d50dcca5f74f18ea75115092166805';

/** What the old CLI reads at run time: its sources, bin, metadata and package.json (for tsx's module type). */
const V1_PATHS = ['bin', 'tools', 'metadata.json', 'package.json', 'tsconfig.json'];

export const ADDON = `${ROOT}tools/tunnel/native/build/Release/ctun_tap.node`;

/**
 * Writes the v1 tree once per test file and returns its `bin/ctun.js`. A clone without
 * that history (`git clone --depth`) fails here, saying so: CI clones in full.
 */
export function v1Ctun(): string {
  const dir = tempDir('v1');
  try {
    execFileSync('git', ['-C', ROOT, 'cat-file', '-e', `${V1_COMMIT}^{commit}`], { stdio: 'pipe' });
  } catch {
    throw new Error(`the v1 peer is built from commit ${V1_COMMIT.slice(0, 7)} of this repository's history, which this clone lacks (shallow?): git fetch --unshallow`);
  }
  const archive = execFileSync('git', ['-C', ROOT, 'archive', '--format=tar', V1_COMMIT, ...V1_PATHS], { maxBuffer: 64 << 20 });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'bin', 'ctun.js');
}
