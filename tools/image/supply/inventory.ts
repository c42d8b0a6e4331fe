import { parseDeb822, parseOneLine } from '../apt.js';
import { IMAGE_NODE_BINARY } from '../plan.js';
import type { ImageFileReader } from '../../docker/index.js';

/**
 * What an image holds, read from the image itself: the Debian packages of its dpkg
 * status, the Python distributions of its site-packages, the Node runtime and the
 * npm packages bundled into the tunnel's script, and the apt sources its packages
 * came from. Pure parsers plus one reader; the SBOM is made from this.
 */
export interface DebPackage {
  name: string;
  version: string;
  architecture: string;
  /** The source package, when it differs from the binary one. */
  source?: string;
}

export interface PythonPackage {
  name: string;
  version: string;
  /** The site-packages folder it is installed in. */
  location: string;
  /** The tool that installed it (INSTALLER: pip, debian), when recorded. */
  installer?: string;
  /** The URL it was installed from (PEP 610 direct_url.json), when recorded. */
  url?: string;
}

export interface NpmPackage {
  name: string;
  /** Its folder in the bundling tree (`node_modules/yargs`), also the lock file's key. */
  path: string;
  version?: string;
}

export interface ImageInventory {
  os?: { id: string; versionId: string; prettyName?: string };
  deb: DebPackage[];
  python: PythonPackage[];
  /** Present when the image carries the tunnel runtime (/opt/ctun). */
  node?: { binary: string; script: string; packages: NpmPackage[] };
  /** The URIs of the image's apt sources: where its Debian packages came from. */
  aptSources: string[];
}

/** The installed packages of a dpkg status file (`dpkg -l` shows the same `ii` lines). */
export function parseDpkgStatus(text: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(stanza)?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    if (!name || !version || field('Status') !== 'install ok installed') continue;
    const pkg: DebPackage = { name, version, architecture: field('Architecture') ?? 'all' };
    const source = field('Source')?.split(/\s+/)[0];
    if (source && source !== name) pkg.source = source;
    out.push(pkg);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** `ID` and `VERSION_ID` of an os-release file. */
export function parseOsRelease(text: string): ImageInventory['os'] {
  const get = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1];
  const id = get('ID');
  if (!id) return undefined;
  const os: NonNullable<ImageInventory['os']> = { id, versionId: get('VERSION_ID') ?? '' };
  const pretty = get('PRETTY_NAME');
  if (pretty) os.prettyName = pretty;
  return os;
}

const DIST_INFO = /^(.*)\/([^/]+)\.dist-info\/(METADATA|INSTALLER|direct_url\.json)$/;

/** The distributions of `*.dist-info` folders (PEP 376/610), from their METADATA files. */
export function parseDistInfo(files: Map<string, Buffer>): PythonPackage[] {
  const byDir = new Map<string, { location: string; metadata?: string; installer?: string; directUrl?: string }>();
  for (const [path, data] of files) {
    const m = DIST_INFO.exec(path);
    if (!m) continue;
    const key = `${m[1]}/${m[2]}`;
    const entry = byDir.get(key) ?? { location: m[1]! };
    const text = data.toString('utf8');
    if (m[3] === 'METADATA') entry.metadata = text;
    else if (m[3] === 'INSTALLER') entry.installer = text.trim();
    else entry.directUrl = text;
    byDir.set(key, entry);
  }
  const out: PythonPackage[] = [];
  for (const e of byDir.values()) {
    if (!e.metadata) continue;
    const head = e.metadata.split(/\n\n/)[0]!;
    const name = /^Name:\s*(.+)$/m.exec(head)?.[1]?.trim();
    const version = /^Version:\s*(.+)$/m.exec(head)?.[1]?.trim();
    if (!name || !version) continue;
    const pkg: PythonPackage = { name, version, location: e.location };
    if (e.installer) pkg.installer = e.installer;
    if (e.directUrl) {
      try {
        const url = (JSON.parse(e.directUrl) as { url?: unknown }).url;
        if (typeof url === 'string') pkg.url = url;
      } catch {
        // A broken direct_url.json says nothing about the origin: left out.
      }
    }
    out.push(pkg);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.location.localeCompare(b.location));
}

/**
 * The npm packages bundled into a script: esbuild writes a `// node_modules/<pkg>/…`
 * comment before each module it inlines (unminified bundles, as ctun's are).
 */
export function parseBundledPackages(script: string): NpmPackage[] {
  const seen = new Map<string, NpmPackage>();
  for (const m of script.matchAll(/^\/\/ ((?:node_modules\/(?:@[^/\s]+\/)?[^/\s]+\/)+)/gm)) {
    const path = m[1]!.replace(/\/$/, '');
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (!seen.has(path)) seen.set(path, { name, path });
  }
  return [...seen.values()].sort((a, b) => a.path.localeCompare(b.path));
}

/** The URIs of apt sources files (one-line and deb822), in order, without repeats. */
export function aptSourceUris(files: Map<string, Buffer>): string[] {
  const uris: string[] = [];
  for (const [path, data] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const text = data.toString('utf8');
    const sources = path.endsWith('.sources') ? parseDeb822(text) : path.endsWith('.list') ? parseOneLine(text) : [];
    for (const s of sources) for (const u of s.uris) if (!uris.includes(u)) uris.push(u);
  }
  return uris;
}

/** Where the tunnel runtime sits in the images that carry it (plan.ts writes it there). */
export const IMAGE_CTUN_SCRIPT = '/opt/ctun/ctun.mjs';

/**
 * Folders where Python distributions live: Debian's, pip's, and the simulator image's
 * venv (/opt/supervisor). Not all of /opt: in the images with the tunnel it holds the
 * 100+ MiB Node binary, whose copy out of the image would take seconds.
 */
const PYTHON_ROOTS = ['/usr/lib/python3', '/usr/local/lib', '/opt/supervisor/lib'];

/** Reads an image's inventory through `files` (no container is started). */
export async function readImageInventory(files: ImageFileReader, image: string): Promise<ImageInventory> {
  const got = await files.read(
    image,
    ['/var/lib/dpkg/status', '/etc/os-release', '/usr/lib/os-release', '/etc/apt', IMAGE_CTUN_SCRIPT, ...PYTHON_ROOTS],
    (p) => DIST_INFO.test(p) || p === '/var/lib/dpkg/status' || p.endsWith('os-release') || /^\/etc\/apt\/sources\.list(\.d\/[^/]+\.(list|sources))?$/.test(p) || p === IMAGE_CTUN_SCRIPT,
    // The bundled script is a few MiB.
    32 * 1024 * 1024,
  );
  const text = (p: string) => got.get(p)?.toString('utf8');
  const inventory: ImageInventory = {
    deb: parseDpkgStatus(text('/var/lib/dpkg/status') ?? ''),
    python: parseDistInfo(got),
    aptSources: aptSourceUris(new Map([...got].filter(([p]) => p.startsWith('/etc/apt/')))),
  };
  const os = parseOsRelease(text('/etc/os-release') ?? text('/usr/lib/os-release') ?? '');
  if (os) inventory.os = os;
  const script = text(IMAGE_CTUN_SCRIPT);
  if (script !== undefined) inventory.node = { binary: IMAGE_NODE_BINARY, script: IMAGE_CTUN_SCRIPT, packages: parseBundledPackages(script) };
  return inventory;
}
