import { createHash } from 'node:crypto';
import { metadata } from '../../common/index.js';
import { contentUuid, type SbomSummary } from './sbom.js';

/**
 * An image's bill of materials as SPDX 2.3 JSON, converted from its CycloneDX one.
 *
 * Converted, not read from the image again: the stored CycloneDX document holds what
 * only the build knew (the tarball's digest, the wheel or index each Python package
 * came from, the Node version, the npm versions from the lock file), its digest is
 * pinned by the image's label, and a conversion lists exactly the same packages.
 *
 * Written by hand against typed shapes: no SPDX library is usable from npm
 * (`@spdx/tools`, SPDX's TypeScript library, is not on the registry and calls itself
 * early development, not for production). The tests validate the output against the
 * official SPDX 2.3 JSON schema.
 *
 * Deterministic like the CycloneDX one: `created` is the image's creation time (the
 * same image gives the same bytes), and the documentNamespace ends in a UUID derived
 * from the rest of the document.
 */
export const SPDX_VERSION = 'SPDX-2.3';
/** The file extension the SPDX specification recommends for JSON documents. */
export const SPDX_EXTENSION = '.spdx.json';
/** Where SPDX's own examples and tools put document namespaces; never fetched. */
const NAMESPACE_BASE = 'https://spdx.org/spdxdocs/ctun-build';

/** The parts of a CycloneDX 1.6 JSON document (as sbom.ts writes it) that are read. */
interface CdxComponent {
  type: string;
  name: string;
  version?: string;
  'bom-ref'?: string;
  purl?: string;
  description?: string;
  hashes?: Array<{ alg: string; content: string }>;
  externalReferences?: Array<{ url: string; type: string; comment?: string }>;
  properties?: Array<{ name: string; value: string }>;
}
interface CdxDocument {
  serialNumber?: string;
  metadata?: { component?: CdxComponent };
  components?: CdxComponent[];
}

type Purpose = 'CONTAINER' | 'OPERATING_SYSTEM' | 'LIBRARY' | 'APPLICATION' | 'FILE' | 'OTHER';

export interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  packageFileName?: string;
  primaryPackagePurpose: Purpose;
  /** A URL, or NOASSERTION when there is none or several candidates (see sourceInfo). */
  downloadLocation: string;
  filesAnalyzed: false;
  checksums?: Array<{ algorithm: 'SHA256'; checksumValue: string }>;
  sourceInfo?: string;
  description?: string;
  comment?: string;
  externalRefs?: Array<{ referenceCategory: 'PACKAGE-MANAGER'; referenceType: 'purl'; referenceLocator: string }>;
}

export interface SpdxRelationship {
  spdxElementId: string;
  relationshipType: 'DESCRIBES' | 'CONTAINS' | 'BUILD_DEPENDENCY_OF';
  relatedSpdxElement: string;
}

export interface SpdxDocument {
  spdxVersion: typeof SPDX_VERSION;
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[]; comment?: string };
  packages: SpdxPackage[];
  relationships: SpdxRelationship[];
}

const PURPOSE: Record<string, Purpose> = {
  container: 'CONTAINER',
  'operating-system': 'OPERATING_SYSTEM',
  library: 'LIBRARY',
  application: 'APPLICATION',
  platform: 'APPLICATION',
  file: 'FILE',
};

/** SPDX ids allow letters, digits, `.` and `-` only. */
function idPart(text: string): string {
  return text.replace(/[^A-Za-z0-9.]+/g, '-').replace(/^-|-$/g, '');
}

/** Readable and unique: the name, and a digest of the CycloneDX bom-ref (unique by construction). */
function spdxId(c: CdxComponent): string {
  const ref = c['bom-ref'] ?? `${c.type}:${c.name}@${c.version ?? ''}`;
  return `SPDXRef-${idPart(c.name)}-${createHash('sha256').update(ref).digest('hex').slice(0, 10)}`;
}

/** SPDX wants `YYYY-MM-DDThh:mm:ssZ`; Docker gives nanoseconds. */
export function spdxTimestamp(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new TypeError(`not a time: ${iso}`);
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

function toPackage(c: CdxComponent): SpdxPackage {
  const sources = (c.externalReferences ?? []).filter((r) => r.type === 'distribution');
  const sha256 = c.hashes?.find((h) => h.alg === 'SHA-256')?.content;
  const pkg: SpdxPackage = {
    SPDXID: spdxId(c),
    name: c.name,
    ...(c.version ? { versionInfo: c.version } : {}),
    ...(c.type === 'file' ? { packageFileName: c.name } : {}),
    primaryPackagePurpose: PURPOSE[c.type] ?? 'OTHER',
    // One download location only: with several apt sources (archive and security),
    // which one served a package is not known, so none is claimed.
    downloadLocation: sources.length === 1 ? sources[0]!.url : 'NOASSERTION',
    filesAnalyzed: false,
  };
  if (sha256) pkg.checksums = [{ algorithm: 'SHA256', checksumValue: sha256 }];
  if (sources.length) pkg.sourceInfo = sources.map((r) => `${r.comment ?? 'source'}: ${r.url}`).join('; ');
  if (c.description) pkg.description = c.description;
  if (c.properties?.length) pkg.comment = c.properties.map((p) => `${p.name}=${p.value}`).join('; ');
  if (c.purl) pkg.externalRefs = [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: c.purl }];
  return pkg;
}

/**
 * The SPDX 2.3 JSON text of a CycloneDX document made by makeSbom: the image as the
 * described package, every component a package it CONTAINS, except files (the
 * simulator tarball), which are BUILD_DEPENDENCY_OF it.
 *
 * @param created the image's creation time (ISO 8601), the document's `created`
 */
export function makeSpdx(cycloneDx: string, options: { created: string }): string {
  const cdx = JSON.parse(cycloneDx) as CdxDocument;
  const subject = cdx.metadata?.component;
  if (!subject) throw new TypeError('the CycloneDX document names no image (metadata.component)');
  const image = toPackage(subject);
  const components = (cdx.components ?? []).map((c) => ({ c, pkg: toPackage(c) }));
  const imageName = subject.version ? `${subject.name}:${subject.version}` : subject.name;
  const relationships: SpdxRelationship[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: image.SPDXID },
    ...components.map(({ c, pkg }): SpdxRelationship =>
      c.type === 'file'
        ? { spdxElementId: pkg.SPDXID, relationshipType: 'BUILD_DEPENDENCY_OF', relatedSpdxElement: image.SPDXID }
        : { spdxElementId: image.SPDXID, relationshipType: 'CONTAINS', relatedSpdxElement: pkg.SPDXID },
    ),
  ];
  const doc: SpdxDocument = {
    spdxVersion: SPDX_VERSION,
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: imageName,
    documentNamespace: '',
    creationInfo: {
      created: spdxTimestamp(options.created),
      creators: [`Tool: ctun-build-${metadata.ctunVersion}`],
      ...(cdx.serialNumber ? { comment: `converted from the image's CycloneDX SBOM ${cdx.serialNumber}` } : {}),
    },
    packages: [image, ...components.map(({ pkg }) => pkg)],
    relationships,
  };
  doc.documentNamespace = `${NAMESPACE_BASE}/${idPart(imageName)}-${contentUuid(JSON.stringify(doc))}`;
  return JSON.stringify(doc, null, 2) + '\n';
}

/** The package counts an SPDX document lists, by kind (from its purls), as summarizeSbom counts them. */
export function summarizeSpdx(json: string): SbomSummary {
  const doc = JSON.parse(json) as Partial<SpdxDocument>;
  const s: SbomSummary = { deb: 0, python: 0, npm: 0, files: 0 };
  for (const p of doc.packages ?? []) {
    const purl = p.externalRefs?.find((r) => r.referenceType === 'purl')?.referenceLocator;
    if (purl?.startsWith('pkg:deb/')) s.deb++;
    else if (purl?.startsWith('pkg:pypi/')) s.python++;
    else if (purl?.startsWith('pkg:npm/')) s.npm++;
    else if (p.primaryPackagePurpose === 'FILE') s.files++;
  }
  return s;
}
