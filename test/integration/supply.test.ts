/**
 * The supply chain against the real daemon: the SBOM of the simulator image against
 * what `dpkg -l` and the supervisor venv show inside it, validated with the schema the
 * CycloneDX library ships; a bundle signed with a key of a test CA, checked with
 * openssl as a site without ctun would, that loads with `--verify` of that CA; and the
 * same bundle changed in one manifest byte, signed by another CA's key, signed with an
 * expired certificate, or unsigned — each refused before anything is loaded, the
 * daemon holding none of its images afterwards. The same SBOM as SPDX 2.3, validated
 * with the official schema, lists the same packages.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { Ajv } from 'ajv';
import { execa } from 'execa';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCa, issueSigner } from '../../tools/certs/index.js';
import { createLogger, silentLogger } from '../../tools/common/index.js';
import { LABEL_SBOM_SHA256, signManifest, stampSbom, SIGNATURE_MEMBER, SIGNER_MEMBER } from '../../tools/image/index.js';
import { connectDocker, createContextTar } from '../../tools/docker/index.js';
import { ensureImages } from '../../tools/demo/images.js';
import { buildStandinTarball } from '../../tools/simulator/index.js';
import { ctunBuild, dockerCli } from '../fixtures/build/images.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const docker = connectDocker();
const daemon = await docker.ping().then(
  () => true,
  () => false,
);
// Images of this run only: removed by these names at the end.
const SIM_TAG = `ctun-it-supply/veos:${process.pid}`;
const SMALL_TAG = `ctun-it-supply/small:${process.pid}`;
const TEST_LABEL = `io.ctun.test=supply-${process.pid}`;

let work: string;
/** The simulator image's CycloneDX SBOM as `ctun-build sbom` printed it (first test). */
let simSbom: string | undefined;

function ctun(args: string[]) {
  return execa(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'tools/cli/ctun.ts'), ...args], { cwd: ROOT, reject: false, all: true });
}

async function imagePresent(ref: string): Promise<boolean> {
  return (await docker.inspectImage(ref)) !== undefined;
}

/** Runs a command inside an image with no network; its stdout. */
async function inImage(image: string, entrypoint: string, args: string[]): Promise<string> {
  const r = await dockerCli(['run', '--rm', '--network', 'none', '--label', TEST_LABEL, '--entrypoint', entrypoint, image, ...args], 60_000);
  expect(r.exitCode, r.all).toBe(0);
  return r.stdout;
}

describe.skipIf(!daemon)('SBOMs and signed bundles (real daemon)', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ctun-supply-it-'));
  });
  afterAll(async () => {
    for (const t of [SIM_TAG, SMALL_TAG]) if (await imagePresent(t)) await docker.removeImage(t, { force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the SBOM of the simulator image lists the Debian packages dpkg -l shows, the venv\'s Python packages and the tarball; it validates', async () => {
    // The demo's simulator image (made once, kept), under a tag of this run, gets its
    // SBOM as a build does: the image's files plus the tarball's digest.
    const { images } = await ensureImages({ docker, logger: createLogger({ level: 'warn' }), python: 'debian' });
    await docker.tagImage(images.veos, SIM_TAG);
    const standin = await buildStandinTarball({ outDir: work });
    const stamped = await stampSbom({
      docker,
      files: docker.imageFiles!,
      logger: silentLogger,
      image: SIM_TAG,
      tags: [SIM_TAG],
      // A step id of its own: a simulator image built since SBOMs exist carries the
      // build's own (`veos`), which would be found in place and kept.
      stepId: 'veos-supply-test',
      inputs: { tarball: { name: 'dspace-veos-2023a.tar.gz', sha256: standin.sha256 } },
    });
    expect(stamped.stamped).toBe(true);

    const r = await ctunBuild(['sbom', SIM_TAG]);
    expect(r.exitCode, r.stderr).toBe(0);
    const json = r.stdout + '\n';
    simSbom = json;
    // The label pins the file the command printed.
    expect((await docker.inspectImage(SIM_TAG))!.labels[LABEL_SBOM_SHA256]).toBe(createHash('sha256').update(json).digest('hex'));
    expect(await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(json)).toBeNull();
    const doc = JSON.parse(json) as { components: Array<{ name: string; version?: string; purl?: string; type: string; hashes?: Array<{ content: string }> }> };

    const dpkgL = await inImage(SIM_TAG, 'dpkg', ['-l']);
    const shown = dpkgL
      .split('\n')
      .filter((l) => l.startsWith('ii '))
      .map((l) => l.split(/\s+/))
      .map(([, name, version]) => `${name!.replace(/:.*$/, '')} ${version}`)
      .sort();
    const debs = doc.components.filter((c) => c.purl?.startsWith('pkg:deb/')).map((c) => `${c.name} ${c.version}`).sort();
    expect(shown.length).toBeGreaterThan(50);
    expect(debs).toEqual(shown);

    const venv = await inImage(SIM_TAG, '/opt/supervisor/bin/python3', ['-c', "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)"]);
    const installed = venv.split('\n').filter(Boolean).sort();
    const pythons = doc.components.filter((c) => c.purl?.startsWith('pkg:pypi/')).map((c) => `${c.name} ${c.version}`).sort();
    for (const p of installed) expect(pythons).toContain(p);
    for (const name of ['supervisor', 'supervisor_console', 'supervisord_dependent_startup', 'toposort', 'setuptools']) {
      expect(pythons.some((p) => p.replace(/-/g, '_').startsWith(`${name} `)), `${name} in ${pythons.join(', ')}`).toBe(true);
    }
    expect(doc.components.find((c) => c.type === 'file')).toMatchObject({ name: 'dspace-veos-2023a.tar.gz', hashes: [{ alg: 'SHA-256', content: standin.sha256 }] });
  });

  it('--format spdx prints SPDX 2.3 that the official schema accepts, with the same packages, the same bytes each time; a bad --format exits 1', async () => {
    expect(simSbom, 'the first test stamps the simulator image').toBeDefined();
    const r = await ctunBuild(['sbom', SIM_TAG, '--format', 'spdx']);
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { spdxVersion: string; name: string; packages: Array<{ name: string; versionInfo?: string; externalRefs?: Array<{ referenceLocator: string }>; checksums?: unknown }> };
    const schema = JSON.parse(await readFile(join(ROOT, 'test/fixtures/spdx/spdx-2.3.schema.json'), 'utf8')) as object;
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    expect(doc.spdxVersion).toBe('SPDX-2.3');
    const cdx = JSON.parse(simSbom!) as { components: Array<{ name: string; version?: string; purl?: string }> };
    const listed = (xs: Array<{ name: string; version?: string; purl?: string }>) => xs.map((x) => `${x.purl ?? x.name}@${x.version ?? ''}`).sort();
    expect(listed(doc.packages.slice(1).map((p) => ({ name: p.name, version: p.versionInfo, purl: p.externalRefs?.[0]?.referenceLocator })))).toEqual(listed(cdx.components));
    expect(doc.packages.find((p) => p.name === 'dspace-veos-2023a.tar.gz')?.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect((await ctunBuild(['sbom', SIM_TAG, '--format', 'spdx'])).stdout).toBe(r.stdout);

    const bad = await ctunBuild(['sbom', SIM_TAG, '--format', 'xml']);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('Invalid values');
    expect(bad.stderr).toContain('Choices: "cyclonedx", "spdx"');
  });

  it('a signed bundle loads with --verify of its CA; changed, another CA, expired or unsigned is refused and loads nothing', async () => {
    // A small image of this run: a dpkg status and an os-release, FROM scratch.
    const ctx = join(work, 'small');
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'status'), 'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u11\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n');
    await writeFile(join(ctx, 'os-release'), 'ID=debian\nVERSION_ID="12"\n');
    await writeFile(join(ctx, 'Dockerfile'), `FROM scratch\nCOPY status /var/lib/dpkg/status\nCOPY os-release /etc/os-release\nLABEL ${TEST_LABEL}\n`);
    await docker.build({ context: await createContextTar(ctx), tags: [SMALL_TAG] });
    await stampSbom({ docker, files: docker.imageFiles!, logger: silentLogger, image: SMALL_TAG, tags: [SMALL_TAG], stepId: 'small', inputs: {} });
    const id = (await docker.inspectImage(SMALL_TAG))!.id;

    // The site's CA and a signing key it certified, as the README shows.
    const pki = join(work, 'pki');
    expect((await ctun(['certs', 'init', '--out', pki])).exitCode).toBe(0);
    const signer = await ctun(['certs', 'signer', 'release', '--out', pki]);
    expect(signer.exitCode, signer.all).toBe(0);
    expect(signer.stdout).toContain('signing certificate (codeSigning) CN=release');

    const bundle = join(work, 'signed.tar');
    const b = await ctunBuild(['bundle', '--out', bundle, '--image', SMALL_TAG, '--sign', join(pki, 'release.key')]);
    expect(b.exitCode, b.all).toBe(0);
    expect(b.stdout).toMatch(/^[0-9a-f]{64} {2}\d+ {2}sbom\/1-ctun-it-supply_small_\d+\.cdx\.json$/m);
    expect(b.stdout).toContain(`signed with ${join(pki, 'release.key')}`);

    // What a site without ctun checks, with openssl alone.
    const opened = join(work, 'opened');
    await mkdir(opened);
    await tar.x({ file: bundle, cwd: opened });
    const v = await execa('openssl', ['verify', '-CAfile', join(pki, 'ca.crt'), join(opened, SIGNER_MEMBER)], { reject: false, all: true });
    expect(v.stdout).toContain(': OK');
    const pub = await execa('openssl', ['x509', '-in', join(opened, SIGNER_MEMBER), '-pubkey', '-noout']);
    await writeFile(join(work, 'signer.pub'), pub.stdout + '\n');
    const d = await execa('openssl', ['dgst', '-sha256', '-verify', join(work, 'signer.pub'), '-signature', join(opened, SIGNATURE_MEMBER), join(opened, 'manifest.json')], { reject: false, all: true });
    expect(d.stdout.trim()).toBe('Verified OK');

    // The variants, repacked from the signed one.
    const members = JSON.parse(await readFile(join(opened, 'manifest.json'), 'utf8')).members.map((m: { path: string }) => m.path) as string[];
    const repack = async (name: string, change: (dir: string) => Promise<void>, signed = true): Promise<string> => {
      const dir = join(work, name);
      await mkdir(dir);
      await tar.x({ file: bundle, cwd: dir });
      await change(dir);
      const out = join(work, `${name}.tar`);
      await tar.c({ cwd: dir, file: out, portable: true }, ['manifest.json', ...(signed ? [SIGNATURE_MEMBER, SIGNER_MEMBER] : []), ...members]);
      return out;
    };
    const resign = (keyDir: string, key: string, at?: Date) => async (dir: string) => {
      const s = await signManifest(await readFile(join(dir, 'manifest.json')), join(keyDir, `${key}.key`), undefined, at);
      await writeFile(join(dir, SIGNATURE_MEMBER), s.signature);
      await writeFile(join(dir, SIGNER_MEMBER), s.certificate);
    };
    const other = join(work, 'other');
    await initCa({ out: other, name: 'other-ca' });
    await issueSigner({ out: other, name: 'intruder' });
    await issueSigner({ out: pki, name: 'old', notBefore: new Date(Date.now() - 3 * 86_400_000), days: 1 });
    const variants = {
      changed: await repack('changed', async (dir) => {
        const m = await readFile(join(dir, 'manifest.json'));
        const at = m.indexOf(Buffer.from('"created"')) + 2;
        m[at] = m[at]! ^ 0x20; // one byte: "created" becomes "cReated"
        await writeFile(join(dir, 'manifest.json'), m);
      }),
      otherCa: await repack('other-ca', resign(other, 'intruder')),
      expired: await repack('expired', resign(pki, 'old', new Date(Date.now() - 2.5 * 86_400_000))),
      unsigned: await repack('unsigned', async () => {}, false),
    };
    const refusals: Record<keyof typeof variants, RegExp> = {
      changed: /error: the bundle .*changed\.tar is refused: its manifest does not match its signature by CN=release \(changed after signing\)/,
      otherCa: /error: the bundle .*other-ca\.tar is refused: its signer CN=intruder was certified by CN=other-ca, not by the CA CN=ctun-ca of --verify/,
      expired: /error: the bundle .*expired\.tar is refused: the signing certificate CN=old is expired \(valid until /,
      unsigned: /error: the bundle .*unsigned\.tar is refused: it is not signed, and --verify .* asks for a signature/,
    };

    // The site's daemon: none of the bundle's images.
    await docker.removeImage(SMALL_TAG, { force: true });
    for (const [name, file] of Object.entries(variants) as Array<[keyof typeof variants, string]>) {
      const r = await ctunBuild(['load', file, '--verify', join(pki, 'ca.crt'), '--filesOut', join(work, `out-${name}`)]);
      expect(r.exitCode, `${name}: ${r.all}`).toBe(5);
      expect(r.stderr, name).toMatch(refusals[name]);
      expect(r.stderr, name).toMatch(/hint: .*; nothing was loaded/);
      expect(r.stdout, name).toBe('');
      expect(await imagePresent(SMALL_TAG), `${name} loaded nothing`).toBe(false);
    }

    const good = await ctunBuild(['load', bundle, '--verify', join(pki, 'ca.crt'), '--filesOut', join(work, 'out-good')]);
    expect(good.exitCode, good.all).toBe(0);
    expect(good.stdout).toMatch(new RegExp(`^signed by CN=release \\(certified by CN=ctun-ca, serial [0-9a-f]+, valid until \\S+\\): verified with ${join(pki, 'ca.crt')}$`, 'm'));
    expect(good.stdout).toContain(`loaded ${SMALL_TAG} ${id}  sbom: 2 Debian, 0 Python, 0 npm packages`);
    expect((await docker.inspectImage(SMALL_TAG))?.id).toBe(id);
  });
});

if (!daemon) it.skip('supply chain: no Docker daemon reachable (start dockerd)', () => {});
