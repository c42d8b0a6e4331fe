import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { createMemoryDocker, memoryImageFiles } from '../../docker/index.js';
import { readImageInventory } from './inventory.js';
import { makeSbom, summarizeSbom } from './sbom.js';
import { makeSpdx, summarizeSpdx, type SpdxDocument } from './spdx.js';
import { imageSbomPath, LABEL_SBOM, LABEL_SBOM_SHA256, readImageSbomAs, sha256Hex } from './stamp.js';

// The official SPDX 2.3 JSON schema (no npm package ships it): see test/fixtures/spdx/README.md.
const SCHEMA = JSON.parse(readFileSync(join(import.meta.dirname, '../../../test/fixtures/spdx/spdx-2.3.schema.json'), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(SCHEMA);

const IMAGE: Record<string, string> = {
  '/var/lib/dpkg/status':
    'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u10\n\nPackage: python3\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.11.2-1+b1\n',
  '/etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
  '/etc/apt/sources.list.d/debian.sources': 'Types: deb\nURIs: http://mirror.test/debian http://security.test/debian-security\nSuites: bookworm\nComponents: main\n',
  '/opt/supervisor/lib/python3.11/site-packages/supervisor-4.2.5.dist-info/METADATA': 'Metadata-Version: 2.1\nName: supervisor\nVersion: 4.2.5\n\nbody',
  '/opt/supervisor/lib/python3.11/site-packages/supervisor-4.2.5.dist-info/INSTALLER': 'pip\n',
  '/opt/ctun/ctun.mjs': '// node_modules/yargs/build/lib/yargs.js\nx\n// node_modules/@peculiar/x509/build/x.js\n// tools/cli/ctun.ts\n',
};
const INPUTS = {
  tarball: { name: 'dspace-veos-2023a.tar.gz', sha256: 'ab'.repeat(32) },
  python: { wheels: ['file:///w/supervisor-4.2.5-py2.py3-none-any.whl'] },
  nodeVersion: 'v24.21.0',
  npmVersions: { 'node_modules/yargs': '18.2.0' },
};
const CREATED = '2026-12-02T05:29:23.857123456Z';

async function cycloneDx(files: Record<string, string> = IMAGE): Promise<string> {
  return makeSbom('a/sim:1', await readImageInventory(memoryImageFiles({ 'a/sim:1': files }), 'a/sim:1'), INPUTS);
}

function purls(doc: SpdxDocument): string[] {
  return doc.packages.flatMap((p) => (p.externalRefs ?? []).map((r) => r.referenceLocator)).sort();
}

describe('SPDX', () => {
  it('is SPDX 2.3 that the official schema accepts, listing the packages, purls, sources and tarball of the CycloneDX one', async () => {
    const cdx = await cycloneDx();
    const json = makeSpdx(cdx, { created: CREATED });
    const doc = JSON.parse(json) as SpdxDocument;
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);

    // The same packages as the CycloneDX document: every purl, and the same counts.
    const cdxDoc = JSON.parse(cdx) as { components: Array<{ purl?: string }> };
    expect(purls(doc)).toEqual(cdxDoc.components.flatMap((c) => (c.purl ? [c.purl] : [])).sort());
    expect(summarizeSpdx(json)).toEqual(summarizeSbom(cdx));
    expect(summarizeSpdx(json)).toEqual({ deb: 2, python: 1, npm: 2, files: 1 });

    expect(doc).toMatchObject({ spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', name: 'a/sim:1', creationInfo: { created: '2026-12-02T05:29:23Z', creators: ['Tool: ctun-build-23.1.0'] } });
    const by = (name: string) => doc.packages.find((p) => p.name === name)!;
    // Two apt sources: which one served the package is not known, so no download location is claimed.
    expect(by('libc6')).toMatchObject({
      versionInfo: '2.36-9+deb12u10',
      primaryPackagePurpose: 'LIBRARY',
      downloadLocation: 'NOASSERTION',
      sourceInfo: 'apt source of the image: http://mirror.test/debian; apt source of the image: http://security.test/debian-security',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/libc6@2.36-9+deb12u10?arch=amd64&distro=debian-12&upstream=glibc' }],
    });
    expect(by('supervisor')).toMatchObject({ downloadLocation: 'file:///w/supervisor-4.2.5-py2.py3-none-any.whl', comment: expect.stringContaining('ctun:python:installer=pip') });
    expect(by('node')).toMatchObject({ versionInfo: '24.21.0', primaryPackagePurpose: 'APPLICATION' });
    expect(by('debian')).toMatchObject({ primaryPackagePurpose: 'OPERATING_SYSTEM', versionInfo: '12' });
    const tarball = by('dspace-veos-2023a.tar.gz');
    expect(tarball).toMatchObject({ packageFileName: 'dspace-veos-2023a.tar.gz', checksums: [{ algorithm: 'SHA256', checksumValue: 'ab'.repeat(32) }] });

    // The document describes the image; the image contains the rest; the tarball built it.
    const image = doc.packages[0]!;
    expect(image).toMatchObject({ name: 'a/sim', versionInfo: '1', primaryPackagePurpose: 'CONTAINER' });
    expect(doc.relationships).toContainEqual({ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: image.SPDXID });
    expect(doc.relationships).toContainEqual({ spdxElementId: tarball.SPDXID, relationshipType: 'BUILD_DEPENDENCY_OF', relatedSpdxElement: image.SPDXID });
    expect(doc.relationships.filter((r) => r.relationshipType === 'CONTAINS')).toHaveLength(doc.packages.length - 2);
    // What the schema cannot check: ids are unique, of SPDX's alphabet, and relationships name existing ones.
    const ids = doc.packages.map((p) => p.SPDXID);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^SPDXRef-[A-Za-z0-9.-]+$/);
    for (const r of doc.relationships) expect([...ids, 'SPDXRef-DOCUMENT']).toEqual(expect.arrayContaining([r.spdxElementId, r.relatedSpdxElement]));
  });

  it('is the same bytes for the same image; its namespace follows the contents', async () => {
    const cdx = await cycloneDx();
    const json = makeSpdx(cdx, { created: CREATED });
    expect(makeSpdx(cdx, { created: CREATED })).toBe(json);
    const ns = (JSON.parse(json) as SpdxDocument).documentNamespace;
    expect(ns).toMatch(/^https:\/\/spdx\.org\/spdxdocs\/ctun-build\/a-sim-1-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const other = await cycloneDx({ ...IMAGE, '/var/lib/dpkg/status': IMAGE['/var/lib/dpkg/status']!.replace('3.11.2-1+b1', '3.11.2-1+b2') });
    expect((JSON.parse(makeSpdx(other, { created: CREATED })) as SpdxDocument).documentNamespace).not.toBe(ns);
  });

  it('of an image: converted from the SBOM its label names, dated by the image', async () => {
    const cdx = await cycloneDx();
    const path = imageSbomPath('veos');
    const docker = createMemoryDocker({ images: [{ ref: 'a/sim:1', labels: { [LABEL_SBOM]: path, [LABEL_SBOM_SHA256]: sha256Hex(cdx) } }] });
    // The file reader holds only the stored SBOM: SPDX comes from it, not from the image's files.
    const files = memoryImageFiles({ 'a/sim:1': { [path]: cdx } });
    const spdx = await readImageSbomAs(docker, files, 'a/sim:1', 'spdx');
    expect(spdx).toMatchObject({ origin: 'label', summary: { deb: 2, python: 1, npm: 2, files: 1 } });
    expect(spdx.json).toBe(makeSpdx(cdx, { created: (await docker.inspectImage('a/sim:1'))!.created }));
    expect(spdx.sha256).toBe(sha256Hex(spdx.json));
    expect((await readImageSbomAs(docker, files, 'a/sim:1', 'cyclonedx')).json).toBe(cdx);
  });
});
