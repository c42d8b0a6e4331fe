/**
 * Bundles the ctun CLI exactly as the images ship it (tools/image/bundle.ts), so the
 * benchmark measures that shape: no TypeScript loader in the process, whose compile
 * caches would count in the peak RSS.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleScript } from '../tools/image/bundle.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Writes `ctun.mjs` into `dir`; run it with CTUN_ADDON pointing at the built addon. */
export async function bundleCtun(dir: string): Promise<{ script: string; addon: string }> {
  const { outFile } = await bundleScript({ entry: join(ROOT, 'tools/cli/ctun.ts'), outFile: join(dir, 'ctun.mjs') });
  return { script: outFile, addon: join(ROOT, 'tools/tunnel/native/build/Release/ctun_tap.node') };
}
