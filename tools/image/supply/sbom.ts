import { createHash } from 'node:crypto';
// The library's entry points, not its index: the index also loads the validators
// (ajv and its formats, one of which loads Node's deprecated punycode at start).
import * as Enums from '@cyclonedx/cyclonedx-library/Enums';
import * as Models from '@cyclonedx/cyclonedx-library/Models';
import * as Serialize from '@cyclonedx/cyclonedx-library/Serialize';
import * as Spec from '@cyclonedx/cyclonedx-library/Spec';
import { PackageURL } from 'packageurl-js';
import { metadata } from '../../common/index.js';
import type { ImageInventory } from './inventory.js';

/**
 * An image's bill of materials as CycloneDX 1.6 JSON, made with the format's own
 * library (OWASP's @cyclonedx/cyclonedx-library: models, purls, serializer; its
 * published JSON schema validates the result in the tests).
 *
 * The document is a function of the image's contents and the build inputs only — no
 * timestamp, and a serial number derived from the contents — so the same image gives
 * the same bytes, and the digest in the image's label can be checked again anywhere.
 */
export const SBOM_SPEC = Spec.Spec1dot6;
/** The file extension CycloneDX recommends for JSON documents. */
export const SBOM_EXTENSION = '.cdx.json';

/** What a build knows that the image's files do not say. */
export interface SbomInputs {
  /** The simulator tarball the image was built from: its file name and sha256. */
  tarball?: { name: string; sha256: string };
  /**
   * Where the pip-installed packages came from: the pip index URL, or the wheel files
   * (`file://` URLs) of a `--wheels` folder, matched to the packages by name and version.
   */
  python?: { indexUrl: string } | { wheels: string[] };
  /** The Node runtime copied into the image (`node --version` of the pinned binary). */
  nodeVersion?: string;
  /** Versions of the bundled npm packages by their folder (`node_modules/yargs`), from the lock file. */
  npmVersions?: Record<string, string>;
}

export interface SbomSummary {
  deb: number;
  python: number;
  npm: number;
  /** Files named by digest (the simulator tarball). */
  files: number;
}

/** The package counts a SBOM document lists, by kind (read back from its purls). */
export function summarizeSbom(json: string): SbomSummary {
  const doc = JSON.parse(json) as { components?: Array<{ purl?: string; type?: string }> };
  const s: SbomSummary = { deb: 0, python: 0, npm: 0, files: 0 };
  for (const c of doc.components ?? []) {
    if (c.purl?.startsWith('pkg:deb/')) s.deb++;
    else if (c.purl?.startsWith('pkg:pypi/')) s.python++;
    else if (c.purl?.startsWith('pkg:npm/')) s.npm++;
    else if (c.type === 'file') s.files++;
  }
  return s;
}

export function formatSummary(s: SbomSummary): string {
  return `${s.deb} Debian, ${s.python} Python, ${s.npm} npm packages${s.files ? `, ${s.files} file${s.files > 1 ? 's' : ''}` : ''}`;
}

/** PEP 503 normalized name: what pip, wheel file names and pkg:pypi purls compare. */
export function normalizePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

function splitRef(ref: string): { name: string; version?: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? { name: ref.slice(0, colon), version: ref.slice(colon + 1) } : { name: ref };
}

function wheelFor(wheels: string[], name: string, version: string): string | undefined {
  const want = `${normalizePythonName(name)}-${version}`;
  return wheels.find((w) => {
    const file = w.slice(w.lastIndexOf('/') + 1);
    const [n, v] = file.split('-');
    return n !== undefined && v !== undefined && `${normalizePythonName(n)}-${v}` === want;
  });
}

/**
 * A UUID made from a document's contents (RFC 4122 form, version 5 bits): a stable
 * serial number or namespace, where the formats ask for a random one.
 */
export function contentUuid(text: string): string {
  const h = createHash('sha256').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The CycloneDX JSON text of an image's inventory. */
export function makeSbom(image: string, inventory: ImageInventory, inputs: SbomInputs = {}): string {
  const { ComponentType, ExternalReferenceType } = Enums;
  const bom = new Models.Bom();
  const ref = splitRef(image);
  bom.metadata.component = new Models.Component(ComponentType.Container, ref.name, { bomRef: `image:${image}`, ...(ref.version ? { version: ref.version } : {}) });
  bom.metadata.tools.components.add(new Models.Component(ComponentType.Application, 'ctun-build', { version: metadata.ctunVersion }));

  const os = inventory.os;
  if (os) bom.components.add(new Models.Component(ComponentType.OperatingSystem, os.id, { bomRef: `os:${os.id}@${os.versionId}`, version: os.versionId, ...(os.prettyName ? { description: os.prettyName } : {}) }));
  const aptRefs = () => new Models.ExternalReferenceRepository(inventory.aptSources.map((u) => new Models.ExternalReference(u, ExternalReferenceType.Distribution, { comment: 'apt source of the image' })));
  for (const d of inventory.deb) {
    const qualifiers: Record<string, string> = { arch: d.architecture };
    if (os) qualifiers['distro'] = `${os.id}-${os.versionId}`;
    if (d.source) qualifiers['upstream'] = d.source;
    const purl = new PackageURL('deb', os?.id ?? 'debian', d.name, d.version, qualifiers, undefined);
    bom.components.add(new Models.Component(ComponentType.Library, d.name, { bomRef: purl.toString(), version: d.version, purl: purl.toString(), externalReferences: aptRefs() }));
  }
  for (const p of inventory.python) {
    const purl = new PackageURL('pypi', undefined, normalizePythonName(p.name), p.version, undefined, undefined);
    const refs = new Models.ExternalReferenceRepository();
    const src = inputs.python;
    if (p.url) refs.add(new Models.ExternalReference(p.url, ExternalReferenceType.Distribution, { comment: 'direct_url.json' }));
    else if (src && p.installer === 'pip') {
      const wheel = 'wheels' in src ? wheelFor(src.wheels, p.name, p.version) : `${src.indexUrl.replace(/\/$/, '')}/${normalizePythonName(p.name)}/`;
      if (wheel) refs.add(new Models.ExternalReference(wheel, ExternalReferenceType.Distribution, { comment: 'wheels' in src ? 'wheel' : 'pip index' }));
    }
    const properties = new Models.PropertyRepository([new Models.Property('ctun:python:location', p.location)]);
    if (p.installer) properties.add(new Models.Property('ctun:python:installer', p.installer));
    bom.components.add(new Models.Component(ComponentType.Library, p.name, { bomRef: `python:${p.location}/${p.name}@${p.version}`, version: p.version, purl: purl.toString(), externalReferences: refs, properties }));
  }
  const node = inventory.node;
  if (node) {
    const runtime = new Models.Component(ComponentType.Platform, 'node', {
      bomRef: `node:${node.binary}`,
      ...(inputs.nodeVersion ? { version: inputs.nodeVersion.replace(/^v/, ''), purl: new PackageURL('generic', undefined, 'node', inputs.nodeVersion.replace(/^v/, ''), undefined, undefined).toString() } : {}),
      properties: new Models.PropertyRepository([new Models.Property('ctun:path', node.binary)]),
    });
    bom.components.add(runtime);
    for (const n of node.packages) {
      const version = inputs.npmVersions?.[n.path];
      const at = n.name.startsWith('@') ? n.name.indexOf('/') : -1;
      const purl = new PackageURL('npm', at > 0 ? n.name.slice(0, at) : undefined, at > 0 ? n.name.slice(at + 1) : n.name, version, undefined, undefined);
      bom.components.add(
        new Models.Component(ComponentType.Library, n.name, {
          bomRef: `npm:${n.path}`,
          ...(version ? { version } : {}),
          purl: purl.toString(),
          properties: new Models.PropertyRepository([new Models.Property('ctun:bundled-in', node.script)]),
        }),
      );
    }
  }
  if (inputs.tarball) {
    const hashes = new Models.HashDictionary([[Enums.HashAlgorithm['SHA-256'], inputs.tarball.sha256]]);
    bom.components.add(new Models.Component(ComponentType.File, inputs.tarball.name, { bomRef: `file:${inputs.tarball.name}`, hashes, description: 'the simulator tarball the image was built from' }));
  }
  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(SBOM_SPEC));
  const unnumbered = serializer.serialize(bom, { sortLists: true, space: 2 });
  bom.serialNumber = `urn:uuid:${contentUuid(unnumbered)}`;
  return serializer.serialize(bom, { sortLists: true, space: 2 }) + '\n';
}
