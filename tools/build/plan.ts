import { basename, posix } from 'node:path';
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

/**
 * A BuildPlan is data: everything a build will do, resolved from the options before
 * anything runs, printable as JSON (`--print-plan`) and tested without Docker.
 * Online and offline are two ways to fill it; one executor carries it out.
 */

/** The literal the seed's build scripts require to accept the dSPACE EULA. */
export const EULA_LITERAL = 'acceptDspaceEula';

/** Where a file of a build context comes from. */
export type ContextSource =
  | { kind: 'file'; path: string; mode?: number }
  | { kind: 'text'; text: string; mode?: number }
  | { kind: 'template'; template: string; values: Record<string, string>; mode?: number }
  | { kind: 'bundle'; entry: string }
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
  /** Network of the RUN steps; default the daemon's. */
  network?: string;
  noCache: boolean;
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

/** Distributions the wheels directory must hold (toposort comes with dependent-startup). */
export const REQUIRED_WHEELS = ['setuptools', 'supervisor', 'supervisor_console', 'supervisord_dependent_startup', 'toposort'] as const;

export const DEFAULT_PIP_INDEX = 'https://pypi.org/simple';

export type PythonPlan =
  | { source: 'index'; indexUrl: string; trustedHost?: string; requirements: string[] }
  | { source: 'wheels'; dir: string; files: string[]; requirements: string[] };

export interface DotnetPlan {
  needed: boolean;
  /** Why it is installed or skipped. */
  reason: string;
  server: string;
  /** URL or file of the server's public key. */
  key: string;
  packages: string[];
}

/** What the executor needs to know about the simulator tarball (from inspecting it). */
export interface TarballInfo {
  path: string;
  product: string;
  release: string;
  version: string;
  /** Top-level directory inside the tarball ('' when files are at the top). */
  topDir: string;
  installScript: string;
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

const CTUN_WRAPPER = `#!/bin/sh
# ctun inside an image: the pinned Node runtime running the one bundled script; the
# TAP addon sits beside it in native/ (and CTUN_ADDON names it).
exec /opt/ctun/bin/node /opt/ctun/ctun.mjs "$@"
`;

function runtimeStep(paths: ProjectPaths, options: CommonBuildOptions, planHash: Record<string, string>): ImageStep {
  const image = runtimeImageName();
  return {
    id: 'ctun-runtime',
    title: `tunnel runtime ${image}`,
    tags: [image],
    dockerfile: { template: 'ctun-runtime.Dockerfile', values: {} },
    context: [
      { path: 'opt/ctun/bin/node', from: { kind: 'file', path: paths.nodeBinary, mode: 0o755 } },
      { path: 'opt/ctun/bin/ctun', from: { kind: 'text', text: CTUN_WRAPPER, mode: 0o755 } },
      { path: 'opt/ctun/ctun.mjs', from: { kind: 'bundle', entry: options.ctunEntry ?? paths.ctunEntry } },
      { path: 'opt/ctun/native/ctun_tap.node', from: { kind: 'file', path: paths.addon, mode: 0o755 } },
    ],
    labels: ctunLabels('image/ctun-runtime', planHash),
    extraHosts: [],
    noCache: options.noCache ?? false,
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
export function planCtun(options: CommonBuildOptions, paths: ProjectPaths, only: CtunImageId[] = CTUN_IMAGE_IDS): BuildPlan {
  checkEula(options.eula);
  const base = resolveBase(options);
  const apt = planApt(base, options);
  const a = aptContext(apt);
  const runtime = runtimeStep(paths, options, {});
  const images: ImageStep[] = [runtime];
  for (const id of only) {
    const r = ROLES[id];
    const step: ImageStep = {
      id,
      title: r.image(),
      tags: [r.image()],
      dockerfile: {
        template: 'ctun.Dockerfile',
        values: {
          image: r.image(),
          role: r.role,
          runtimeImage: runtime.tags[0]!,
          baseImage: base.image,
          aptSources: a.section,
          port: String(metadata.defaultPort),
          entrypoint: JSON.stringify(r.entry),
        },
      },
      context: a.files,
      labels: ctunLabels(`image/${id}`, { 'io.ctun.base': base.image }),
      extraHosts: a.extraHosts,
      noCache: options.noCache ?? false,
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
  /** A directory of wheels (offline: required, default the tarball's directory). */
  wheels?: { dir: string; files: string[] };
  /** .NET package server and its key (URL or file). */
  dotnetServer?: string;
  dotnetKey?: string;
}

function quote(s: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The wheels missing from `files` for the required distributions. */
export function missingWheels(files: string[]): string[] {
  const names = files.filter((f) => f.endsWith('.whl')).map((f) => f.split('-')[0]!.toLowerCase().replace(/[-.]/g, '_'));
  return REQUIRED_WHEELS.filter((w) => !names.includes(w));
}

export function planPython(options: VeosOptions): PythonPlan {
  const requirements = [...PYTHON_REQUIREMENTS];
  if (options.wheels) {
    const missing = missingWheels(options.wheels.files);
    if (missing.length) {
      throw new CtunError('WHEELS_MISSING', `${options.wheels.dir} lacks wheels for: ${missing.join(', ')}`, {
        hint: `on a machine with Internet access: pip download --no-cache-dir ${PYTHON_REQUIREMENTS.slice(1).map((r) => quote(r)).join(' ')} setuptools -d ${options.wheels.dir}`,
        exitCode: ExitCode.Usage,
      });
    }
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

function pythonSection(p: PythonPlan): { section: string; files: ContextFile[] } {
  const reqs = p.requirements.map(quote).join(' ');
  const venv = 'python3 -m venv /opt/supervisor';
  if (p.source === 'wheels') {
    return {
      section: [
        'COPY wheels/ /tmp/wheels/',
        `RUN ${venv} \\`,
        ` && /opt/supervisor/bin/pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /tmp/wheels ${reqs} \\`,
        ' && rm -rf /tmp/wheels',
      ].join('\n'),
      files: [{ path: 'wheels', from: { kind: 'dir', path: p.dir, files: p.files } }],
    };
  }
  const trusted = p.trustedHost ? ` --trusted-host ${p.trustedHost}` : '';
  return {
    section: [
      `RUN ${venv} \\`,
      ` && /opt/supervisor/bin/pip install --no-cache-dir --disable-pip-version-check --index-url ${p.indexUrl}${trusted} ${reqs}`,
    ].join('\n'),
    files: [],
  };
}

export const DEFAULT_DOTNET_KEY = 'https://packages.microsoft.com/keys/microsoft.asc';

export function planDotnet(options: VeosOptions, release: Release | undefined): DotnetPlan {
  const r = release ?? resolveRelease('ubuntu');
  const server = options.dotnetServer ?? `https://packages.microsoft.com/${r.distro}/${r.version}/prod`;
  const key = options.dotnetKey ?? DEFAULT_DOTNET_KEY;
  const needed = options.tarball.needsDotnet;
  return {
    needed,
    reason: needed
      ? `the tarball's manifest says ${options.tarball.product} needs .NET`
      : `skipped: the tarball's manifest says ${options.tarball.product} needs no .NET`,
    server,
    key,
    packages: ['dotnet-runtime-6.0'],
  };
}

function dotnetSection(d: DotnetPlan, release: Release | undefined): { section: string; files: ContextFile[] } {
  if (!d.needed) return { section: '', files: [] };
  const keyInImage = '/usr/share/keyrings/microsoft-dotnet.asc';
  const isUrl = /^https?:\/\//.test(d.key);
  const files: ContextFile[] = isUrl ? [] : [{ path: 'dotnet/microsoft.asc', from: { kind: 'file', path: d.key } }];
  const suite = release?.suite ?? resolveRelease('ubuntu').suite;
  return {
    section: [
      isUrl ? `ADD ${d.key} ${keyInImage}` : `COPY dotnet/microsoft.asc ${keyInImage}`,
      `RUN chmod 0644 ${keyInImage} \\`,
      ` && echo "deb [signed-by=${keyInImage}] ${d.server} ${suite} main" > /etc/apt/sources.list.d/microsoft-dotnet.list \\`,
      ` && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${d.packages.join(' ')} \\`,
      ' && rm -rf /var/lib/apt/lists/*',
    ].join('\n'),
    files,
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

/** The plan of `ctun-build veos online|offline acceptDspaceEula IMAGE TARBALL`. */
export function planVeos(options: VeosOptions, paths: ProjectPaths): BuildPlan {
  checkEula(options.eula);
  const base = resolveBase(options);
  const apt = planApt(base, options);
  const a = aptContext(apt);
  const python = planPython(options);
  const py = pythonSection(python);
  const dotnet = planDotnet(options, base.release);
  const dn = dotnetSection(dotnet, base.release);
  const t = options.tarball;
  const tarballName = basename(t.path);
  const images: ImageStep[] = [];
  let runtime: ImageStep | undefined;
  if (options.installCtun) {
    runtime = runtimeStep(paths, options, {});
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
    title: options.image,
    tags: [options.image],
    dockerfile: {
      template: 'veos.Dockerfile',
      values: {
        image: options.image,
        tarball: tarballName,
        runtimeStage: runtime ? `FROM ${runtime.tags[0]} AS runtime\n` : '',
        baseImage: base.image,
        aptSources: a.section,
        dotnet: dn.section,
        pythonPackages: py.section,
        topDir: t.topDir || '.',
        acceptEula: 'yes',
        installDir: t.installDir,
        installScript: t.installScript,
        ctunRuntime: options.installCtun ? CTUN_RUNTIME_SECTION : '',
        exposed: [...t.ports, ...exposed].join(' '),
      },
    },
    context: [
      ...a.files,
      ...py.files,
      ...dn.files,
      { path: `veos/${tarballName}`, from: { kind: 'file', path: t.path } },
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
  };
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
