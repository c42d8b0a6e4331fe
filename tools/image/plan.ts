import { isIP } from 'node:net';
import { posix } from 'node:path';
import { CtunError, ExitCode, metadata } from '../common/index.js';
import { ctunLabels, splitImageRef } from '../docker/index.js';
import {
  releaseFromImage,
  renderAptSources,
  resolveRelease,
  resolveServer,
  type Distro,
  type Release,
  type RenderedSources,
  type ResolvedServer,
} from './apt.js';
import type { ProjectPaths } from './paths.js';
import { TUNNEL_NODE_FLAGS, tunnelEnvExports } from './node-flags.js';
import { normalizeBuildOptions } from './inputs.js';

/**
 * A BuildPlan is data: everything a build will do, resolved from the options before
 * anything runs, printable as JSON (`--print-plan`) and tested without Docker.
 * Online and offline are two ways to fill it; one executor carries it out.
 */

/** The literal the seed's build scripts require to accept the dSPACE EULA. */
export const EULA_LITERAL = 'acceptDspaceEula';

/** Where a file of a build context comes from. */
export type ContextSource =
  /** A file copied (hard-linked when it can be); `strip`: an executable written without its symbol table and debug sections (strip-elf.ts). */
  | { kind: 'file'; path: string; mode?: number; strip?: boolean }
  | { kind: 'text'; text: string; mode?: number }
  | { kind: 'template'; template: string; values: Record<string, string>; mode?: number }
  | { kind: 'bundle'; entry: string }
  /** A public key file (armored or binary), written dearmored as a binary keyring. */
  | { kind: 'keyring'; path: string }
  | { kind: 'dir'; path: string; files: string[] };

export interface ContextFile {
  /** Path inside the build context. */
  path: string;
  from: ContextSource;
}

/** One image to build. */
export interface ImageStep {
  /** Short id: `ctun-runtime`, `local-server`, `veos`, ... */
  id: string;
  title: string;
  /** The first tag names the image in messages. */
  tags: string[];
  /** A template under dockerfiles/ and the values it is filled with. */
  dockerfile: { template: string; values: Record<string, string> };
  context: ContextFile[];
  labels: Record<string, string>;
  extraHosts: string[];
  /**
   * Build arguments (`ARG` in the Dockerfile): user-given values that RUN lines use
   * reach them as variables, never as Dockerfile text.
   */
  buildArgs?: Record<string, string>;
  /** Network of the RUN steps; default the daemon's. */
  network?: string;
  noCache: boolean;
  /**
   * Where the tunnel this image carries comes from: `context` for the runtime image
   * (its own files), else the runtime image it copies /opt/ctun from. The executor
   * labels the image with that tunnel's digest (io.ctun.tunnel-digest), so a stale
   * tunnel is told without running it. Absent: the image carries no tunnel.
   */
  tunnel?: { from: 'context' | string };
}

export type AptPlan =
  | { rewrite: false; reason: string }
  | {
      rewrite: true;
      release: Release;
      archive: ResolvedServer;
      security: ResolvedServer;
      sources: RenderedSources;
    };

export const PYTHON_REQUIREMENTS = [
  'setuptools',
  'supervisor==4.2.*',
  'supervisor-console==0.5.*',
  'supervisord-dependent-startup==1.4.*',
] as const;

/** Distributions the wheels directory must hold (toposort comes with dependent-startup), with the versions pip will accept. */
export const REQUIRED_WHEELS = [
  { name: 'setuptools', version: '*' },
  { name: 'supervisor', version: '4.2.*' },
  { name: 'supervisor_console', version: '0.5.*' },
  { name: 'supervisord_dependent_startup', version: '1.4.*' },
  { name: 'toposort', version: '*' },
] as const;

export const DEFAULT_PIP_INDEX = 'https://pypi.org/simple';

export type PythonPlan =
  | { source: 'index'; indexUrl: string; trustedHost?: string; requirements: string[] }
  | { source: 'wheels'; dir: string; files: string[]; requirements: string[] };

export interface DotnetPlan {
  needed: boolean;
  /** Why it is installed or skipped. */
  reason: string;
  server: string;
  /** Suite of the feed's `deb` line (the base release's code name). */
  suite: string;
  /** URL or file of the server's public key. */
  key: string;
  /**
   * Where the key sits in the image, named by `signed-by` for this source only: a
   * file key is dearmored on the build host into a binary keyring (`.gpg`); a URL key
   * is fetched as it is (`.asc`, which apt reads armored).
   */
  keyring: string;
  packages: string[];
}

/** What the executor needs to know about the simulator tarball (from inspecting it). */
export interface TarballInfo {
  path: string;
  /** `dspace` (also when absent): install.sh and VERSION, as the stand-in; `custom`: installed and started as --installCommand/--entryPoint say. */
  layout?: 'dspace' | 'custom';
  product: string;
  release: string;
  version: string;
  /** Top-level directory inside the tarball ('' when files are at the top). */
  topDir: string;
  installScript: string;
  /** Shell command run instead of `sh ./<installScript>` (--installCommand). */
  installCommand?: string;
  installDir: string;
  /** argv that starts the simulator once installed. */
  simulatorArgv: string[];
  needsDotnet: boolean;
  /** Ports the simulator listens on, as `27027/tcp` (exposed by the image). */
  ports: string[];
}

export interface BasePlanRef {
  /** The image `FROM` names. */
  image: string;
  release: Release | undefined;
  /** `--dockerRepository`: the base comes from there (pulled when missing). */
  registry?: string;
  /** The command that makes it where no registry can be reached. */
  makeWith: string;
}

export interface BuildPlan {
  command: 'ctun' | 'veos';
  mode: 'online' | 'offline';
  eula: 'accepted';
  base: BasePlanRef;
  apt: AptPlan;
  python?: PythonPlan;
  dotnet?: DotnetPlan;
  tarball?: TarballInfo;
  /** The tunnel embedded without npm: Node binary, one bundled script, the addon. */
  runtime?: { image: string; nodeBinary: string; entry: string; addon: string };
  network?: string;
  images: ImageStep[];
}

export interface CommonBuildOptions {
  /** Must be {@link EULA_LITERAL}. */
  eula: string | undefined;
  /** Base image; default `ubuntu:22.04`, or `<distro>:<default version>` with `distro`. */
  baseImage?: string;
  /** Distribution of the base; default from the base image name, else `ubuntu`. */
  distro?: Distro;
  /** Registry the base image comes from (`--dockerRepository`). */
  dockerRepository?: string;
  /** Apt archive server (host, IP or URL); default: the base image's own sources. */
  archiveServer?: string;
  /** Apt security server; default the archive server when that is given. */
  securityServer?: string;
  /** Network of the RUN steps (`--buildNetwork`). */
  network?: string;
  noCache?: boolean;
  /** Entry of the bundled `ctun` script; default tools/cli/ctun.ts. */
  ctunEntry?: string;
  /**
   * Prefix of every image name this plan tags (`P/dspace/ctun/local-server:23.1.0`),
   * e.g. a registry to push to later, or a test's own names; default none.
   */
  tagPrefix?: string;
}

/** An image name with the plan's tag prefix. */
export function prefixed(name: string, options: Pick<CommonBuildOptions, 'tagPrefix'>): string {
  const p = options.tagPrefix?.replace(/\/+$/, '');
  return p ? `${p}/${name}` : name;
}

export function checkEula(eula: string | undefined): void {
  if (eula !== EULA_LITERAL) {
    throw new CtunError(
      'EULA_NOT_ACCEPTED',
      eula === undefined ? 'the dSPACE EULA is not accepted' : `"${eula}" does not accept the dSPACE EULA`,
      { hint: `give the literal ${EULA_LITERAL} to accept it, as in the seed: ctun-build ctun ${EULA_LITERAL}`, exitCode: ExitCode.Usage },
    );
  }
}

/** `dspace/ctun/runtime:23.1.0`: beside the ctun images, named from metadata. */
export function runtimeImageName(): string {
  const { repo } = splitImageRef(metadata.images.localServer);
  return `${posix.dirname(repo)}/runtime:${metadata.ctunVersion}`;
}

export function resolveBase(options: CommonBuildOptions): BasePlanRef {
  const distro: Distro =
    options.distro ?? (options.baseImage ? releaseFromImage(options.baseImage)?.distro : undefined) ?? 'ubuntu';
  let image = options.baseImage ?? `${distro}:${resolveRelease(distro).version}`;
  const release = releaseFromImage(image) ?? (options.baseImage ? undefined : resolveRelease(distro));
  const registry = options.dockerRepository?.replace(/\/+$/, '');
  if (registry && !image.startsWith(`${registry}/`)) image = `${registry}/${image}`;
  const r = release ?? resolveRelease(distro);
  const ref: BasePlanRef = {
    image,
    release,
    makeWith: `ctun-build base --distro ${r.distro} --suite ${r.suite} --tag ${options.baseImage ?? `${r.distro}:${r.version}`}`,
  };
  if (registry) ref.registry = registry;
  return ref;
}

export function planApt(base: BasePlanRef, options: CommonBuildOptions): AptPlan {
  if (!options.archiveServer && !options.securityServer) {
    return { rewrite: false, reason: "no archive/security server given: the base image's own apt sources are used" };
  }
  if (!base.release) {
    throw new CtunError('UNKNOWN_BASE_RELEASE', `cannot tell which Debian/Ubuntu release ${base.image} is, so its apt sources cannot be rewritten`, {
      hint: 'name the base as distro:version (e.g. ubuntu:22.04) or give --distro and a known --baseImage',
      exitCode: ExitCode.Usage,
    });
  }
  const distro = base.release.distro;
  const archive = resolveServer((options.archiveServer ?? options.securityServer)!, distro, 'archive');
  const security = resolveServer((options.securityServer ?? options.archiveServer)!, distro, 'security');
  return {
    rewrite: true,
    release: base.release,
    archive,
    security,
    sources: renderAptSources(base.release, { archive: archive.url, security: security.url }),
  };
}

const APT_SECTION = [
  'COPY apt/ /tmp/ctun-apt/',
  'RUN rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \\',
  ' && cp -R /tmp/ctun-apt/. /etc/apt/ && rm -rf /tmp/ctun-apt',
].join('\n');

function aptContext(apt: AptPlan): { section: string; files: ContextFile[]; extraHosts: string[] } {
  if (!apt.rewrite) return { section: '', files: [], extraHosts: [] };
  const rel = apt.sources.path.replace(/^\/etc\/apt\//, '');
  return {
    section: APT_SECTION,
    files: [{ path: `apt/${rel}`, from: { kind: 'text', text: apt.sources.content } }],
    extraHosts: [...new Set([...apt.archive.extraHosts, ...apt.security.extraHosts])],
  };
}

/**
 * The pinned Node runtime inside every image that carries the tunnel (the ctun images
 * and the simulator image built with --installCtun yes); ctun-run's readiness probes
 * run it too.
 */
export const IMAGE_NODE_BINARY = '/opt/ctun/bin/node';

const CTUN_WRAPPER = `#!/bin/sh
# ctun inside an image: the pinned Node runtime running the one bundled script; the
# TAP addon sits beside it in native/ (and CTUN_ADDON names it).
${tunnelEnvExports().join('\n')}
exec ${IMAGE_NODE_BINARY} ${TUNNEL_NODE_FLAGS.join(' ')} /opt/ctun/ctun.mjs "$@"
`;

/** The step of the tunnel runtime image (Node, the `ctun` wrapper and bundle, the addon), which the other tunnel images copy from. */
export function planRuntime(paths: ProjectPaths, options: Pick<CommonBuildOptions, 'ctunEntry' | 'noCache' | 'tagPrefix'>): ImageStep {
  const image = prefixed(runtimeImageName(), options);
  return {
    id: 'ctun-runtime',
    title: `tunnel runtime ${image}`,
    tags: [image],
    dockerfile: { template: 'ctun-runtime.Dockerfile', values: {} },
    context: [
      // Stripped: 18 MB of symbols and debug info that every image would carry and nothing reads.
      { path: IMAGE_NODE_BINARY.slice(1), from: { kind: 'file', path: paths.nodeBinary, mode: 0o755, strip: true } },
      { path: 'opt/ctun/bin/ctun', from: { kind: 'text', text: CTUN_WRAPPER, mode: 0o755 } },
      { path: 'opt/ctun/ctun.mjs', from: { kind: 'bundle', entry: options.ctunEntry ?? paths.ctunEntry } },
      { path: 'opt/ctun/native/ctun_tap.node', from: { kind: 'file', path: paths.addon, mode: 0o755 } },
    ],
    labels: ctunLabels('image/ctun-runtime', {}),
    extraHosts: [],
    noCache: options.noCache ?? false,
    tunnel: { from: 'context' },
  };
}

const ROLES = {
  'local-server': { image: () => metadata.images.localServer, role: 'server, local mode (integrated deployment)', entry: ['ctun', 'server', '--mode', 'local'] },
  'separate-server': { image: () => metadata.images.separateServer, role: 'server, separate mode (TAP, forwarding, NAT)', entry: ['ctun', 'server', '--mode', 'separate'] },
  'local-client': { image: () => metadata.images.localClient, role: 'client, local mode', entry: ['ctun', 'client'] },
  'separate-client': { image: () => metadata.images.separateClient, role: 'client, separate mode', entry: ['ctun', 'client'] },
} as const;

export type CtunImageId = keyof typeof ROLES;
export const CTUN_IMAGE_IDS = Object.keys(ROLES) as CtunImageId[];

/** The plan of `ctun-build ctun acceptDspaceEula`: the runtime, then the four ctun images. */
export function planCtun(given: CommonBuildOptions, paths: ProjectPaths, only: CtunImageId[] = CTUN_IMAGE_IDS): BuildPlan {
  checkEula(given.eula);
  const options = normalizeBuildOptions(given);
  const base = resolveBase(options);
  const apt = planApt(base, options);
  const a = aptContext(apt);
  const runtime = planRuntime(paths, options);
  const images: ImageStep[] = [runtime];
  for (const id of only) {
    const r = ROLES[id];
    const name = prefixed(r.image(), options);
    const step: ImageStep = {
      id,
      title: name,
      tags: [name],
      dockerfile: {
        template: 'ctun.Dockerfile',
        values: {
          image: name,
          role: r.role,
          runtimeImage: runtime.tags[0]!,
          baseImage: base.image,
          aptSources: a.section,
          port: String(metadata.defaultPort),
          entrypoint: JSON.stringify(r.entry),
        },
      },
      // The base only lends the tunnel's tools: the image is the root this script gathers.
      context: [...a.files, { path: 'tunnel-root.sh', from: { kind: 'template', template: 'image/tunnel-root.sh', values: {}, mode: 0o755 } }],
      labels: ctunLabels(`image/${id}`, { 'io.ctun.base': base.image }),
      extraHosts: a.extraHosts,
      noCache: options.noCache ?? false,
      tunnel: { from: runtime.tags[0]! },
    };
    if (options.network) step.network = options.network;
    images.push(step);
  }
  const plan: BuildPlan = {
    command: 'ctun',
    mode: options.archiveServer || options.dockerRepository ? 'offline' : 'online',
    eula: 'accepted',
    base,
    apt,
    runtime: { image: runtime.tags[0]!, nodeBinary: paths.nodeBinary, entry: options.ctunEntry ?? paths.ctunEntry, addon: paths.addon },
    images,
  };
  if (options.network) plan.network = options.network;
  return plan;
}

export interface VeosOptions extends CommonBuildOptions {
  mode: 'online' | 'offline';
  /** Tag of the image, e.g. dspace/veos/simulator:23.1. */
  image: string;
  tarball: TarballInfo;
  /** `--installCtun yes`: the tunnel server inside, started with CTUN_START=yes. */
  installCtun: boolean;
  /** Online: pip index; default PyPI. */
  pipIndexUrl?: string;
  /** `--pipTrustedHost`: accept an http pip index (pip's `--trusted-host`); default false: http is refused. */
  pipTrustedHost?: boolean;
  /** A directory of wheels (offline: required, default the tarball's directory). */
  wheels?: { dir: string; files: string[] };
  /** .NET package server and its key (URL or file). */
  dotnetServer?: string;
  dotnetKey?: string;
  /**
   * Packages to install from the .NET feed (`--dotnetPackages`); giving them installs
   * them whatever the tarball's manifest says. Default: dotnet-runtime-6.0 when the
   * manifest needs .NET.
   */
  dotnetPackages?: string[];
}

function quote(s: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function versionMatches(version: string, spec: string): boolean {
  if (spec === '*') return true;
  const prefix = spec.replace(/\.\*$/, '');
  return version === prefix || version.startsWith(`${prefix}.`);
}

export interface WheelShortfall {
  name: string;
  version: string;
  /** Versions of that distribution that are there but do not fit. */
  found: string[];
}

/** The required distributions that no wheel in `files` provides in a fitting version. */
export function checkWheels(files: string[]): WheelShortfall[] {
  const have = files
    .filter((f) => f.endsWith('.whl'))
    .map((f) => {
      const [name, version] = f.split('-');
      return { name: name!.toLowerCase().replace(/[-.]/g, '_'), version: version ?? '' };
    });
  const out: WheelShortfall[] = [];
  for (const w of REQUIRED_WHEELS) {
    const same = have.filter((h) => h.name === w.name);
    if (!same.some((h) => versionMatches(h.version, w.version))) out.push({ name: w.name, version: w.version, found: same.map((h) => h.version) });
  }
  return out;
}

/** The wheels missing from `files` for the required distributions (names only). */
export function missingWheels(files: string[]): string[] {
  return checkWheels(files).map((w) => w.name);
}

/** `pip download` of exactly what is short, into `dir`. */
export function pipDownloadLine(short: WheelShortfall[], dir: string): string {
  const reqs = short.map((w) => quote(w.version === '*' ? w.name.replace(/_/g, '-') : `${w.name.replace(/_/g, '-')}==${w.version}`));
  return `pip download --no-cache-dir --only-binary=:all: ${reqs.join(' ')} -d ${quote(dir)}`;
}

/** The error for a wheels folder that lacks a required wheel, or undefined when it has them all. */
export function wheelsProblem(wheels: { dir: string; files: string[] }): CtunError | undefined {
  const short = checkWheels(wheels.files);
  if (!short.length) return undefined;
  const what = short.map((w) => `${w.name}${w.version === '*' ? '' : ` ${w.version}`}${w.found.length ? ` (found ${w.found.join(', ')})` : ''}`);
  return new CtunError('WHEELS_MISSING', `${wheels.dir} lacks wheels for: ${what.join('; ')}`, {
    hint: `on a machine with Internet access: ${pipDownloadLine(short, wheels.dir)}, then copy them here`,
    exitCode: ExitCode.Usage,
  });
}

export function planPython(options: VeosOptions): PythonPlan {
  const requirements = [...PYTHON_REQUIREMENTS];
  if (options.wheels) {
    const problem = wheelsProblem(options.wheels);
    if (problem) throw problem;
    return { source: 'wheels', dir: options.wheels.dir, files: options.wheels.files.filter((f) => f.endsWith('.whl')).sort(), requirements };
  }
  if (options.mode === 'offline') {
    throw new CtunError('WHEELS_REQUIRED', 'an offline build installs Python packages only from wheels, and no wheels directory was given', {
      hint: 'put the wheels beside the tarball or give --wheels DIR',
      exitCode: ExitCode.Usage,
    });
  }
  const indexUrl = (options.pipIndexUrl ?? DEFAULT_PIP_INDEX).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(indexUrl);
  } catch {
    throw new CtunError('BAD_PIP_INDEX', `the pip index "${indexUrl}" is not a URL`, { exitCode: ExitCode.Usage });
  }
  const plan: PythonPlan = { source: 'index', indexUrl, requirements };
  if (url.protocol === 'http:') plan.trustedHost = url.hostname;
  return plan;
}

function pythonSection(p: PythonPlan): { section: string; files: ContextFile[]; buildArgs: Record<string, string> } {
  const reqs = p.requirements.map(quote).join(' ');
  const venv = 'python3 -m venv /opt/supervisor';
  if (p.source === 'wheels') {
    return {
      section: [
        'COPY wheels/ /tmp/wheels/',
        `RUN ${venv} \\`,
        ` && /opt/supervisor/bin/pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /tmp/wheels ${reqs}`,
      ].join('\n'),
      files: [{ path: 'wheels', from: { kind: 'dir', path: p.dir, files: p.files } }],
      buildArgs: {},
    };
  }
  // The index (and its host) are build arguments: the RUN line names variables only.
  const trusted = p.trustedHost ? ' --trusted-host "$PIP_TRUSTED_HOST"' : '';
  return {
    section: [
      'ARG PIP_INDEX_URL',
      ...(p.trustedHost ? ['ARG PIP_TRUSTED_HOST'] : []),
      `RUN ${venv} \\`,
      ` && /opt/supervisor/bin/pip install --no-cache-dir --disable-pip-version-check --index-url "$PIP_INDEX_URL"${trusted} ${reqs}`,
    ].join('\n'),
    files: [],
    buildArgs: { PIP_INDEX_URL: p.indexUrl, ...(p.trustedHost ? { PIP_TRUSTED_HOST: p.trustedHost } : {}) },
  };
}

export const DEFAULT_DOTNET_KEY = 'https://packages.microsoft.com/keys/microsoft.asc';

/**
 * The .NET feed as host, IP or URL, like the apt mirrors: a URL is taken as it is; a
 * host or an IP is a mirror of packages.microsoft.com with its paths
 * (`http://HOST/ubuntu/22.04/prod`).
 */
export function resolveDotnetServer(given: string, release: Release): string {
  const value = given.trim();
  const path = `${release.distro}/${release.version}/prod`;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    try {
      new URL(value);
    } catch {
      throw new CtunError('BAD_MIRROR', `the .NET server "${given}" is not a valid URL`, { exitCode: ExitCode.Usage });
    }
    return value.replace(/\/+$/, '');
  }
  const bare = value.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare)) return `http://${isIP(bare) === 6 ? `[${bare}]` : bare}/${path}`;
  if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(value)) {
    throw new CtunError('BAD_MIRROR', `the .NET server "${given}" is neither a host name, an IP nor a URL`, {
      hint: `give e.g. dotnet-mirror.example.org, 10.0.0.9 (both read as http://HOST/${path}) or a full URL`,
      exitCode: ExitCode.Usage,
    });
  }
  return `http://${value}/${path}`;
}

export function planDotnet(options: VeosOptions, release: Release | undefined): DotnetPlan {
  const r = release ?? resolveRelease('ubuntu');
  const server = options.dotnetServer ? resolveDotnetServer(options.dotnetServer, r) : `https://packages.microsoft.com/${r.distro}/${r.version}/prod`;
  const key = options.dotnetKey ?? DEFAULT_DOTNET_KEY;
  const forced = (options.dotnetPackages?.length ?? 0) > 0;
  const needed = forced || options.tarball.needsDotnet;
  if (needed && options.mode === 'offline' && (!options.dotnetServer || !options.dotnetKey)) {
    throw new CtunError('DOTNET_SOURCE_REQUIRED', `an offline build installs .NET only from a given feed, and ${!options.dotnetServer ? 'no .NET server' : 'no key file'} was given`, {
      hint: 'give MICROSOFT_DOTNET_SERVER and MICROSOFT_PUBLIC_KEY_FILE (or --dotnetServer and --dotnetKey)',
      exitCode: ExitCode.Usage,
    });
  }
  const isUrl = /^https?:\/\//.test(key);
  return {
    needed,
    reason: forced
      ? `--dotnetPackages ${options.dotnetPackages!.join(' ')} given`
      : needed
        ? `the tarball's manifest says ${options.tarball.product} needs .NET`
        : `skipped: the tarball's manifest says ${options.tarball.product} needs no .NET`,
    server: server.replace(/\/+$/, ''),
    suite: r.suite,
    key,
    keyring: isUrl ? '/usr/share/keyrings/ctun-dotnet.asc' : '/usr/share/keyrings/ctun-dotnet.gpg',
    packages: forced ? options.dotnetPackages! : ['dotnet-runtime-6.0'],
  };
}

function dotnetSection(d: DotnetPlan): { section: string; files: ContextFile[]; buildArgs: Record<string, string> } {
  if (!d.needed) return { section: '', files: [], buildArgs: {} };
  const isUrl = /^https?:\/\//.test(d.key);
  const files: ContextFile[] = isUrl ? [] : [{ path: 'dotnet/keyring.gpg', from: { kind: 'keyring', path: d.key } }];
  // signed-by: this key vouches for this source only, never for apt as a whole. The
  // server, the key URL and the packages are build arguments, not Dockerfile text.
  return {
    section: [
      'ARG DOTNET_SERVER',
      'ARG DOTNET_PACKAGES',
      ...(isUrl ? ['ARG DOTNET_KEY_URL', `ADD \${DOTNET_KEY_URL} ${d.keyring}`] : [`COPY dotnet/keyring.gpg ${d.keyring}`]),
      `RUN chmod 0644 ${d.keyring} \\`,
      ` && echo "deb [signed-by=${d.keyring}] $DOTNET_SERVER ${d.suite} main" > /etc/apt/sources.list.d/microsoft-dotnet.list \\`,
      ' && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $DOTNET_PACKAGES \\',
      ' && rm -rf /var/lib/apt/lists/*',
    ].join('\n'),
    files,
    buildArgs: { DOTNET_SERVER: d.server, DOTNET_PACKAGES: d.packages.join(' '), ...(isUrl ? { DOTNET_KEY_URL: d.key } : {}) },
  };
}

const CTUN_RUNTIME_SECTION = [
  'COPY --from=runtime /opt/ctun/ /opt/ctun/',
  'ENV CTUN_ADDON=/opt/ctun/native/ctun_tap.node',
  'RUN ln -sf /opt/ctun/bin/ctun /usr/local/bin/ctun && ctun --version',
].join('\n');

function supervisorCommand(argv: string[]): string {
  // supervisord splits `command` with shlex and expands %(...)s, so % is doubled.
  return argv.map((a) => quote(a).replace(/%/g, '%%')).join(' ');
}

/**
 * What an offline build lacks of the sources it needs: the apt archive (the security
 * server defaults to it), the .NET server and key when .NET is installed. Without
 * them the base image's own sources would be used, which reach the Internet.
 */
export function offlineShortfall(o: Pick<VeosOptions, 'mode' | 'archiveServer' | 'securityServer' | 'dotnetServer' | 'dotnetKey' | 'dotnetPackages'> & { tarball?: Pick<TarballInfo, 'needsDotnet'> }): string[] {
  if (o.mode !== 'offline') return [];
  const missing: string[] = [];
  if (!o.archiveServer && !o.securityServer) missing.push('the apt archive server (UBUNTU_ARCHIVE_SERVER, --archiveServer)');
  if ((o.dotnetPackages?.length ?? 0) > 0 || o.tarball?.needsDotnet) {
    if (!o.dotnetServer) missing.push('the .NET server (MICROSOFT_DOTNET_SERVER, --dotnetServer)');
    if (!o.dotnetKey) missing.push('its public key file (MICROSOFT_PUBLIC_KEY_FILE, --dotnetKey)');
  }
  return missing;
}

/** The one-line form of an offline build, for hints. */
export const OFFLINE_FORM =
  'ctun-build veos offline acceptDspaceEula IMAGE TARBALL ARCHIVE SECURITY DOTNET_SERVER KEY_FILE [--dockerRepository R], or --offline with --archiveServer A --securityServer S --dotnetServer D --dotnetKey K';

export function offlineRefusal(missing: string[]): CtunError {
  return new CtunError('OFFLINE_SOURCES_MISSING', `an offline build needs every source it installs from, and lacks ${missing.join(', ')}`, {
    hint: `give them: ${OFFLINE_FORM}`,
    exitCode: ExitCode.Usage,
  });
}

/** The file in the build context that holds --installCommand. */
const INSTALL_COMMAND_FILE = 'ctun-install-command.sh';

/** The plan of `ctun-build veos online|offline acceptDspaceEula IMAGE TARBALL`. */
export function planVeos(given: VeosOptions, paths: ProjectPaths): BuildPlan {
  checkEula(given.eula);
  const missing = offlineShortfall(given);
  if (missing.length) throw offlineRefusal(missing);
  const options = normalizeBuildOptions(given, given.tarball);
  const base = resolveBase(options);
  const apt = planApt(base, options);
  const a = aptContext(apt);
  const python = planPython(options);
  const py = pythonSection(python);
  const dotnet = planDotnet(options, base.release);
  const dn = dotnetSection(dotnet);
  const t = options.tarball;
  // A custom install command travels as a file, so no quoting of it reaches the Dockerfile.
  const installFiles: ContextFile[] = t.installCommand ? [{ path: `veos/${INSTALL_COMMAND_FILE}`, from: { kind: 'text', text: `#!/bin/sh\nset -e\n${t.installCommand}\n`, mode: 0o755 } }] : [];
  const installCommand = t.installCommand ? `sh /tmp/veos/${INSTALL_COMMAND_FILE}` : `sh ./${t.installScript}`;
  const images: ImageStep[] = [];
  let runtime: ImageStep | undefined;
  if (options.installCtun) {
    runtime = planRuntime(paths, options);
    images.push(runtime);
  }
  const supervisorFiles: ContextFile[] = [
    { path: 'supervisor/supervisord.conf', from: { kind: 'template', template: 'supervisor/supervisord.conf', values: {} } },
    { path: 'supervisor/entrypoint.sh', from: { kind: 'template', template: 'supervisor/entrypoint.sh', values: {}, mode: 0o755 } },
    {
      path: 'supervisor/conf.d/veos.conf',
      from: {
        kind: 'template',
        template: 'supervisor/veos.conf',
        values: { command: supervisorCommand(t.simulatorArgv.map((x) => x.replace(/\{installDir\}/g, t.installDir))), installDir: t.installDir },
      },
    },
  ];
  if (options.installCtun) {
    supervisorFiles.push({ path: 'supervisor/conf.d/ctun.conf', from: { kind: 'template', template: 'supervisor/ctun.conf', values: {} } });
  }
  const exposed = options.installCtun ? [`${metadata.defaultPort}/udp`, `${metadata.defaultPort}/tcp`] : [];
  const step: ImageStep = {
    id: options.installCtun ? 'veos-ctun' : 'veos',
    title: prefixed(options.image, options),
    tags: [prefixed(options.image, options)],
    dockerfile: {
      template: 'veos.Dockerfile',
      values: {
        image: prefixed(options.image, options),
        runtimeStage: runtime ? `FROM ${runtime.tags[0]} AS runtime\n` : '',
        baseImage: base.image,
        aptSources: a.section,
        dotnet: dn.section,
        pythonPackages: py.section,
        topDir: t.topDir || '.',
        acceptEula: 'yes',
        installDir: t.installDir,
        installCommand,
        ctunRuntime: options.installCtun ? CTUN_RUNTIME_SECTION : '',
        exposed: [...t.ports, ...exposed].join(' '),
      },
    },
    context: [
      ...a.files,
      ...py.files,
      ...dn.files,
      // A fixed name: the file's own name never reaches a RUN line.
      { path: 'veos/simulator.tar.gz', from: { kind: 'file', path: t.path } },
      ...installFiles,
      ...supervisorFiles,
    ],
    labels: ctunLabels(options.installCtun ? 'image/veos-ctun' : 'image/veos', {
      'io.ctun.base': base.image,
      'io.ctun.veos.release': t.release,
      'io.ctun.veos.product': t.product,
      'io.ctun.install-ctun': String(options.installCtun),
    }),
    extraHosts: a.extraHosts,
    noCache: options.noCache ?? false,
    ...(runtime ? { tunnel: { from: runtime.tags[0]! } } : {}),
  };
  const buildArgs = { ...py.buildArgs, ...dn.buildArgs };
  if (Object.keys(buildArgs).length) step.buildArgs = buildArgs;
  if (options.network) step.network = options.network;
  images.push(step);
  const plan: BuildPlan = {
    command: 'veos',
    mode: options.mode,
    eula: 'accepted',
    base,
    apt,
    python,
    dotnet,
    tarball: t,
    images,
  };
  if (runtime) plan.runtime = { image: runtime.tags[0]!, nodeBinary: paths.nodeBinary, entry: options.ctunEntry ?? paths.ctunEntry, addon: paths.addon };
  if (options.network) plan.network = options.network;
  return plan;
}
