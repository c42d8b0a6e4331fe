import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import * as tar from 'tar';
import { CtunError, ExitCode, metadata, type Logger } from '../common/index.js';
import { readDockerStream, type DockerEngine } from '../docker/index.js';

/**
 * `ctun-build bundle` / `ctun-build load`: every image and the simulator tarball in one
 * archive, to carry into an air-gapped site. The archive is a plain tar:
 *
 *   manifest.json        what is inside, with the sha256 and size of every member
 *   images.tar           one `docker save` of all images (shared layers stored once)
 *   files/<name>         the tarball(s), and the ctun release when carried
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
  /** The image names and the ids they had when saved. */
  images: Array<{ ref: string; id: string }>;
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

export function dockerodeArchiver(docker: Dockerode): ImageArchiver {
  return {
    async save(refs) {
      // GET /images/get?names=…: one archive for all, each shared layer once (not in the typings).
      const d = docker as unknown as { getImages(opts: { names: string[] }): Promise<Readable> };
      return d.getImages({ names: refs });
    },
    async load(archive) {
      const stream = (await docker.loadImage(archive as never)) as unknown as NodeJS.ReadableStream;
      await readDockerStream(stream, { operation: 'import', subject: 'the bundle images' });
    },
  };
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
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    const partial = `${out}.partial`;
    await pipeline(
      tar.create({ cwd: dir, portable: true, follow: false }, ['manifest.json', ...members.map((m) => m.path)]) as unknown as Readable,
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

/** Unpacks and verifies a bundle into `dir`; returns its manifest. Nothing is loaded. */
export async function verifyBundle(file: string, dir: string): Promise<BundleManifest> {
  await stat(file).catch((e: unknown) => {
    throw new CtunError('BUNDLE_MISSING', `the bundle ${file} does not exist`, { hint: 'give the file ctun-build bundle wrote', exitCode: ExitCode.Usage, cause: e });
  });
  try {
    await tar.x({ file, cwd: dir, strict: true, preservePaths: false });
  } catch (e) {
    throw corrupt(file, `it is not a readable tar archive (${(e as Error).message})`);
  }
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as BundleManifest;
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
  const extra = [
    ...(await readdir(dir)).filter((n) => n !== 'manifest.json' && n !== 'files' && !listed.has(n)),
    ...(await readdir(join(dir, 'files')).catch(() => [] as string[])).map((n) => `files/${n}`).filter((n) => !listed.has(n)),
  ];
  if (extra.length) throw corrupt(file, `it holds members the manifest does not list: ${extra.join(', ')}`);
  return manifest;
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
}

export async function loadBundle(options: LoadBundleOptions): Promise<{ manifest: BundleManifest; files: string[]; release?: string }> {
  const file = resolve(options.file);
  const dir = await mkdtemp(join(options.tmpDir ?? dirname(file), '.ctun-load-'));
  try {
    const manifest = await verifyBundle(file, dir);
    options.logger.info('bundle-verified', { members: manifest.members.length, images: manifest.images.length });
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
    return { manifest, files, ...(manifest.release === undefined ? {} : { release: join(out, manifest.release) }) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
