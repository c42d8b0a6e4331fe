import { readdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CtunError, ExitCode } from '../common/index.js';
import type { Distro } from './apt.js';
import { checkEula, type CommonBuildOptions, type VeosOptions } from './plan.js';
import { describeTarball } from './tarball.js';

/**
 * The seed's `BuildVeos.py` takes positionals whose meaning depends on the first:
 *   online  acceptDspaceEula IMAGE TARBALL
 *   offline acceptDspaceEula IMAGE TARBALL ARCHIVE SECURITY DOTNET_SERVER KEY_FILE
 * and ours also takes the flag form (`--offline`, named servers) without the mode word.
 * Both end in the same VeosOptions, so one BuildPlan and one code path.
 */
export interface VeosArgs {
  mode: 'online' | 'offline';
  eula: string | undefined;
  image: string;
  tarball: string;
  archiveServer?: string;
  securityServer?: string;
  dotnetServer?: string;
  dotnetKey?: string;
}

export interface VeosFlags {
  offline?: boolean;
  ubuntuArchiveServer?: string;
  ubuntuSecurityServer?: string;
  dotnetServer?: string;
  dotnetKey?: string;
}

export function parseVeosArgs(positionals: string[], flags: VeosFlags = {}): VeosArgs {
  const list = [...positionals];
  let mode: 'online' | 'offline' = flags.offline ? 'offline' : 'online';
  if (list[0] === 'online' || list[0] === 'offline') {
    const word = list.shift() as 'online' | 'offline';
    if (flags.offline && word === 'online') {
      throw new CtunError('USAGE', '"online" contradicts --offline', { exitCode: ExitCode.Usage });
    }
    mode = word;
  }
  const [eula, image, tarball, archive, security, dotnetServer, dotnetKey, ...extra] = list;
  if (extra.length) {
    throw new CtunError('USAGE', `unexpected arguments: ${extra.join(' ')}`, { hint: 'see ctun-build veos --help', exitCode: ExitCode.Usage });
  }
  if (!image || !tarball) {
    throw new CtunError('USAGE', 'veos needs the EULA literal, the image name and the tarball', {
      hint: 'ctun-build veos online acceptDspaceEula dspace/veos/simulator:23.1 dspace-veos-2023a.tar.gz',
      exitCode: ExitCode.Usage,
    });
  }
  if (mode === 'online' && (archive || security || dotnetServer || dotnetKey)) {
    throw new CtunError('USAGE', `online takes no servers after the tarball (got ${[archive, security, dotnetServer, dotnetKey].filter(Boolean).join(' ')})`, {
      hint: 'use "offline" for servers given as positionals, or the --ubuntuArchiveServer … flags',
      exitCode: ExitCode.Usage,
    });
  }
  const out: VeosArgs = { mode, eula, image, tarball };
  const archiveServer = flags.ubuntuArchiveServer ?? archive;
  const securityServer = flags.ubuntuSecurityServer ?? security;
  const dnServer = flags.dotnetServer ?? dotnetServer;
  const dnKey = flags.dotnetKey ?? dotnetKey;
  if (archiveServer) out.archiveServer = archiveServer;
  if (securityServer) out.securityServer = securityServer;
  if (dnServer) out.dotnetServer = dnServer;
  if (dnKey) out.dotnetKey = dnKey;
  return out;
}

export interface VeosExtra {
  installCtun?: boolean;
  wheels?: string;
  pipIndexUrl?: string;
  /** `--pipTrustedHost`: accept an http pip index. */
  pipTrustedHost?: boolean;
  baseImage?: string;
  distro?: Distro;
  dockerRepository?: string;
  network?: string;
  noCache?: boolean;
  ctunEntry?: string;
  tagPrefix?: string;
  /** `--dotnetPackages`: installed from the .NET feed whatever the manifest says. */
  dotnetPackages?: string[];
}

/** `yes`/`no` as the seed's `--installCtun yes` takes it. */
export function yesNo(value: string | boolean | undefined, name: string): boolean {
  if (value === undefined || value === false) return false;
  if (value === true) return true;
  const v = value.toLowerCase();
  if (v === 'yes' || v === 'true' || v === '1') return true;
  if (v === 'no' || v === 'false' || v === '0') return false;
  throw new CtunError('USAGE', `${name} takes yes or no, got "${value}"`, { exitCode: ExitCode.Usage });
}

async function listWheels(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => f.endsWith('.whl')).sort();
  } catch (e) {
    throw new CtunError('WHEELS_DIR_MISSING', `the wheels directory ${dir} cannot be read`, {
      hint: 'give an existing directory with --wheels',
      exitCode: ExitCode.Usage,
      cause: e,
    });
  }
}

/**
 * Reads what the plan needs from disk: validates the tarball (before anything is
 * built) and lists the wheels. The EULA is checked first of all.
 */
export async function resolveVeosOptions(args: VeosArgs, extra: VeosExtra): Promise<VeosOptions> {
  // The EULA is checked before the tarball is even opened.
  checkEula(args.eula);
  const tarball = await describeTarball(resolve(args.tarball));
  const common: CommonBuildOptions = { eula: args.eula };
  if (extra.baseImage) common.baseImage = extra.baseImage;
  if (extra.distro) common.distro = extra.distro;
  if (extra.dockerRepository) common.dockerRepository = extra.dockerRepository;
  if (args.archiveServer) common.archiveServer = args.archiveServer;
  if (args.securityServer) common.securityServer = args.securityServer;
  if (extra.network) common.network = extra.network;
  if (extra.noCache) common.noCache = true;
  if (extra.ctunEntry) common.ctunEntry = resolve(extra.ctunEntry);
  if (extra.tagPrefix) common.tagPrefix = extra.tagPrefix;
  const options: VeosOptions = { ...common, mode: args.mode, image: args.image, tarball, installCtun: extra.installCtun ?? false };
  const wheelsDir = extra.wheels ?? (args.mode === 'offline' ? dirname(tarball.path) : undefined);
  if (wheelsDir) options.wheels = { dir: resolve(wheelsDir), files: await listWheels(resolve(wheelsDir)) };
  if (extra.pipIndexUrl) options.pipIndexUrl = extra.pipIndexUrl;
  if (extra.pipTrustedHost) options.pipTrustedHost = true;
  if (args.dotnetServer) options.dotnetServer = args.dotnetServer;
  if (extra.dotnetPackages?.length) options.dotnetPackages = extra.dotnetPackages;
  if (args.dotnetKey) options.dotnetKey = /^https?:\/\//.test(args.dotnetKey) ? args.dotnetKey : resolve(args.dotnetKey);
  return options;
}
