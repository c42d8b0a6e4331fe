#!/usr/bin/env node
// `npm run build`: bundles the tunnel CLI into dist/ctun.mjs, the same one script the
// images embed (tools/image bundleScript), with the addon beside it in dist/native/.
//   node scripts/bundle.mjs [ENTRY] [OUT_FILE]
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { bundleScript, projectPaths } = await import('../tools/image/index.ts');
const paths = projectPaths(root);
const entry = resolve(process.argv[2] ?? paths.ctunEntry);
const outFile = resolve(process.argv[3] ?? join(root, 'dist', 'ctun.mjs'));
try {
  const r = await bundleScript({ entry, outFile });
  await mkdir(join(dirname(outFile), 'native'), { recursive: true });
  await copyFile(paths.addon, join(dirname(outFile), 'native', 'ctun_tap.node')).catch(() => {
    process.stderr.write(`bundle: note: ${paths.addon} is missing (run npm ci); the bundle needs it beside it in native/\n`);
  });
  process.stdout.write(`${r.outFile} (${(r.bytes / 1024).toFixed(0)} KiB)\n`);
} catch (e) {
  process.stderr.write(`bundle: error: ${e.message}\n${e.hint ? `bundle: hint: ${e.hint}\n` : ''}`);
  process.exit(e.exitCode ?? 1);
}
