import { readdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CtunError, ExitCode } from '../common/index.js';

/**
 * Apt sources in both formats: the one-line `sources.list` (Ubuntu 22.04, Debian ≤ 11)
 * and deb822 `*.sources` (Ubuntu 24.04, Debian 12). Parsed from the host (the default
 * mirror of `ctun-build base`) and rendered into images when a mirror is given.
 */
export type AptFormat = 'one-line' | 'deb822';
export type Distro = 'debian' | 'ubuntu';

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
}

export interface Release {
  distro: Distro;
  /** `12`, `22.04`, ... */
  version: string;
  /** Code name: `bookworm`, `jammy`, ... */
  suite: string;
  /** The sources format the release's own images use. */
  format: AptFormat;
}

// The releases whose conventions we know; others can be named by code name and
// then use the newer (deb822) format.
const RELEASES: Release[] = [
  { distro: 'debian', version: '10', suite: 'buster', format: 'one-line' },
  { distro: 'debian', version: '11', suite: 'bullseye', format: 'one-line' },
  { distro: 'debian', version: '12', suite: 'bookworm', format: 'deb822' },
  { distro: 'debian', version: '13', suite: 'trixie', format: 'deb822' },
  { distro: 'ubuntu', version: '20.04', suite: 'focal', format: 'one-line' },
  { distro: 'ubuntu', version: '22.04', suite: 'jammy', format: 'one-line' },
  { distro: 'ubuntu', version: '24.04', suite: 'noble', format: 'deb822' },
];

/** The default release of each distribution (the seed builds on Ubuntu 22.04). */
export const DEFAULT_SUITE: Record<Distro, string> = { debian: 'bookworm', ubuntu: 'jammy' };

/** Finds a release by code name or version (`bookworm`, `12`, `22.04`). */
export function resolveRelease(distro: Distro, suiteOrVersion: string = DEFAULT_SUITE[distro]): Release {
  const known = RELEASES.find((r) => r.distro === distro && (r.suite === suiteOrVersion || r.version === suiteOrVersion));
  if (known) return known;
  if (/^[a-z]+$/.test(suiteOrVersion)) return { distro, version: suiteOrVersion, suite: suiteOrVersion, format: 'deb822' };
  throw new CtunError('UNKNOWN_RELEASE', `unknown ${distro} release "${suiteOrVersion}"`, {
    hint: `name it by code name (e.g. ${RELEASES.filter((r) => r.distro === distro).map((r) => r.suite).join(', ')})`,
    exitCode: ExitCode.Usage,
  });
}

/** Reads `distro:tag` image names such as `debian:12`, `ubuntu:22.04`, `reg:5000/ubuntu:noble`. */
export function releaseFromImage(image: string): Release | undefined {
  const m = /(?:^|\/)(debian|ubuntu):([A-Za-z0-9._-]+)$/.exec(image);
  if (!m) return undefined;
  try {
    return resolveRelease(m[1] as Distro, m[2]!.replace(/-slim$/, ''));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- parsing

/** Parses deb822 `.sources` text; stanzas with `Enabled: no` are left out. */
export function parseDeb822(text: string): AptSource[] {
  const out: AptSource[] = [];
  const stanzas = text.split(/\n[ \t]*\n/);
  for (const stanza of stanzas) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#') || raw.trim() === '') continue;
      if (/^[ \t]/.test(raw) && last) {
        fields.set(last, `${fields.get(last)} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    if (!fields.has('uris') || (fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    const source: AptSource = { types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components') };
    const signedBy = fields.get('signed-by');
    if (signedBy) source.signedBy = signedBy;
    out.push(source);
  }
  return out;
}

/** Parses one-line `sources.list` text (`deb [options] uri suite components...`). */
export function parseOneLine(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const source: AptSource = { types: [m[1]!], uris: [m[3]!], suites: [m[4]!], components: m[5]!.split(/\s+/).filter(Boolean) };
    const signed = /signed-by=(\S+)/.exec(m[2] ?? '');
    if (signed) source.signedBy = signed[1]!;
    out.push(source);
  }
  return out;
}

/** All sources of an apt configuration directory (default the host's `/etc/apt`). */
export async function readAptSources(etcApt = '/etc/apt'): Promise<AptSource[]> {
  const out: AptSource[] = [];
  const tryRead = async (p: string) => readFile(p, 'utf8').catch(() => undefined);
  const list = await tryRead(join(etcApt, 'sources.list'));
  if (list) out.push(...parseOneLine(list));
  const dir = join(etcApt, 'sources.list.d');
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  for (const n of names) {
    const text = await tryRead(join(dir, n));
    if (text === undefined) continue;
    if (n.endsWith('.sources')) out.push(...parseDeb822(text));
    else if (n.endsWith('.list')) out.push(...parseOneLine(text));
  }
  return out;
}

export interface Mirror {
  /** Archive URL, e.g. `http://mirror.example/debian`. */
  archive: string;
  /** Security URL, when the configuration has one. */
  security?: string;
}

/**
 * The archive and security mirrors a host's apt configuration uses for `suite`
 * (binary `deb` entries only).
 */
export function mirrorFromSources(sources: AptSource[], suite: string): Mirror | undefined {
  const binary = sources.filter((s) => s.types.includes('deb'));
  const isSecurity = (s: string) => s.endsWith('-security') || s.endsWith('/updates');
  const archive = binary.find((s) => s.suites.includes(suite)) ?? binary.find((s) => s.suites.some((x) => !isSecurity(x)));
  if (!archive?.uris[0]) return undefined;
  const security = binary.find((s) => s.suites.some((x) => x === `${suite}-security` || x === `${suite}/updates`));
  const m: Mirror = { archive: stripSlash(archive.uris[0]) };
  if (security?.uris[0]) m.security = stripSlash(security.uris[0]);
  return m;
}

function stripSlash(u: string): string {
  return u.replace(/\/+$/, '');
}

// ---------------------------------------------------------------- mirrors given by the user

export type MirrorRole = 'archive' | 'security';

export interface ResolvedServer {
  /** What the user wrote. */
  given: string;
  /** host, ip or url. */
  kind: 'host' | 'ip' | 'url';
  /** The URL written into the sources. */
  url: string;
  /** `/etc/hosts` entries the build needs (`name:ip`), for the seed's IP mapping. */
  extraHosts: string[];
}

// The canonical Ubuntu servers; the seed points these names at a mirror's IP.
const UBUNTU_SERVERS: Record<MirrorRole, string> = { archive: 'archive.ubuntu.com', security: 'security.ubuntu.com' };

function archivePath(distro: Distro, role: MirrorRole): string {
  if (distro === 'ubuntu') return 'ubuntu';
  return role === 'security' ? 'debian-security' : 'debian';
}

/**
 * A mirror as host, IP or URL. A URL is used as is; a host name becomes
 * `http://HOST/<distro path>`; an IP, for Ubuntu, keeps the canonical server name in
 * the sources and maps it to the IP in the build's /etc/hosts (as the seed does), and
 * for Debian becomes `http://IP/<distro path>`.
 */
export function resolveServer(given: string, distro: Distro, role: MirrorRole): ResolvedServer {
  const value = given.trim();
  if (value === '') throw new CtunError('BAD_MIRROR', `the ${role} server is empty`, { exitCode: ExitCode.Usage });
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    try {
      new URL(value);
    } catch {
      throw new CtunError('BAD_MIRROR', `the ${role} server "${given}" is not a valid URL`, { exitCode: ExitCode.Usage });
    }
    return { given, kind: 'url', url: stripSlash(value), extraHosts: [] };
  }
  const bare = value.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare)) {
    if (distro === 'ubuntu') {
      const name = UBUNTU_SERVERS[role];
      return { given, kind: 'ip', url: `http://${name}/ubuntu`, extraHosts: [`${name}:${bare}`] };
    }
    const host = isIP(bare) === 6 ? `[${bare}]` : bare;
    return { given, kind: 'ip', url: `http://${host}/${archivePath(distro, role)}`, extraHosts: [] };
  }
  if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(value)) {
    throw new CtunError('BAD_MIRROR', `the ${role} server "${given}" is neither a host name, an IP nor a URL`, {
      hint: 'give e.g. mirror.example.org, 10.0.0.5 or http://mirror.example.org/ubuntu',
      exitCode: ExitCode.Usage,
    });
  }
  return { given, kind: 'host', url: `http://${value}/${archivePath(distro, role)}`, extraHosts: [] };
}

// ---------------------------------------------------------------- rendering

export interface RenderedSources {
  format: AptFormat;
  /** Path inside the image. */
  path: string;
  content: string;
  /** Files of the other format (and the image's own) that must go. */
  remove: string[];
}

const KEYRING: Record<Distro, string> = {
  debian: '/usr/share/keyrings/debian-archive-keyring.gpg',
  ubuntu: '/usr/share/keyrings/ubuntu-archive-keyring.gpg',
};
const COMPONENTS: Record<Distro, string[]> = { debian: ['main'], ubuntu: ['main', 'restricted', 'universe', 'multiverse'] };

/** The security suite of a release (`bookworm-security`; Debian 10 still `buster/updates`). */
export function securitySuite(release: Release): string {
  return release.distro === 'debian' && release.suite === 'buster' ? 'buster/updates' : `${release.suite}-security`;
}

function suitesFor(release: Release): { archive: string[]; security: string[] } {
  return { archive: [release.suite, `${release.suite}-updates`], security: [securitySuite(release)] };
}

/** Renders the sources for `release` pointing at `archive` and `security` URLs. */
export function renderAptSources(release: Release, servers: { archive: string; security: string }, format: AptFormat = release.format): RenderedSources {
  const suites = suitesFor(release);
  const components = COMPONENTS[release.distro];
  const remove = ['/etc/apt/sources.list', '/etc/apt/sources.list.d/*.list', '/etc/apt/sources.list.d/*.sources'];
  const header = '# Written by ctun-build from its BuildPlan.\n';
  if (format === 'one-line') {
    const lines = [
      ...suites.archive.map((s) => `deb ${servers.archive} ${s} ${components.join(' ')}`),
      ...suites.security.map((s) => `deb ${servers.security} ${s} ${components.join(' ')}`),
    ];
    return { format, path: '/etc/apt/sources.list', content: header + lines.join('\n') + '\n', remove };
  }
  const stanza = (uri: string, s: string[]) =>
    [`Types: deb`, `URIs: ${uri}`, `Suites: ${s.join(' ')}`, `Components: ${components.join(' ')}`, `Signed-By: ${KEYRING[release.distro]}`].join('\n');
  return {
    format,
    path: `/etc/apt/sources.list.d/${release.distro}.sources`,
    content: header + stanza(servers.archive, suites.archive) + '\n\n' + stanza(servers.security, suites.security) + '\n',
    remove,
  };
}
