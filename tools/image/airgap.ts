import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { CtunError, ExitCode, metadata, type Logger } from '../common/index.js';
import { readDockerStream, type DockerEngine, type ImageFileReader } from '../docker/index.js';
import { readImageSbom, signManifest, SIGNATURE_MEMBER, SIGNER_MEMBER, verifyManifest, SBOM_EXTENSION, type SbomSummary, type SignerInfo } from './supply/index.js';

/**
 * `ctun-build bundle` / `ctun-build load`: every image and the simulator tarball in one
 * archive, to carry into an air-gapped site. The archive is a plain tar:
 *
 *   manifest.json        what is inside, with the sha256 and size of every member
 *   images.tar           one `docker save` of all images (shared layers stored once)
 *   files/<name>         the tarball(s), and the ctun release when carried
 *   sbom/<n>-<image>.cdx.json   each image's bill of materials (CycloneDX), when made
 *   manifest.json.sig    with --sign: a detached signature over manifest.json
 *   signer.crt           with --sign: the signer's certificate (PEM)
 *
 * `load` checks every member against the manifest before the daemon sees anything,
 * so a corrupted or truncated bundle is refused as a whole.
 */
export const BUNDLE_SCHEMA = 1;

export interface BundleMember {
  path: string;
  sha256: string;
  size: number;
}

export interface BundleManifest {
  schema: typeof BUNDLE_SCHEMA;
  kind: 'ctun-bundle';
  ctunVersion: string;
  created: string;
  /** The image names and the ids they had when saved; `sbom` is the member holding its SBOM. */
  images: Array<{ ref: string; id: string; sbom?: { path: string; summary: SbomSummary } }>;
  files: string[];
  /** The ctun release tarball among `files`, when carried (`--release`). */
  release?: string;
  members: BundleMember[];
}

/** What bundling needs of Docker beyond {@link DockerEngine}: save and load. */
export interface ImageArchiver {
  save(refs: string[]): Promise<Readable>;
  /** Loads a `docker save` archive; errors inside the answer stream throw. */
  load(archive: Readable): Promise<void>;
}

/** The archiver on the Docker wrapper (`docker save` / `docker load`). */
export function dockerArchiver(docker: Pick<DockerEngine, 'saveImages' | 'loadImages'>): ImageArchiver {
  return { save: (refs) => docker.saveImages(refs), load: (archive) => docker.loadImages(archive) };
}

function hashing(): { transform: Transform; digest: () => { sha256: string; size: number } } {
  const hash = createHash('sha256');
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return { transform, digest: () => ({ sha256: hash.digest('hex'), size }) };
}

async function fileDigest(path: string): Promise<{ sha256: string; size: number }> {
  const h = hashing();
  await pipeline(createReadStream(path), h.transform, async function* (source) {
    for await (const _ of source) void _;
  });
  return h.digest();
}

export interface CreateBundleOptions {
  docker: DockerEngine;
  archiver: ImageArchiver;
  logger: Logger;
  /** Image names; each must exist. */
  images: string[];
  /** Files to carry along (the simulator tarball). */
  files: string[];
  /** The release tarball (`npm run release`) to carry beside the images; checked to be one. */
  release?: string;
  out: string;
  /** Reads the images' SBOMs (the file each one's label names, else made from its files); none: no SBOMs. */
  imageFiles?: ImageFileReader;
  /** Signs the manifest with this private key and its certificate (default: the key's name with .crt). */
  sign?: { key: string; cert?: string };
}

/**
 * Refuses a file given as the release that is not one: its name must be the release's
 * (ctun-<version>-linux-x64.tar.gz) and it must hold <top>/bin/ctun and the bundles.
 */
export async function checkReleaseTarball(file: string): Promise<void> {
  const name = basename(file);
  const top = /^(ctun-[0-9][^/]*-linux-x64)\.tar\.gz$/.exec(name)?.[1];
  const notRelease = (why: string, cause?: unknown): CtunError =>
    new CtunError('BUNDLE_RELEASE_INVALID', `${file} is not a ctun release tarball: ${why}`, {
      hint: 'give the file `npm run release` wrote (dist/ctun-<version>-linux-x64.tar.gz)',
      exitCode: ExitCode.Usage,
      ...(cause === undefined ? {} : { cause }),
    });
  if (!top) throw notRelease('its name is not ctun-<version>-linux-x64.tar.gz');
  const wanted = new Set([`${top}/bin/ctun`, `${top}/bin/node`, `${top}/lib/ctun.mjs`]);
  try {
    await tar.t({ file, strict: true, onReadEntry: (e) => void wanted.delete(e.path) });
  } catch (e) {
    throw notRelease(`it is not a readable .tar.gz (${(e as Error).message})`, e);
  }
  if (wanted.size) throw notRelease(`it lacks ${[...wanted].join(', ')}`);
}

export async function createBundle(options: CreateBundleOptions): Promise<BundleManifest> {
  const out = resolve(options.out);
  const images: BundleManifest['images'] = [];
  for (const ref of options.images) {
    const info = await options.docker.inspectImage(ref);
    if (!info) {
      throw new CtunError('BUNDLE_IMAGE_MISSING', `the image ${ref} does not exist, so it cannot be bundled`, {
        hint: 'build it first (ctun-build ctun / ctun-build veos), or leave it out with --image',
        exitCode: ExitCode.Usage,
      });
    }
    images.push({ ref, id: info.id });
  }
  for (const f of options.files) {
    await stat(f).catch((e: unknown) => {
      throw new CtunError('BUNDLE_FILE_MISSING', `${f} does not exist, so it cannot be bundled`, { hint: 'check the path given with --file', exitCode: ExitCode.Usage, cause: e });
    });
  }
  if (options.release !== undefined) {
    await stat(options.release).catch((e: unknown) => {
      throw new CtunError('BUNDLE_FILE_MISSING', `${options.release} does not exist, so it cannot be bundled`, { hint: 'check the path given with --release (npm run release writes it into dist/)', exitCode: ExitCode.Usage, cause: e });
    });
    await checkReleaseTarball(options.release);
  }
  // The signing key is checked before the images are saved (minutes for large ones).
  if (options.sign) await signManifest(Buffer.from('check'), options.sign.key, options.sign.cert);
  const files = options.release === undefined ? options.files : [...options.files, options.release];
  await mkdir(dirname(out), { recursive: true });
  const dir = await mkdtemp(join(dirname(out), '.ctun-bundle-'));
  try {
    const members: BundleMember[] = [];
    if (images.length) {
      const h = hashing();
      await pipeline(await options.archiver.save(images.map((i) => i.ref)), h.transform, createWriteStream(join(dir, 'images.tar')));
      members.push({ path: 'images.tar', ...h.digest() });
      options.logger.info('images-saved', { images: images.length, bytes: members[0]!.size });
    }
    if (options.imageFiles) {
      await mkdir(join(dir, 'sbom'), { recursive: true });
      for (const [n, image] of images.entries()) {
        const sbom = await readImageSbom(options.docker, options.imageFiles, image.ref);
        const path = `sbom/${n + 1}-${image.ref.replace(/[^A-Za-z0-9._-]+/g, '_')}${SBOM_EXTENSION}`;
        await writeFile(join(dir, path), sbom.json);
        members.push({ path, sha256: sbom.sha256, size: Buffer.byteLength(sbom.json) });
        image.sbom = { path, summary: sbom.summary };
        options.logger.info('sbom', { image: image.ref, origin: sbom.origin, ...sbom.summary });
      }
    }
    const names: string[] = [];
    for (const f of files) {
      const name = basename(f);
      if (names.includes(name)) throw new CtunError('BUNDLE_FILE_DUPLICATE', `two files are named ${name}`, { exitCode: ExitCode.Usage });
      names.push(name);
      await mkdir(join(dir, 'files'), { recursive: true });
      await copyFile(f, join(dir, 'files', name));
      members.push({ path: `files/${name}`, ...(await fileDigest(join(dir, 'files', name))) });
    }
    const manifest: BundleManifest = {
      schema: BUNDLE_SCHEMA,
      kind: 'ctun-bundle',
      ctunVersion: metadata.ctunVersion,
      created: new Date().toISOString(),
      images,
      files: names,
      ...(options.release === undefined ? {} : { release: basename(options.release) }),
      members,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
    await writeFile(join(dir, 'manifest.json'), manifestBytes);
    const signature: string[] = [];
    if (options.sign) {
      const signed = await signManifest(manifestBytes, options.sign.key, options.sign.cert);
      await writeFile(join(dir, SIGNATURE_MEMBER), signed.signature);
      await writeFile(join(dir, SIGNER_MEMBER), signed.certificate);
      signature.push(SIGNATURE_MEMBER, SIGNER_MEMBER);
    }
    const partial = `${out}.partial`;
    await pipeline(
      tar.create({ cwd: dir, portable: true, follow: false }, ['manifest.json', ...signature, ...members.map((m) => m.path)]) as unknown as Readable,
      createWriteStream(partial),
    );
    await rm(out, { force: true });
    await rename(partial, out);
    return manifest;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function corrupt(file: string, why: string): CtunError {
  return new CtunError('BUNDLE_CORRUPT', `the bundle ${file} is damaged: ${why}`, {
    hint: 'copy it again from the site where it was made (compare `sha256sum` at both ends); nothing was loaded',
    exitCode: ExitCode.Failure,
  });
}

/**
 * Unpacks and verifies a bundle into `dir`; returns its manifest. Nothing is loaded.
 * With `trust` (a CA certificate or a public key), the manifest's signature is checked
 * first, before any member is looked at; `signer` is then who signed it.
 */
export async function verifyBundle(file: string, dir: string, trust?: string): Promise<BundleManifest & { signer?: SignerInfo; signed?: boolean }> {
  await stat(file).catch((e: unknown) => {
    throw new CtunError('BUNDLE_MISSING', `the bundle ${file} does not exist`, { hint: 'give the file ctun-build bundle wrote', exitCode: ExitCode.Usage, cause: e });
  });
  try {
    await tar.x({ file, cwd: dir, strict: true, preservePaths: false });
  } catch (e) {
    throw corrupt(file, `it is not a readable tar archive (${(e as Error).message})`);
  }
  let manifest: BundleManifest;
  let manifestBytes: Buffer;
  try {
    manifestBytes = await readFile(join(dir, 'manifest.json'));
  } catch {
    throw corrupt(file, 'manifest.json is missing or unreadable');
  }
  const signature = await readFile(join(dir, SIGNATURE_MEMBER)).catch(() => undefined);
  const certificate = await readFile(join(dir, SIGNER_MEMBER), 'utf8').catch(() => undefined);
  const signer = trust === undefined ? undefined : await verifyManifest(file, manifestBytes, { ...(signature ? { signature } : {}), ...(certificate ? { certificate } : {}) }, trust);
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as BundleManifest;
  } catch {
    throw corrupt(file, 'manifest.json is missing or unreadable');
  }
  if (manifest.kind !== 'ctun-bundle' || manifest.schema !== BUNDLE_SCHEMA || !Array.isArray(manifest.members)) {
    throw corrupt(file, `manifest.json is not a ctun bundle manifest of schema ${BUNDLE_SCHEMA}`);
  }
  const listed = new Set(manifest.members.map((m) => m.path));
  for (const m of manifest.members) {
    if (m.path.includes('..') || m.path.startsWith('/')) throw corrupt(file, `the member path ${m.path} leaves the bundle`);
    const got = await fileDigest(join(dir, m.path)).catch(() => undefined);
    if (!got) throw corrupt(file, `${m.path} is listed in the manifest but missing`);
    if (got.size !== m.size) throw corrupt(file, `${m.path} has ${got.size} bytes, the manifest says ${m.size}`);
    if (got.sha256 !== m.sha256) throw corrupt(file, `${m.path} has sha256 ${got.sha256.slice(0, 16)}…, the manifest says ${m.sha256.slice(0, 16)}…`);
  }
  const known = new Set(['manifest.json', 'files', 'sbom', SIGNATURE_MEMBER, SIGNER_MEMBER]);
  const extra = [
    ...(await readdir(dir)).filter((n) => !known.has(n) && !listed.has(n)),
    ...(await readdir(join(dir, 'files')).catch(() => [] as string[])).map((n) => `files/${n}`).filter((n) => !listed.has(n)),
    ...(await readdir(join(dir, 'sbom')).catch(() => [] as string[])).map((n) => `sbom/${n}`).filter((n) => !listed.has(n)),
  ];
  if (extra.length) throw corrupt(file, `it holds members the manifest does not list: ${extra.join(', ')}`);
  return { ...manifest, signed: signature !== undefined, ...(signer ? { signer } : {}) };
}

export interface LoadBundleOptions {
  docker: DockerEngine;
  archiver: ImageArchiver;
  logger: Logger;
  file: string;
  /** Where the carried files go; default the current directory. */
  filesOut?: string;
  /** Where the bundle is unpacked for checking; default beside the bundle. */
  tmpDir?: string;
  /** A CA certificate or public key (PEM): the bundle must be signed by a key it certifies, else nothing is loaded. */
  verify?: string;
}

export interface LoadedBundle {
  manifest: BundleManifest;
  files: string[];
  release?: string;
  /** Who signed it, when checked with `verify`. */
  signer?: SignerInfo;
  /** Whether it carries a signature (checked or not). */
  signed: boolean;
}

export async function loadBundle(options: LoadBundleOptions): Promise<LoadedBundle> {
  const file = resolve(options.file);
  const dir = await mkdtemp(join(options.tmpDir ?? dirname(file), '.ctun-load-'));
  try {
    const { signer, signed, ...manifest } = await verifyBundle(file, dir, options.verify);
    options.logger.info('bundle-verified', { members: manifest.members.length, images: manifest.images.length, signed: signed === true, signer: signer?.subject ?? (signer ? 'the public key given' : 'not checked') });
    if (manifest.images.length) {
      await options.archiver.load(createReadStream(join(dir, 'images.tar')));
      for (const i of manifest.images) {
        const info = await options.docker.inspectImage(i.ref);
        if (info?.id !== i.id) {
          throw new CtunError('BUNDLE_LOAD_INCOMPLETE', `after loading, ${i.ref} is ${info ? `image ${info.id.slice(0, 19)}` : 'missing'}, the bundle says ${i.id.slice(0, 19)}`, {
            hint: 'run the load again; check `docker images` and the daemon log',
          });
        }
      }
    }
    const out = resolve(options.filesOut ?? '.');
    const files: string[] = [];
    for (const name of manifest.files) {
      await mkdir(out, { recursive: true });
      await copyFile(join(dir, 'files', name), join(out, name));
      files.push(join(out, name));
    }
    return { manifest, files, signed: signed === true, ...(signer ? { signer } : {}), ...(manifest.release === undefined ? {} : { release: join(out, manifest.release) }) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
