import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the project's own inputs to the images live. */
export interface ProjectPaths {
  root: string;
  /** The pinned Node runtime installed by `npm ci` (the `node` dependency). */
  nodeBinary: string;
  /** The TAP addon built by node-gyp. */
  addon: string;
  /** The entry bundled into the one `ctun` script. */
  ctunEntry: string;
  dockerfiles: string;
  templates: string;
}

/** The paths of this checkout (default root: two folders above this module). */
export function projectPaths(root: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')): ProjectPaths {
  return {
    root,
    nodeBinary: join(root, 'node_modules', 'node', 'bin', 'node'),
    addon: join(root, 'tools', 'tunnel', 'native', 'build', 'Release', 'ctun_tap.node'),
    ctunEntry: join(root, 'tools', 'cli', 'ctun.ts'),
    dockerfiles: join(root, 'dockerfiles'),
    templates: join(root, 'templates'),
  };
}
