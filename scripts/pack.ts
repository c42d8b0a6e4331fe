// npm pack's hooks. `stage` (prepack): the three CLIs bundled into lib/ and the
// addon prebuilt into tools/tunnel/native/prebuilds/, which package.json `files`
// ships; `clean` (postpack): removes both, so the checkout runs from its sources again.
// CTUN_PREBUILT_ADDON names an addon prebuilt already (the release's) to ship instead
// of compiling it a second time, e.g. when a test makes both artifacts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ADDON_DIR, BUNDLE_DIR, prebuildAddon, stageInstallTree } from '../tools/image/index.js';
import { createLogger } from '../tools/common/index.js';
import { printError } from '../tools/common/index.js';

const root = resolve(import.meta.dirname, '..');
const logger = createLogger({ level: 'info' });
const step = process.argv[2];
try {
  if (step === 'stage') {
    const work = await mkdtemp(join(tmpdir(), 'ctun-pack-'));
    try {
      const addon = process.env.CTUN_PREBUILT_ADDON || (await prebuildAddon(root, work, logger));
      await stageInstallTree({ root, dir: root, addon, logger });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  } else if (step === 'clean') {
    await rm(join(root, BUNDLE_DIR), { recursive: true, force: true });
    await rm(join(root, ADDON_DIR, 'prebuilds'), { recursive: true, force: true });
  } else {
    throw new Error(`give stage or clean, not ${step}`);
  }
} catch (e) {
  process.exit(printError('pack', e, process.argv.includes('--verbose')));
}
