import type Dockerode from 'dockerode';
import * as tar from 'tar';
import { CtunError, ExitCode } from '../common/index.js';
import { dockerStatus } from './errors.js';
import { ctunLabels } from './labels.js';

/**
 * Reads files out of an image without running it: a container is created (never
 * started, so no code of the image runs and no network is touched), the wanted paths
 * are copied out of it (`docker cp`'s archive endpoint), and the container is
 * removed. Works for images without a shell too (FROM scratch, distroless).
 */
export interface ImageFileReader {
  /**
   * The files under `paths` (files or folders; a missing one is skipped) whose
   * absolute path `keep` accepts, as `{absolute path: bytes}`. Files above
   * `maxBytes` (default 8 MiB) are left out, so a folder holding a large binary costs
   * a read, not its bytes in memory.
   */
  read(image: string, paths: string[], keep?: (path: string) => boolean, maxBytes?: number): Promise<Map<string, Buffer>>;
}

const DEFAULT_MAX = 8 * 1024 * 1024;


/** Parses a `docker cp` archive of `path` into `out`, keeping what `keep` accepts. */
async function collect(stream: NodeJS.ReadableStream, path: string, keep: (p: string) => boolean, maxBytes: number, out: Map<string, Buffer>): Promise<void> {
  // The archive's entries are named from the last element of `path` on.
  const parent = path.replace(/\/+$/, '').replace(/\/[^/]*$/, '');
  await new Promise<void>((resolve, reject) => {
    const parser = new tar.Parser({
      onReadEntry: (entry) => {
        const abs = `${parent}/${entry.path.replace(/^\.\//, '').replace(/\/$/, '')}`;
        if (entry.type !== 'File' && entry.type !== 'OldFile') return entry.resume();
        if (!keep(abs) || (entry.size ?? 0) > maxBytes) return entry.resume();
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => out.set(abs, Buffer.concat(chunks)));
      },
    });
    parser.on('end', () => resolve());
    parser.on('error', reject);
    stream.on('error', reject);
    stream.pipe(parser as unknown as NodeJS.WritableStream);
  });
}

export function dockerodeImageFiles(docker: Dockerode): ImageFileReader {
  return {
    async read(image, paths, keep = () => true, maxBytes = DEFAULT_MAX) {
      let container: Dockerode.Container;
      try {
        // Cmd is never run; an image without CMD/ENTRYPOINT still needs one to be created.
        container = await docker.createContainer({
          Image: image,
          Cmd: ['/ctun-never-started'],
          Labels: ctunLabels('container/image-files'),
          NetworkDisabled: true,
        });
      } catch (e) {
        if (dockerStatus(e) === 404) {
          throw new CtunError('IMAGE_MISSING', `the image ${image} does not exist`, { hint: 'build or load it first (docker images lists what there is)', exitCode: ExitCode.Usage, cause: e });
        }
        throw e;
      }
      const out = new Map<string, Buffer>();
      try {
        for (const path of paths) {
          let stream: NodeJS.ReadableStream;
          try {
            stream = (await container.getArchive({ path })) as unknown as NodeJS.ReadableStream;
          } catch (e) {
            if (dockerStatus(e) === 404) continue;
            throw e;
          }
          await collect(stream, path, keep, maxBytes, out);
        }
      } finally {
        await container.remove({ force: true }).catch(() => undefined);
      }
      return out;
    },
  };
}

/** The in-memory twin: images as `{image: {absolute path: text}}`. */
export function memoryImageFiles(images: Record<string, Record<string, string | Buffer>>): ImageFileReader {
  return {
    async read(image, paths, keep = () => true, maxBytes = DEFAULT_MAX) {
      const files = images[image];
      if (!files) throw new CtunError('IMAGE_MISSING', `the image ${image} does not exist`, { exitCode: ExitCode.Usage });
      const out = new Map<string, Buffer>();
      for (const [p, data] of Object.entries(files)) {
        const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
        const under = paths.some((root) => p === root || p.startsWith(root.replace(/\/?$/, '/')));
        if (under && keep(p) && b.length <= maxBytes) out.set(p, b);
      }
      return out;
    },
  };
}
