import { readdir } from 'node:fs/promises';
import * as tar from 'tar';

/**
 * Packs a directory as a Docker build context (a tar stream), made with `tar`.
 * `portable` drops owner names and times that would change the archive between
 * otherwise identical builds; modes are kept, so executables stay executable.
 */
export async function createContextTar(dir: string): Promise<NodeJS.ReadableStream> {
  const entries = (await readdir(dir)).sort();
  return tar.create({ cwd: dir, portable: true, gzip: false, follow: false }, entries) as unknown as NodeJS.ReadableStream;
}

/** Reads a tar stream into `{path: contents}` (for the in-memory twin and tests). */
export async function readTarEntries(stream: NodeJS.ReadableStream): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  await new Promise<void>((resolve, reject) => {
    const parser = new tar.Parser({
      onReadEntry: (entry) => {
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => {
          if (entry.type === 'File' || entry.type === 'OldFile') files.set(entry.path.replace(/^\.\//, ''), Buffer.concat(chunks));
        });
      },
    });
    parser.on('end', () => resolve());
    parser.on('error', reject);
    stream.on('error', reject);
    stream.pipe(parser as unknown as NodeJS.WritableStream);
  });
  return files;
}
