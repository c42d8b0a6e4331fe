import { mkdtemp, readdir, readFile, rm, unlink, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import * as tar from 'tar';
import { CtunError, ExitCode, type Logger } from '../common/index.js';
import { ctunLabels, type DockerEngine } from '../docker/index.js';
import { isIP } from 'node:net';
import { checkImageRef, checkMirror, checkPackageName, throwInputProblems, type InputProblem } from './inputs.js';
import {
  DEFAULT_SUITE,
  mirrorFromSources,
  renderAptSources,
  resolveRelease,
  type AptSource,
  type Distro,
  type Release,
  type RenderedSources,
} from './apt.js';

/**
 * `ctun-build base`: a base image made from an apt mirror (debootstrap into a
 * temporary directory, then imported as an image) for sites that have a package
 * mirror but no image registry.
 */
export interface BaseOptions {
  /** Default `debian`. */
  distro?: Distro;
  /** Code name or version; default bookworm (Debian) / jammy (Ubuntu). */
  suite?: string;
  /** Archive mirror as host, IP or URL; default: the host's apt configuration. */
  mirror?: string;
  /** Security mirror; default: the host's, else the archive mirror's host. */
  securityMirror?: string;
  /** Tags; default `<distro>:<version>` and `<distro>:<suite>` (debian:12, debian:bookworm). */
  tags?: string[];
  /** Packages added to the minimal set; default ca-certificates. */
  include?: string[];
}

export interface BasePlan {
  command: 'base';
  release: Release;
  mirror: { archive: string; security: string; from: string };
  variant: 'minbase';
  include: string[];
  tags: string[];
  labels: Record<string, string>;
  /** The image's apt sources, in the release's own format. */
  sources: RenderedSources;
  /** Keyring debootstrap verifies the mirror with. */
  keyring: string;
}

/** The user-given mirrors, tags and packages, checked (all problems at once) and normalized. */
function checkBaseInputs(options: BaseOptions): BaseOptions {
  const problems: InputProblem[] = [];
  const out: BaseOptions = { ...options };
  for (const key of ['mirror', 'securityMirror'] as const) {
    const v = options[key];
    if (v === undefined) continue;
    const r = checkMirror(key === 'mirror' ? '--mirror' : '--securityMirror', v);
    if (r.ok) out[key] = r.value;
    else problems.push(...r.problems);
  }
  for (const t of options.tags ?? []) {
    const r = checkImageRef('--tag', t);
    if (!r.ok) problems.push(...r.problems);
  }
  for (const p of options.include ?? []) {
    const r = checkPackageName('--include', p);
    if (!r.ok) problems.push(...r.problems);
  }
  throwInputProblems(problems);
  return out;
}

function mirrorUrl(given: string, distro: Distro, role: 'archive' | 'security'): string {
  const v = given.trim().replace(/\/+$/, '');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return v;
  const host = isIP(v) === 6 ? `[${v}]` : v;
  const path = distro === 'ubuntu' ? 'ubuntu' : role === 'security' ? 'debian-security' : 'debian';
  return `http://${host}/${path}`;
}

/** Pure: the base plan from options and the host's apt sources. */
export function planBaseImage(given: BaseOptions, hostSources: AptSource[]): BasePlan {
  const options = checkBaseInputs(given);
  const distro = options.distro ?? 'debian';
  const release = resolveRelease(distro, options.suite ?? DEFAULT_SUITE[distro]);
  let archive: string;
  let security: string | undefined;
  let from: string;
  if (options.mirror) {
    archive = mirrorUrl(options.mirror, distro, 'archive');
    from = '--mirror';
  } else {
    const host = mirrorFromSources(hostSources, release.suite);
    const looksRight = host && (distro === 'ubuntu' ? /ubuntu/.test(host.archive) : !/ubuntu/.test(host.archive));
    if (!host || !looksRight) {
      throw new CtunError('NO_MIRROR', `the host's apt configuration names no ${distro} mirror to bootstrap ${release.suite} from`, {
        hint: `give one with --mirror (host, IP or URL of a ${distro} archive)`,
        exitCode: ExitCode.Usage,
      });
    }
    archive = host.archive;
    security = host.security;
    from = "the host's apt configuration";
  }
  if (options.securityMirror) security = mirrorUrl(options.securityMirror, distro, 'security');
  if (!security) {
    const u = new URL(archive);
    security = distro === 'ubuntu' ? archive : `${u.protocol}//${u.host}/debian-security`;
  }
  const tags = options.tags?.length ? options.tags : [`${distro}:${release.version}`, `${distro}:${release.suite}`];
  return {
    command: 'base',
    release,
    mirror: { archive, security, from },
    variant: 'minbase',
    include: options.include ?? ['ca-certificates'],
    tags: [...new Set(tags)],
    labels: ctunLabels('image/base', { 'io.ctun.base.suite': release.suite, 'io.ctun.base.mirror': archive }),
    sources: renderAptSources(release, { archive, security }),
    keyring: `/usr/share/keyrings/${distro}-archive-keyring.gpg`,
  };
}

export interface BaseExecuteOptions {
  docker: DockerEngine;
  logger: Logger;
  /** Each output line of debootstrap and the import. */
  onOutput?: (line: string) => void;
  /** Where the temporary root goes; default the OS temp dir. */
  tmpDir?: string;
  /** Reports the phase, for progress output. */
  onPhase?: (phase: 'debootstrap' | 'configure' | 'import' | 'tag') => void;
}

async function unmountBelow(dir: string): Promise<void> {
  const mounts = await readFile('/proc/mounts', 'utf8').catch(() => '');
  const below = mounts
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of below) await execa('umount', ['-l', m], { reject: false });
}

/** Runs the base plan: debootstrap, configure, import, tag. The temp dir always goes. */
export async function executeBasePlan(plan: BasePlan, options: BaseExecuteOptions): Promise<{ imageId: string; tags: string[] }> {
  const { docker, logger } = options;
  if (process.getuid?.() !== 0) {
    throw new CtunError('BASE_NEEDS_ROOT', 'debootstrap must run as root', { hint: 'run ctun-build base with sudo', exitCode: ExitCode.Privileges });
  }
  const which = await execa('debootstrap', ['--version'], { reject: false });
  if (which.exitCode !== 0 && which.failed) {
    throw new CtunError('TOOL_MISSING', 'debootstrap is not installed', { hint: 'apt-get install debootstrap', exitCode: ExitCode.Failure });
  }
  await docker.ping();
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'ctun-base-'));
  const rootfs = join(dir, 'rootfs');
  try {
    options.onPhase?.('debootstrap');
    const args = [
      `--variant=${plan.variant}`,
      `--include=${plan.include.join(',')}`,
      `--keyring=${plan.keyring}`,
      plan.release.suite,
      rootfs,
      plan.mirror.archive,
    ];
    logger.info('debootstrap', { suite: plan.release.suite, mirror: plan.mirror.archive });
    const tail: string[] = [];
    const child = execa('debootstrap', args, { all: true, reject: false });
    const rl = createInterface({ input: child.all! });
    rl.on('line', (line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      options.onOutput?.(line);
    });
    const result = await child;
    if (result.exitCode !== 0) {
      const log = await readFile(join(rootfs, 'debootstrap', 'debootstrap.log'), 'utf8').catch(() => '');
      const logTail = log.split('\n').filter(Boolean).slice(-20);
      throw new CtunError(
        'DEBOOTSTRAP_FAILED',
        `debootstrap of ${plan.release.suite} from ${plan.mirror.archive} failed (exit ${result.exitCode})\n` +
          [...tail, ...(logTail.length ? ['--- debootstrap.log ---', ...logTail] : [])].map((l) => `  | ${l}`).join('\n'),
        { hint: `check that ${plan.mirror.archive} is an apt mirror of ${plan.release.distro} reachable from here, and that ${plan.keyring} exists` },
      );
    }
    options.onPhase?.('configure');
    await unmountBelow(rootfs);
    // The image's apt sources in its release's own format, archive and security.
    for (const f of ['etc/apt/sources.list']) await unlink(join(rootfs, f)).catch(() => undefined);
    await mkdir(join(rootfs, 'etc/apt/sources.list.d'), { recursive: true });
    await writeFile(join(rootfs, plan.sources.path), plan.sources.content);
    // Package lists and archives belong to the moment of the build, not the image.
    for (const d of ['var/lib/apt/lists', 'var/cache/apt/archives']) {
      for (const n of await readdir(join(rootfs, d)).catch(() => [] as string[])) {
        if (n !== 'partial' && n !== 'lock') await rm(join(rootfs, d, n), { recursive: true, force: true });
      }
    }
    for (const f of ['var/cache/apt/pkgcache.bin', 'var/cache/apt/srcpkgcache.bin']) await rm(join(rootfs, f), { force: true });
    // Docker provides these at run time.
    await writeFile(join(rootfs, 'etc/resolv.conf'), '');
    await writeFile(join(rootfs, 'etc/hostname'), '');

    options.onPhase?.('import');
    const entries = (await readdir(rootfs)).sort();
    const skip = /^(dev|proc|sys|run|tmp|debootstrap)\/./;
    const stream = tar.create(
      { cwd: rootfs, portable: false, follow: false, filter: (p: string) => !skip.test(p.replace(/^\.\//, '')) && p !== 'debootstrap' },
      entries,
    ) as unknown as NodeJS.ReadableStream;
    const [first, ...rest] = plan.tags;
    const { repo, tag } = splitRef(first!);
    const labels = Object.entries(plan.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
    const { imageId } = await docker.importImage(
      { rootfs: stream, repo, tag, changes: [`LABEL ${labels}`, 'ENV LANG=C.UTF-8', 'CMD ["bash"]'] },
      (e) => {
        if (e.type === 'status') options.onOutput?.(e.status);
      },
    );
    options.onPhase?.('tag');
    for (const t of rest) await docker.tagImage(first!, t);
    logger.info('base-image-ready', { image: first, tags: plan.tags.join(','), id: imageId });
    return { imageId, tags: plan.tags };
  } finally {
    await unmountBelow(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

function splitRef(ref: string): { repo: string; tag: string } {
  const i = ref.lastIndexOf(':');
  return i > ref.lastIndexOf('/') ? { repo: ref.slice(0, i), tag: ref.slice(i + 1) } : { repo: ref, tag: 'latest' };
}

