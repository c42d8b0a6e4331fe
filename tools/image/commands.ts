import { access, readdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { CtunError, ExitCode, isCtunError, type Logger } from '../common/index.js';
import type { Distro } from './apt.js';
import { readPublicKey } from './keys.js';
import { checkBuildInputs, checkTarballFields } from './inputs.js';
import { checkEula, offlineRefusal, offlineShortfall, OFFLINE_FORM, wheelsProblem, type CommonBuildOptions, type VeosOptions } from './plan.js';
import { describeTarball, type TarballLayout } from './tarball.js';

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
    throw new CtunError('USAGE', `veos${mode === 'offline' ? ' offline' : ''} needs the EULA literal, the image name and the tarball${mode === 'offline' ? ', and the sources to install from' : ''}`, {
      hint: mode === 'offline' ? OFFLINE_FORM : 'ctun-build veos online acceptDspaceEula dspace/veos/simulator:23.1 dspace-veos-2023a.tar.gz',
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
  /** `--installCommand`, `--entryPoint`, `--installDir`: a tarball of another layout (see tarball.ts). */
  layout?: TarballLayout;
  /** Says which input was taken from ./veos/; default none. */
  logger?: Logger;
  /** Where relative paths start; default the current folder. */
  cwd?: string;
}

/** The seed's folder for the tarball, microsoft.asc and the wheels: `<CTUN_INSTALL_DIR>/veos/`. */
export const SEED_INPUT_DIR = 'veos';

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * A file the manual's lines name relative to the CTun folder: taken from the current
 * folder, else from ./veos/ (where §1.2 and §2.2 put the tarball, key and wheels),
 * saying so. Absent from both: the current folder's path, and `lookedIn` for messages.
 */
export async function findSeedInput(given: string, what: string, o: { cwd?: string; logger?: Logger } = {}): Promise<{ path: string; lookedIn: string[] }> {
  const cwd = o.cwd ?? process.cwd();
  const here = resolve(cwd, given);
  if (isAbsolute(given) || (await exists(here))) return { path: here, lookedIn: [here] };
  const seed = resolve(cwd, SEED_INPUT_DIR, given);
  if (await exists(seed)) {
    o.logger?.info('input-from-veos-folder', { input: what, given, taken: `./${relative(cwd, seed)}`, why: `not in the current folder ${cwd}` });
    return { path: seed, lookedIn: [here, seed] };
  }
  return { path: here, lookedIn: [here, seed] };
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
 * Reads what the plan needs from disk and checks every input before anything is
 * built: the tarball, the key file, the wheels and (offline) that every source is
 * given. All problems are reported in one error, so an air-gapped site pays one round
 * trip, not one per mistake. The EULA is checked first of all.
 */
export async function resolveVeosOptions(args: VeosArgs, extra: VeosExtra): Promise<VeosOptions> {
  // The EULA is checked before the tarball is even opened.
  checkEula(args.eula);
  const where = { ...(extra.cwd ? { cwd: extra.cwd } : {}), ...(extra.logger ? { logger: extra.logger } : {}) };
  const problems: CtunError[] = [];
  const collect = async <T>(f: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch (e) {
      if (!isCtunError(e)) throw e;
      problems.push(e);
      return undefined;
    }
  };

  const found = await findSeedInput(args.tarball, 'the simulator tarball', where);
  const tarball = await collect(() =>
    describeTarball(found.path, extra.layout).catch((e: unknown) => {
      if ((e as CtunError).code === 'TARBALL_MISSING' && found.lookedIn.length > 1) {
        throw new CtunError('TARBALL_MISSING', `simulator tarball ${args.tarball} is neither in the current folder nor in ./${SEED_INPUT_DIR}/ (looked at ${found.lookedIn.join(' and ')})`, {
          hint: (e as CtunError).hint,
          exitCode: ExitCode.Usage,
          cause: e,
        });
      }
      throw e;
    }),
  );

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

  // Offline, the wheels default to the tarball's folder (the seed's ./veos/).
  const wheelsGiven = extra.wheels ?? (args.mode === 'offline' ? dirname(found.path) : undefined);
  let wheels: VeosOptions['wheels'];
  if (wheelsGiven) {
    const dir = extra.wheels ? (await findSeedInput(extra.wheels, 'the wheels folder', where)).path : resolve(wheelsGiven);
    const files = await collect(() => listWheels(dir));
    if (files) {
      wheels = { dir, files };
      const short = wheelsProblem(wheels);
      if (short) problems.push(short);
    }
  }

  let dotnetKey: string | undefined;
  if (args.dotnetKey) {
    if (/^https?:\/\//.test(args.dotnetKey)) dotnetKey = args.dotnetKey;
    else {
      dotnetKey = (await findSeedInput(args.dotnetKey, 'the .NET key file', where)).path;
      const key = dotnetKey;
      await collect(() => readPublicKey(key));
    }
  }
  const missing = offlineShortfall({
    mode: args.mode,
    ...(args.archiveServer ? { archiveServer: args.archiveServer } : {}),
    ...(args.securityServer ? { securityServer: args.securityServer } : {}),
    ...(args.dotnetServer ? { dotnetServer: args.dotnetServer } : {}),
    ...(dotnetKey ? { dotnetKey } : {}),
    ...(extra.dotnetPackages ? { dotnetPackages: extra.dotnetPackages } : {}),
    ...(tarball ? { tarball } : {}),
  });
  if (missing.length) problems.push(offlineRefusal(missing));
  // Values that would reach a Dockerfile or a shell (inputs.ts), in the same report.
  const checked = checkBuildInputs({
    ...common,
    image: args.image,
    ...(extra.pipIndexUrl ? { pipIndexUrl: extra.pipIndexUrl } : {}),
    ...(extra.pipTrustedHost ? { pipTrustedHost: true } : {}),
    ...(args.dotnetServer ? { dotnetServer: args.dotnetServer } : {}),
    ...(dotnetKey ? { dotnetKey } : {}),
    ...(extra.dotnetPackages?.length ? { dotnetPackages: extra.dotnetPackages } : {}),
  });
  if (tarball) checked.problems.push(...checkTarballFields(tarball));
  for (const p of checked.problems) problems.push(new CtunError(p.code, p.message, { hint: p.hint, exitCode: ExitCode.Usage }));

  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw inputProblems(problems);

  const options: VeosOptions = { ...common, mode: args.mode, image: args.image, tarball: tarball!, installCtun: extra.installCtun ?? false };
  if (wheels) options.wheels = wheels;
  if (extra.pipIndexUrl) options.pipIndexUrl = extra.pipIndexUrl;
  if (extra.pipTrustedHost) options.pipTrustedHost = true;
  if (args.dotnetServer) options.dotnetServer = args.dotnetServer;
  if (extra.dotnetPackages?.length) options.dotnetPackages = extra.dotnetPackages;
  if (dotnetKey) options.dotnetKey = dotnetKey;
  return options;
}

/** Several input problems as one error: each with its code and what to do, then the exit. */
export function inputProblems(problems: CtunError[]): CtunError {
  const lines = problems.map((p, i) => `  ${i + 1}. [${p.code}] ${p.message}${p.hint ? `\n     → ${p.hint}` : ''}`);
  return new CtunError('BUILD_INPUTS_INVALID', `${problems.length} problems with the build inputs, nothing was built:\n${lines.join('\n')}`, {
    hint: 'fix them all, then run the same command again',
    exitCode: problems.every((p) => p.exitCode === ExitCode.Usage) ? ExitCode.Usage : ExitCode.Failure,
  });
}
