import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import * as tar from 'tar';
import { describe, expect, it } from 'vitest';
import { initCa, issueClient, issueSigner } from '../../certs/index.js';
import { createMemoryLogger } from '../../common/index.js';
import { createMemoryDocker, memoryImageFiles } from '../../docker/index.js';
import { createBundle, loadBundle, type ImageArchiver } from '../airgap.js';
import { parseBundledPackages, parseDistInfo, parseDpkgStatus, readImageInventory } from './inventory.js';
import { makeSbom, summarizeSbom } from './sbom.js';
import { imageSbomPath, LABEL_SBOM, LABEL_SBOM_SHA256, sbomStep } from './stamp.js';
import type { BuildPlan, ImageStep } from '../plan.js';
import type { ProjectPaths } from '../paths.js';
import { signManifest, verifyManifest } from './sign.js';

const STATUS = `Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u10

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: python3
Status: install ok installed
Architecture: amd64
Version: 3.11.2-1+b1
`;

const IMAGE: Record<string, string> = {
  '/var/lib/dpkg/status': STATUS,
  '/etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
  '/etc/apt/sources.list.d/debian.sources': 'Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm\nComponents: main\n',
  '/opt/supervisor/lib/python3.11/site-packages/supervisor-4.2.5.dist-info/METADATA': 'Metadata-Version: 2.1\nName: supervisor\nVersion: 4.2.5\n\nbody',
  '/opt/supervisor/lib/python3.11/site-packages/supervisor-4.2.5.dist-info/INSTALLER': 'pip\n',
  '/opt/ctun/ctun.mjs': '// node_modules/yargs/build/lib/yargs.js\nx\n// node_modules/@peculiar/x509/build/x.js\n// node_modules/yargs/node_modules/cliui/index.mjs\n// tools/cli/ctun.ts\n',
};

describe('inventory parsers', () => {
  it('dpkg status: installed packages only (as dpkg -l shows ii), with their source package', () => {
    expect(parseDpkgStatus(STATUS)).toEqual([
      { name: 'libc6', version: '2.36-9+deb12u10', architecture: 'amd64', source: 'glibc' },
      { name: 'python3', version: '3.11.2-1+b1', architecture: 'amd64' },
    ]);
  });

  it('dist-info: name, version, installer and where; esbuild module comments: the bundled npm packages', () => {
    const files = new Map(Object.entries(IMAGE).map(([k, v]) => [k, Buffer.from(v)]));
    expect(parseDistInfo(files)).toEqual([{ name: 'supervisor', version: '4.2.5', location: '/opt/supervisor/lib/python3.11/site-packages', installer: 'pip' }]);
    expect(parseBundledPackages(IMAGE['/opt/ctun/ctun.mjs']!).map((p) => p.path)).toEqual(['node_modules/@peculiar/x509', 'node_modules/yargs', 'node_modules/yargs/node_modules/cliui']);
  });
});

describe('SBOM', () => {
  it('is CycloneDX 1.6 that the published schema accepts, the same bytes each time, with versions and sources', async () => {
    const inventory = await readImageInventory(memoryImageFiles({ 'a/sim:1': IMAGE }), 'a/sim:1');
    const inputs = {
      tarball: { name: 'dspace-veos-2023a.tar.gz', sha256: 'ab'.repeat(32) },
      python: { wheels: ['file:///w/supervisor-4.2.5-py2.py3-none-any.whl'] },
      nodeVersion: 'v24.21.0',
      npmVersions: { 'node_modules/yargs': '18.2.0' },
    };
    const json = makeSbom('a/sim:1', inventory, inputs);
    expect(makeSbom('a/sim:1', inventory, inputs)).toBe(json);
    expect(await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(json)).toBeNull();
    const doc = JSON.parse(json) as { serialNumber: string; components: Array<Record<string, any>> };
    expect(doc.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const by = (name: string) => doc.components.find((c) => c.name === name)!;
    expect(by('libc6').purl).toBe('pkg:deb/debian/libc6@2.36-9+deb12u10?arch=amd64&distro=debian-12&upstream=glibc');
    expect(by('libc6').externalReferences).toEqual([{ type: 'distribution', url: 'http://mirror.test/debian', comment: 'apt source of the image' }]);
    expect(by('supervisor').externalReferences[0].url).toBe('file:///w/supervisor-4.2.5-py2.py3-none-any.whl');
    expect(by('yargs')).toMatchObject({ version: '18.2.0', purl: 'pkg:npm/yargs@18.2.0' });
    expect(by('node')).toMatchObject({ type: 'platform', version: '24.21.0' });
    expect(by('dspace-veos-2023a.tar.gz')).toMatchObject({ type: 'file', hashes: [{ alg: 'SHA-256', content: 'ab'.repeat(32) }] });
    expect(summarizeSbom(json)).toEqual({ deb: 2, python: 1, npm: 3, files: 1 });
  });
});

async function pki() {
  const dir = await mkdtemp(join(tmpdir(), 'ctun-sign-'));
  await initCa({ out: join(dir, 'ca') });
  await initCa({ out: join(dir, 'other'), name: 'other-ca' });
  await issueSigner({ out: join(dir, 'ca'), name: 'release' });
  await issueSigner({ out: join(dir, 'other'), name: 'intruder' });
  // Valid for a day, two days ago.
  await issueSigner({ out: join(dir, 'ca'), name: 'old', notBefore: new Date(Date.now() - 2 * 86_400_000), days: 1 });
  await issueClient({ out: join(dir, 'ca'), name: 'alice' });
  return dir;
}

describe('manifest signatures', () => {
  it('verify against the CA; refuse unsigned, changed, another CA\'s signer, an expired one, each with its code', async () => {
    const dir = await pki();
    const manifest = Buffer.from('{"kind":"ctun-bundle"}\n');
    const good = await signManifest(manifest, join(dir, 'ca', 'release.key'));
    const ca = join(dir, 'ca', 'ca.crt');
    expect(await verifyManifest('b.tar', manifest, good, ca)).toMatchObject({ trust: 'ca', subject: 'CN=release', issuer: 'CN=ctun-ca' });
    await expect(verifyManifest('b.tar', manifest, {}, ca)).rejects.toMatchObject({ code: 'BUNDLE_UNSIGNED', exitCode: 5 });
    const changed = Buffer.from(manifest);
    changed[3] = changed[3]! ^ 0x01;
    await expect(verifyManifest('b.tar', changed, good, ca)).rejects.toMatchObject({ code: 'BUNDLE_SIGNATURE_INVALID', exitCode: 5 });
    const other = await signManifest(manifest, join(dir, 'other', 'intruder.key'));
    await expect(verifyManifest('b.tar', manifest, other, ca)).rejects.toMatchObject({ code: 'BUNDLE_SIGNER_UNTRUSTED', message: expect.stringContaining('certified by CN=other-ca, not by the CA CN=ctun-ca') });
    // Signed while it was valid (signManifest checks "now": it is given the time).
    const old = await signManifest(manifest, join(dir, 'ca', 'old.key'), undefined, new Date(Date.now() - 1.5 * 86_400_000));
    await expect(verifyManifest('b.tar', manifest, old, ca)).rejects.toMatchObject({ code: 'BUNDLE_SIGNER_EXPIRED', message: expect.stringContaining('is expired') });
  });

  it('signing refuses a key without a codeSigning certificate; a bare public key verifies too', async () => {
    const dir = await pki();
    const manifest = Buffer.from('{}\n');
    await expect(signManifest(manifest, join(dir, 'ca', 'alice.key'))).rejects.toMatchObject({ code: 'SIGN_KEY_INVALID', message: expect.stringContaining('not certified for code signing') });
    const good = await signManifest(manifest, join(dir, 'ca', 'release.key'));
    const { X509Certificate } = await import('node:crypto');
    const pub = join(dir, 'release.pub');
    await writeFile(pub, new X509Certificate(good.certificate).publicKey.export({ type: 'spki', format: 'pem' }));
    expect(await verifyManifest('b.tar', manifest, good, pub)).toEqual({ trust: 'public-key' });
    await expect(verifyManifest('b.tar', Buffer.from('{ }\n'), good, pub)).rejects.toMatchObject({ code: 'BUNDLE_SIGNATURE_INVALID' });
  });
});

describe('signed bundles with SBOMs (in memory)', () => {
  it('carry each image\'s SBOM and the signature; load --verify checks it before loading; a changed manifest loads nothing', async () => {
    const dir = await pki();
    const docker = createMemoryDocker({ images: ['a/sim:1'] });
    const loaded: string[] = [];
    const archiver: ImageArchiver = {
      save: async () => Readable.from([Buffer.from('saved')]),
      load: async () => void loaded.push('images'),
    };
    const out = join(dir, 'b.tar');
    const m = await createBundle({ docker, archiver, logger: createMemoryLogger(), images: ['a/sim:1'], files: [], out, imageFiles: memoryImageFiles({ 'a/sim:1': IMAGE }), sign: { key: join(dir, 'ca', 'release.key') } });
    expect(m.images[0]!.sbom).toEqual({ path: 'sbom/1-a_sim_1.cdx.json', summary: { deb: 2, python: 1, npm: 3, files: 0 } });
    const listed: string[] = [];
    await tar.t({ file: out, onReadEntry: (e) => listed.push(e.path) });
    expect(listed).toEqual(['manifest.json', 'manifest.json.sig', 'signer.crt', 'images.tar', 'sbom/1-a_sim_1.cdx.json']);
    const r = await loadBundle({ docker, archiver, logger: createMemoryLogger(), file: out, filesOut: join(dir, 'site'), verify: join(dir, 'ca', 'ca.crt') });
    expect(r.signer?.subject).toBe('CN=release');
    expect(loaded).toEqual(['images']);

    const bytes = await readFile(out);
    const at = bytes.indexOf(Buffer.from('"created"')) + 2;
    bytes[at] = bytes[at]! ^ 0x20; // "created" → "cReated": the JSON still parses
    await writeFile(out, bytes);
    await expect(loadBundle({ docker, archiver, logger: createMemoryLogger(), file: out, verify: join(dir, 'ca', 'ca.crt') })).rejects.toMatchObject({ code: 'BUNDLE_SIGNATURE_INVALID' });
    expect(loaded).toEqual(['images']);
  });
});

describe('the SBOM step of a build (in memory)', () => {
  it('adds the SBOM to the built image with its tarball digest and wheels, once; the tunnel runtime gets none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctun-sbom-step-'));
    const tarball = join(dir, 'dspace-veos-2023a.tar.gz');
    await writeFile(tarball, 'the simulator tarball');
    const docker = createMemoryDocker({ images: ['a/sim:1', 'a/runtime:1'] });
    const image: Record<string, string> = { ...IMAGE };
    const files = memoryImageFiles({ 'a/sim:1': image });
    const step = { id: 'veos', tags: ['a/sim:1'], context: [{ path: 'veos/simulator.tar.gz', from: { kind: 'file', path: tarball } }] } as unknown as ImageStep;
    const runtime = { id: 'ctun-runtime', tags: ['a/runtime:1'], context: [] } as unknown as ImageStep;
    const plan = {
      command: 'veos',
      tarball: { path: tarball },
      python: { source: 'wheels', dir: '/w', files: ['supervisor-4.2.5-py2.py3-none-any.whl'], requirements: [] },
      runtime: { image: 'a/runtime:1' },
      images: [runtime, step],
    } as unknown as BuildPlan;
    const paths = { root: dir, nodeBinary: join(dir, 'no-node') } as unknown as ProjectPaths;
    const options = { docker, logger: createMemoryLogger(), paths, imageFiles: files };

    expect(await sbomStep(plan, runtime, { imageId: 'sha256:r' }, options)).toEqual({ imageId: 'sha256:r' });
    expect(docker.builds).toHaveLength(0);

    const first = await sbomStep(plan, step, { imageId: 'sha256:old' }, options);
    expect(docker.builds).toHaveLength(1);
    const build = docker.builds[0]!;
    expect(build.tags).toEqual(['a/sim:1']);
    expect(build.dockerfile).toMatch(new RegExp(`^FROM \\S+\nCOPY sbom.json ${imageSbomPath('veos')}\nLABEL ${LABEL_SBOM}=`));
    const json = build.files.get('sbom.json')!.toString();
    const labels = (await docker.inspectImage('a/sim:1'))!.labels;
    expect(labels[LABEL_SBOM]).toBe('/usr/share/ctun/sbom/veos.cdx.json');
    expect(labels[LABEL_SBOM_SHA256]).toBe(first.sbom!.sha256);
    const doc = JSON.parse(json) as { components: Array<{ name: string; hashes?: unknown; externalReferences?: Array<{ url: string }> }> };
    const { createHash } = await import('node:crypto');
    expect(doc.components.find((c) => c.name === 'dspace-veos-2023a.tar.gz')!.hashes).toEqual([{ alg: 'SHA-256', content: createHash('sha256').update('the simulator tarball').digest('hex') }]);
    expect(doc.components.find((c) => c.name === 'supervisor')!.externalReferences![0]!.url).toBe('file:///w/supervisor-4.2.5-py2.py3-none-any.whl');

    // A warm rebuild: the image carries its SBOM already, nothing is built.
    image[imageSbomPath('veos')] = json;
    const again = await sbomStep(plan, step, { imageId: first.imageId }, options);
    expect(docker.builds).toHaveLength(1);
    expect(again.sbom!.sha256).toBe(first.sbom!.sha256);
  });
});
