import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectPaths, type ProjectPaths } from './paths.js';
import type { TarballInfo } from './plan.js';

/**
 * What the build's unit tests share (not part of the public API): the file names of the
 * five wheels the simulator image asks for, in the versions the Debian mirror and the
 * stand-ins give them. Tests write empty files of these names where only names count.
 */
export const SEED_WHEEL_FILES: string[] = [
  'setuptools-66.1.1-py3-none-any.whl',
  'supervisor-4.2.5-py3-none-any.whl',
  'supervisor_console-0.5.0-py3-none-any.whl',
  'supervisord_dependent_startup-1.4.0-py3-none-any.whl',
  'toposort-1.9-py3-none-any.whl',
];

/**
 * What the stand-in simulator tarball's manifest says, as `readTarball` would return it:
 * the plans and checks under test take it as given, so no tarball is read.
 */
export const STANDIN_TARBALL: TarballInfo = {
  path: '/srv/in/dspace-veos-2023a.tar.gz',
  product: 'VEOS stand-in',
  release: '2023a',
  version: '23.1',
  topDir: 'dspace-veos-2023a',
  installScript: 'install.sh',
  installDir: '/opt/dspace/veos2023a',
  simulatorArgv: ['python3', '-u', '{installDir}/bin/veos_standin.py'],
  needsDotnet: false,
  ports: ['27027/tcp', '5555/udp', '27028/udp'],
};

/**
 * A checkout in miniature inside `dir`: a prebuilt bundle (copied, not bundled), a small
 * "Node" and "addon", so a runtime context is a few bytes and no esbuild runs.
 */
export async function miniatureCheckout(dir: string): Promise<ProjectPaths> {
  const paths = { ...projectPaths(), nodeBinary: join(dir, 'node'), addon: join(dir, 'ctun_tap.node'), ctunEntry: join(dir, 'ctun.mjs') };
  await writeFile(paths.nodeBinary, 'node v24');
  await writeFile(paths.addon, 'addon 1');
  await writeFile(paths.ctunEntry, 'console.log("ctun 1")\n');
  return paths;
}
