/**
 * Bundles the ctun CLI into one plain JavaScript file, as the images run it, so the
 * benchmark measures the shipped shape (no TypeScript loader in the process, whose
 * compile caches would count in the peak RSS).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Writes `ctun.mjs` into `dir`; run it with CTUN_ADDON pointing at the built addon. */
export async function bundleCtun(dir: string): Promise<{ script: string; addon: string }> {
  const script = join(dir, 'ctun.mjs');
  await build({
    entryPoints: [join(ROOT, 'tools/cli/ctun.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    outfile: script,
    // Bundled CommonJS dependencies call require(); give the ES module one.
    banner: { js: "import { createRequire as __ctunRequire } from 'node:module'; const require = __ctunRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  return { script, addon: join(ROOT, 'tools/tunnel/native/build/Release/ctun_tap.node') };
}
