import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, posix, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';
import { CtunError } from '../common/index.js';

export interface BundleOptions {
  /**
   * The TypeScript entry, e.g. tools/cli/ctun.ts. An entry that is already a bundle
   * (`.mjs`, as an installed ctun carries) is copied as it is: an install has the
   * bundle but no sources, and it is the same script the checkout would make.
   */
  entry: string;
  /** The one output script (ESM), e.g. …/opt/ctun/ctun.mjs. */
  outFile: string;
  /** Minify; default false (readable stack traces matter more than size here). */
  minify?: boolean;
  /**
   * Where the bundle will sit, relative to the tree it ships with, when that tree
   * mirrors the checkout (the release and the npm package carry dockerfiles/,
   * templates/, metadata.json, tools/simulator/payload … at their checkout paths).
   * Given `{ root, at }` (the checkout, and the bundle's path inside the shipped tree,
   * e.g. `lib/ctun.mjs`), each module's `import.meta.url` is rewritten to the
   * place that module has in the tree beside the bundle, so the code that finds its
   * files from its own location (`../../templates`) finds them in an install too.
   * Default: none (the images' ctun carries no such tree; `import.meta.url` is then
   * the bundle's own).
   */
  layout?: { root: string; at: string };
}

/**
 * A module's `import.meta.url` as the URL it would have in the shipped tree: the
 * relative way from the bundle to the module's checkout path, resolved at run time
 * against the bundle's own URL. Only the project's modules: dependencies' own
 * `import.meta.url` stays the bundle's.
 */
function mirrorModuleUrls(root: string, at: string): Plugin {
  return {
    name: 'ctun-mirror-import-meta-url',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        const rel = relative(root, args.path);
        if (rel.startsWith('..') || rel.split(sep).includes('node_modules')) return undefined;
        // This module's banner text names import.meta.url for the bundle itself: left as it is.
        if (args.path === SELF) return undefined;
        const fromBundle = posix.relative(posix.dirname(at.split(sep).join('/')), rel.split(sep).join('/'));
        const text = await readFile(args.path, 'utf8');
        return {
          contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(fromBundle)}, import.meta.url).href`),
          loader: 'ts',
        };
      });
    },
  };
}

const SELF = fileURLToPath(import.meta.url);

/**
 * Left out of the bundles: optional native parts of dependencies (ssh2's crypto and
 * cpu-features, loaded in a try and replaced by JavaScript when absent), esbuild,
 * which only a checkout uses (an install's entries are bundles already), and the XML
 * back ends the CycloneDX library loads in a try when asked for XML (ctun writes JSON).
 */
const EXTERNAL = ['cpu-features', 'esbuild', 'xmlbuilder2', 'libxmljs2'];

/**
 * Native addons (`*.node` binaries) stay outside the bundle; a module whose name only
 * ends in `.node` (the CycloneDX library's `./contrib/index.node` is index.node.js) is
 * JavaScript and is bundled.
 */
const nativeAddonsExternal: Plugin = {
  name: 'ctun-native-addons-external',
  setup(b) {
    b.onResolve({ filter: /\.node$/ }, (args) => {
      const local = args.path.startsWith('.') || args.path.startsWith('/');
      if (local && existsSync(resolvePath(args.resolveDir, `${args.path}.js`))) return undefined;
      return { path: args.path, external: true };
    });
  },
};

/** True for an entry that is a finished bundle rather than a source to bundle. */
export function isPrebuiltBundle(entry: string): boolean {
  return extname(entry) === '.mjs';
}

/**
 * Bundles an entry and everything it imports (metadata.json included) into ONE
 * script that runs on Node without node_modules. The TAP addon is not bundled: the
 * tunnel's loader finds it through CTUN_ADDON, `native/` beside the script, or the
 * prebuilt/compiled one of the tree; the banner gives the ESM bundle a `require` for
 * it and for CommonJS dependencies. One recipe for the images, the release and the
 * npm package.
 */
export async function bundleScript(options: BundleOptions): Promise<{ outFile: string; bytes: number }> {
  await stat(options.entry).catch((e: unknown) => {
    throw new CtunError('BUNDLE_ENTRY_MISSING', `the entry to bundle, ${options.entry}, does not exist`, {
      hint: 'check the checkout (the tunnel CLI lives in tools/cli/ctun.ts) or the install (lib/ctun.mjs)',
      cause: e,
    });
  });
  await mkdir(dirname(options.outFile), { recursive: true });
  if (isPrebuiltBundle(options.entry)) {
    await copyFile(options.entry, options.outFile);
    return { outFile: options.outFile, bytes: (await stat(options.outFile)).size };
  }
  // Loaded here, not at the top: an install never bundles, and carries no esbuild.
  const { build } = await import('esbuild');
  try {
    await build({
      entryPoints: [options.entry],
      outfile: options.outFile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: BUNDLE_TARGET,
      minify: options.minify ?? false,
      legalComments: 'none',
      logLevel: 'silent',
      external: EXTERNAL,
      // Only free uses are replaced: an ES module declaring its own __dirname keeps it.
      define: { __filename: '__ctunBundleFile', __dirname: '__ctunBundleDir' },
      plugins: [nativeAddonsExternal, ...(options.layout ? [mirrorModuleUrls(options.layout.root, options.layout.at)] : [])],
      banner: {
        // CommonJS dependencies bundled into ESM still ask for require, __filename and __dirname.
        js: [
          "import { createRequire as __ctunCreateRequire } from 'node:module';",
          "import { dirname as __ctunDirname } from 'node:path';",
          "import { fileURLToPath as __ctunFileURLToPath } from 'node:url';",
          'const require = __ctunCreateRequire(import.meta.url);',
          'const __ctunBundleFile = __ctunFileURLToPath(import.meta.url);',
          'const __ctunBundleDir = __ctunDirname(__ctunBundleFile);',
        ].join(' '),
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

/**
 * The oldest Node the bundles are written for (package.json `engines` says the same;
 * a unit test keeps them in step). esbuild lowers newer syntax
 * to it. 20.19: yargs 18's minimum; the bundles are run under Node 20 in the tests.
 */
export const BUNDLE_TARGET = 'node20';
