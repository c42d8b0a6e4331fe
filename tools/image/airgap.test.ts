import { mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import * as tar from 'tar';
import { createMemoryLogger } from '../common/index.js';
import { createMemoryDocker } from '../docker/index.js';
import { createBundle, loadBundle, verifyBundle, type ImageArchiver } from './airgap.js';
import { tempDir } from '../lab/testing.js';

/** An archiver whose "docker save" is a fixed byte string; load records what it got. */
function memoryArchiver(): ImageArchiver & { loaded: Buffer[] } {
  const loaded: Buffer[] = [];
  return {
    loaded,
    async save(refs) {
      return Readable.from([Buffer.from(`saved ${refs.join(',')}\n`.repeat(1000))]);
    },
    async load(archive) {
      const chunks: Buffer[] = [];
      for await (const c of archive) chunks.push(c as Buffer);
      loaded.push(Buffer.concat(chunks));
    },
  };
}

async function setup() {
  const dir = tempDir('airgap');
  const tarball = join(dir, 'dspace-veos-2023a.tar.gz');
  await writeFile(tarball, 'the simulator tarball');
  const docker = createMemoryDocker({ images: ['a/one:1', 'a/two:1'] });
  const archiver = memoryArchiver();
  const out = join(dir, 'out', 'b.tar');
  const m = await createBundle({ docker, archiver, logger: createMemoryLogger(), images: ['a/one:1', 'a/two:1'], files: [tarball], out });
  return { dir, docker, archiver, out, m };
}

describe('air-gap bundles', () => {
  it('holds a manifest with the checksum of every member; load verifies, loads and unpacks', async () => {
    const { dir, docker, archiver, out, m } = await setup();
    expect(m.members.map((x) => x.path)).toEqual(['images.tar', 'files/dspace-veos-2023a.tar.gz']);
    expect(m.images.map((i) => i.ref)).toEqual(['a/one:1', 'a/two:1']);
    const listed: string[] = [];
    await tar.t({ file: out, onReadEntry: (e) => listed.push(e.path) });
    expect(listed).toEqual(['manifest.json', 'images.tar', 'files/dspace-veos-2023a.tar.gz']);
    const r = await loadBundle({ docker, archiver, logger: createMemoryLogger(), file: out, filesOut: join(dir, 'site') });
    expect(archiver.loaded[0]!.toString()).toContain('saved a/one:1,a/two:1');
    expect(await readFile(r.files[0]!, 'utf8')).toBe('the simulator tarball');
  });

  it('refuses a bundle with one flipped byte, naming the member; nothing is loaded', async () => {
    const { dir, docker, archiver, out } = await setup();
    const bytes = await readFile(out);
    // flip a byte inside images.tar's data (after the manifest's 512-byte header and body)
    const at = bytes.indexOf(Buffer.from('saved a/one:1'), 1024) + 3;
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(out, bytes);
    await expect(loadBundle({ docker, archiver, logger: createMemoryLogger(), file: out, filesOut: join(dir, 'site') })).rejects.toMatchObject({
      code: 'BUNDLE_CORRUPT',
      message: expect.stringMatching(/images\.tar has sha256 [0-9a-f]{16}…, the manifest says/),
    });
    expect(archiver.loaded).toHaveLength(0);
  });

  it('refuses a truncated bundle and a tar that is no bundle', async () => {
    const { dir, out } = await setup();
    const bytes = await readFile(out);
    await writeFile(out, bytes.subarray(0, bytes.length - 4096));
    await expect(verifyBundle(out, await mkdtemp(join(dir, 'v-')))).rejects.toMatchObject({ code: 'BUNDLE_CORRUPT' });
    const other = join(dir, 'other.tar');
    await tar.c({ file: other, cwd: dir }, ['dspace-veos-2023a.tar.gz']);
    await expect(verifyBundle(other, await mkdtemp(join(dir, 'v-')))).rejects.toMatchObject({ code: 'BUNDLE_CORRUPT', message: expect.stringContaining('manifest.json is missing') });
  });

  it('names an image that does not exist before writing anything', async () => {
    const dir = tempDir('airgap');
    await expect(
      createBundle({ docker: createMemoryDocker(), archiver: memoryArchiver(), logger: createMemoryLogger(), images: ['no/such:1'], files: [], out: join(dir, 'b.tar') }),
    ).rejects.toMatchObject({ code: 'BUNDLE_IMAGE_MISSING' });
  });

  describe('carrying the ctun release (--release)', () => {
    /** A small stand-in of `npm run release`'s archive: the name and the members that make one. */
    async function fakeRelease(dir: string, name = 'ctun-23.1.0-linux-x64', members = ['bin/ctun', 'bin/node', 'lib/ctun.mjs']): Promise<string> {
      for (const m of members) {
        await mkdir(join(dir, name, m, '..'), { recursive: true });
        await writeFile(join(dir, name, m), `#${m}`);
      }
      const file = join(dir, `${name}.tar.gz`);
      await tar.c({ gzip: true, file, cwd: dir }, [name]);
      return file;
    }

    it('puts it beside the images, checksummed; load writes it out and names it', async () => {
      const dir = tempDir('airgap');
      const release = await fakeRelease(dir);
      const docker = createMemoryDocker({ images: ['a/one:1'] });
      const archiver = memoryArchiver();
      const out = join(dir, 'b.tar');
      const m = await createBundle({ docker, archiver, logger: createMemoryLogger(), images: ['a/one:1'], files: [], release, out });
      expect(m.release).toBe('ctun-23.1.0-linux-x64.tar.gz');
      expect(m.members.map((x) => x.path)).toEqual(['images.tar', 'files/ctun-23.1.0-linux-x64.tar.gz']);
      const r = await loadBundle({ docker, archiver, logger: createMemoryLogger(), file: out, filesOut: join(dir, 'site') });
      expect(r.release).toBe(join(dir, 'site', 'ctun-23.1.0-linux-x64.tar.gz'));
      expect(await readFile(r.release!)).toEqual(await readFile(release));
    });

    it('refuses a file that is not a release, before writing anything', async () => {
      const dir = tempDir('airgap');
      const docker = createMemoryDocker({ images: [] });
      const out = join(dir, 'b.tar');
      const bundle = (release: string) => createBundle({ docker, archiver: memoryArchiver(), logger: createMemoryLogger(), images: [], files: [], release, out });
      const renamed = join(dir, 'tools.tar.gz');
      await writeFile(renamed, 'x');
      await expect(bundle(renamed)).rejects.toMatchObject({ code: 'BUNDLE_RELEASE_INVALID', message: expect.stringMatching(/name is not ctun-<version>-linux-x64\.tar\.gz/) });
      const hollow = await fakeRelease(dir, 'ctun-9.9.9-linux-x64', ['bin/ctun']);
      await expect(bundle(hollow)).rejects.toMatchObject({ code: 'BUNDLE_RELEASE_INVALID', message: expect.stringMatching(/lacks ctun-9\.9\.9-linux-x64\/bin\/node, ctun-9\.9\.9-linux-x64\/lib\/ctun\.mjs/) });
      const garbage = join(dir, 'ctun-1.0.0-linux-x64.tar.gz');
      await writeFile(garbage, 'not gzip at all');
      await expect(bundle(garbage)).rejects.toMatchObject({ code: 'BUNDLE_RELEASE_INVALID', message: expect.stringMatching(/not a readable \.tar\.gz/) });
      await expect(bundle(join(dir, 'ctun-2.0.0-linux-x64.tar.gz'))).rejects.toMatchObject({ code: 'BUNDLE_FILE_MISSING' });
      await expect(stat(out)).rejects.toThrow(/ENOENT/);
    });
  });
});
