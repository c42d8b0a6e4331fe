// `npm run release`: writes dist/ctun-<version>-linux-x64.tar.gz (tools/image/release.ts).
import { resolve } from 'node:path';
import { buildRelease } from '../tools/image/index.js';
import { createLogger } from '../tools/common/index.js';
import { printError } from '../tools/common/index.js';

const root = resolve(import.meta.dirname, '..');
try {
  const r = await buildRelease({ root, logger: createLogger({ level: 'info' }) });
  process.stdout.write(`${r.file}\n`);
} catch (e) {
  process.exit(printError('release', e, process.argv.includes('--verbose')));
}
