import { posix } from 'node:path';
import * as tar from 'tar';
import { CtunError, ExitCode, metadata } from '../common/index.js';
import {
  inspectSimulatorTarball,
  INSTALL_ENV,
  SIMULATOR_INSTALL_DIR,
  SIMULATOR_PORTS,
  SIMULATOR_TARBALL_NAME,
  simulatorCommand,
  type SimulatorTarballInfo,
} from '../simulator/index.js';
import type { TarballInfo } from './plan.js';

/**
 * The tarball contract: what `ctun-build veos` does with a simulator tarball.
 *
 * 1. The tarball goes into the build context and is unpacked, as root, in
 *    /tmp/veos/unpacked of the image being built; the install runs in its single
 *    top-level directory (or at its root when it has none).
 * 2. The install command runs there as root with DS_ACCEPT_EULA=yes and
 *    DS_INSTALL_PREFIX=<install dir>: by default `sh ./install.sh` (dSPACE's layout:
 *    install.sh and VERSION with release=2023a beside it), or the command given
 *    with --installCommand. The unpacked files are removed afterwards.
 * 3. supervisord (as root, in the install dir) starts the simulator: the entry point
 *    of the tarball's manifest.json, or the one given with --entryPoint (run by
 *    /bin/sh, so it may be a command line).
 * A tarball without install.sh and VERSION is refused, naming what was expected and
 * what was found, unless --installCommand and --entryPoint say how to install and
 * start it.
 */
export interface TarballLayout {
  /** Shell command run in the unpacked top directory instead of `sh ./install.sh`. */
  installCommand?: string;
  /** Command line supervisord starts the simulator with (`/bin/sh -c "exec …"`). */
  entryPoint?: string;
  /** DS_INSTALL_PREFIX and supervisord's directory; default /opt/dspace/veos2023a. */
  installDir?: string;
}

/** What `ctun-build veos --help` and the errors say the build does with a tarball. */
export const TARBALL_CONTRACT = [
  'What the build does with the tarball:',
  ' 1. unpacks it, as root, in /tmp/veos/unpacked of the image and enters',
  '    its single top folder;',
  ` 2. runs there, as root, with ${INSTALL_ENV.acceptEula}=yes and`,
  `    ${INSTALL_ENV.prefix}=<installDir> (default ${SIMULATOR_INSTALL_DIR}):`,
  `    sh ./install.sh (dSPACE's layout: install.sh and VERSION with`,
  `    release=${metadata.veosRelease} in the top folder), or the shell command`,
  '    of --installCommand; then removes the unpacked files;',
  ' 3. starts the simulator under supervisord, as root, in <installDir>:',
  "    the entry point of the tarball's manifest.json, or the command line",
  '    of --entryPoint (run by /bin/sh).',
  'A tarball of another layout is refused, naming what was expected,',
  'unless --installCommand and --entryPoint say how to install and start it.',
].join('\n');

/** The part of an inspected tarball a BuildPlan holds (pure, for tests). */
export function tarballInfoFrom(info: SimulatorTarballInfo, layout: TarballLayout = {}): TarballInfo {
  const m = info.manifest;
  const installDir = layout.installDir ?? m?.installDir ?? SIMULATOR_INSTALL_DIR;
  const script = info.topDir && info.installScript.startsWith(`${info.topDir}/`) ? info.installScript.slice(info.topDir.length + 1) : info.installScript;
  const ports = m
    ? Object.entries(m.ports)
        .filter(([name]) => name !== 'license') // the license server is a client connection
        .map(([, p]) => `${p.port}/${p.protocol}`)
    : [`${SIMULATOR_PORTS.portMapper}/tcp`, `${SIMULATOR_PORTS.xcp}/udp`, `${SIMULATOR_PORTS.discovery}/udp`];
  const out: TarballInfo = {
    path: info.path,
    layout: 'dspace',
    product: info.product ?? m?.product ?? 'VEOS',
    release: info.release,
    version: info.version ?? m?.version ?? metadata.veosVersion,
    topDir: info.topDir,
    installScript: posix.normalize(script),
    installDir,
    simulatorArgv: layout.entryPoint ? entryArgv(layout.entryPoint) : (m?.entryPoints.simulator.argv ?? simulatorCommand(installDir)),
    needsDotnet: m?.needs.dotnet ?? true,
    ports,
  };
  if (layout.installCommand) out.installCommand = layout.installCommand;
  return out;
}

function entryArgv(entryPoint: string): string[] {
  // exec: supervisord's TERM reaches the simulator, not a shell around it.
  return ['/bin/sh', '-c', `exec ${entryPoint}`];
}

/** Entries of a gzip tar, or undefined when it cannot be read as one. */
async function listEntries(path: string): Promise<string[] | undefined> {
  const names: string[] = [];
  try {
    await tar.t({ file: path, strict: true, onReadEntry: (e) => void names.push(e.path.replace(/^(\.\/)+/, '').replace(/\/+$/, '')) });
  } catch {
    return undefined;
  }
  return names.filter((n) => n !== '' && n !== '.');
}

function topDirOf(paths: string[]): string {
  const first = new Set(paths.map((p) => p.split('/')[0]));
  const [only] = [...first];
  return first.size === 1 && only !== undefined && paths.some((p) => p.includes('/')) ? only : '';
}

/** The error for a tarball whose layout the build does not know, naming what it expected and found. */
export function unknownLayout(path: string, topDir: string, entries: string[]): CtunError {
  const at = (n: string): string => (topDir ? `${topDir}/${n}` : n);
  const missing = [at('install.sh'), at('VERSION')].filter((n) => !entries.includes(n));
  const shown = entries.slice(0, 6).join(', ') + (entries.length > 6 ? `, … (${entries.length} entries)` : '');
  return new CtunError(
    'TARBALL_LAYOUT_UNKNOWN',
    `simulator tarball ${path} is not in dSPACE's layout: expected ${at('install.sh')} and ${at('VERSION')} (release=${metadata.veosRelease}), missing ${missing.join(' and ')}; it holds ${shown || 'nothing'}`,
    {
      hint: `for ${SIMULATOR_TARBALL_NAME} from dSPACE check the file; for another simulator say how to install and start it: --installCommand "sh ./setup.sh" --entryPoint "/opt/sim/bin/sim --serve" (see ctun-build veos --help)`,
      exitCode: ExitCode.Usage,
    },
  );
}

/**
 * Validates the simulator tarball before anything is built (missing file, not a
 * tarball, wrong release, damaged: a CtunError with a hint) and returns what the plan
 * needs. A tarball of another layout is accepted when `layout` says how to install and
 * start it, and refused naming what was expected otherwise.
 */
export async function describeTarball(path: string, layout: TarballLayout = {}): Promise<TarballInfo> {
  try {
    return tarballInfoFrom(await inspectSimulatorTarball(path, { expectedRelease: metadata.veosRelease }), layout);
  } catch (e) {
    if ((e as CtunError).code !== 'TARBALL_INVALID') throw e;
    const entries = await listEntries(path);
    if (!entries) throw e; // not a readable tarball at all: the inspection said why
    const topDir = topDirOf(entries);
    const at = (n: string): string => (topDir ? `${topDir}/${n}` : n);
    if (entries.includes(at('install.sh')) && entries.includes(at('VERSION'))) throw e; // dSPACE's layout, but damaged or another release
    if (entries.some((n) => n.startsWith('/') || n.split('/').includes('..'))) throw e;
    if (!layout.installCommand || !layout.entryPoint) throw unknownLayout(path, topDir, entries);
    const installDir = layout.installDir ?? SIMULATOR_INSTALL_DIR;
    return {
      path,
      layout: 'custom',
      product: posix.basename(path).replace(/\.(tar\.gz|tgz)$/, ''),
      release: 'unknown',
      version: 'unknown',
      topDir,
      installScript: '',
      installCommand: layout.installCommand,
      installDir,
      simulatorArgv: entryArgv(layout.entryPoint),
      // Unknown: --dotnetPackages installs .NET when this simulator needs it.
      needsDotnet: false,
      // The readiness contract's port (ctun-run waits for it by default).
      ports: [`${SIMULATOR_PORTS.portMapper}/tcp`],
    };
  }
}
