import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { build } from 'esbuild';
import { CtunError } from '../common/index.js';

export interface BundleOptions {
  /** The TypeScript entry, e.g. tools/cli/ctun.ts. */
  entry: string;
  /** The one output script (ESM), e.g. …/opt/ctun/ctun.mjs. */
  outFile: string;
  /** Minify; default false (readable stack traces matter more than size here). */
  minify?: boolean;
}

/**
 * Bundles an entry and everything it imports (metadata.json included) into ONE
 * script that runs on the pinned Node without node_modules. The TAP addon is not
 * bundled: the tunnel's loader finds it through CTUN_ADDON or `native/` beside the
 * script, and the banner gives the ESM bundle a `require` for it and for CommonJS
 * dependencies.
 */
export async function bundleScript(options: BundleOptions): Promise<{ outFile: string; bytes: number }> {
  await stat(options.entry).catch((e: unknown) => {
    throw new CtunError('BUNDLE_ENTRY_MISSING', `the entry to bundle, ${options.entry}, does not exist`, {
      hint: 'check the checkout (the tunnel CLI lives in tools/cli/ctun.ts)',
      cause: e,
    });
  });
  await mkdir(dirname(options.outFile), { recursive: true });
  try {
    await build({
      entryPoints: [options.entry],
      outfile: options.outFile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      minify: options.minify ?? false,
      legalComments: 'none',
      logLevel: 'silent',
      banner: {
        js: "import { createRequire as __ctunCreateRequire } from 'node:module'; const require = __ctunCreateRequire(import.meta.url);",
      },
    });
  } catch (e) {
    throw new CtunError('BUNDLE_FAILED', `bundling ${options.entry} failed: ${(e as Error).message}`, {
      hint: 'fix the TypeScript error above; `npx tsc -p tsconfig.json --noEmit` shows it too',
      cause: e,
    });
  }
  return { outFile: options.outFile, bytes: (await stat(options.outFile)).size };
}
