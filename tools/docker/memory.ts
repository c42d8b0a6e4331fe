import { PassThrough } from 'node:stream';
import { CtunError } from '../common/index.js';
import { readTarEntries } from './context.js';
import type { BuildRequest, DockerEngine, ImageInfo, ImportRequest } from './engine.js';
import { readDockerStream, type DockerStreamEvent, type DockerStreamMessage, type DockerStreamResult } from './stream.js';

export interface MemoryBuild {
  tags: string[];
  dockerfile: string;
  files: Map<string, Buffer>;
  request: Omit<BuildRequest, 'context'>;
}

export interface MemoryDockerOptions {
  /** Images that exist from the start. */
  images?: string[];
  /**
   * The stream the "daemon" answers a build with. Default: one `Step n/N` per
   * Dockerfile instruction and success. Return an `errorDetail` message to fail.
   */
  respond?: (build: MemoryBuild) => DockerStreamMessage[];
  /** Whether ping succeeds; default true. */
  reachable?: boolean;
}

/** Default answer: every Dockerfile instruction becomes a step, then success. */
export function defaultBuildResponse(build: MemoryBuild): DockerStreamMessage[] {
  const lines = build.dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const out: DockerStreamMessage[] = [];
  lines.forEach((l, i) => {
    out.push({ stream: `Step ${i + 1}/${lines.length} : ${l}` }, { stream: '\n' }, { stream: ` ---> ${String(i).padStart(12, '0')}\n` });
  });
  out.push({ aux: { ID: `sha256:${'0'.repeat(64)}` } }, { stream: 'Successfully built 000000000000\n' });
  return out;
}

/**
 * The in-memory twin of {@link DockerEngine}: it unpacks each build context, answers
 * with a scripted stream that goes through the same stream reader as the real daemon,
 * and remembers images. For unit tests of plans and the executor.
 */
export function createMemoryDocker(options: MemoryDockerOptions = {}): DockerEngine & {
  builds: MemoryBuild[];
  imports: Array<Omit<ImportRequest, 'rootfs'> & { bytes: number }>;
  images: Map<string, ImageInfo>;
} {
  const images = new Map<string, ImageInfo>();
  let counter = 0;
  const addImage = (refs: string[], labels: Record<string, string> = {}): string => {
    const id = `sha256:${(++counter).toString(16).padStart(64, '0')}`;
    for (const r of refs) images.set(r, { id, tags: refs, labels, created: new Date(0).toISOString(), size: 0 });
    return id;
  };
  for (const i of options.images ?? []) addImage([i]);
  const builds: MemoryBuild[] = [];
  const imports: Array<Omit<ImportRequest, 'rootfs'> & { bytes: number }> = [];
  const respond = options.respond ?? defaultBuildResponse;

  const engine: DockerEngine = {
    async ping() {
      if (options.reachable === false) throw new CtunError('DOCKER_UNAVAILABLE', 'cannot reach the Docker daemon (memory twin set unreachable)');
    },
    async inspectImage(ref) {
      return images.get(ref.includes(':') ? ref : `${ref}:latest`) ?? images.get(ref);
    },
    async imageExists(ref) {
      return (await engine.inspectImage(ref)) !== undefined;
    },
    async build(request, onEvent?: (e: DockerStreamEvent) => void): Promise<DockerStreamResult & { imageId: string }> {
      const files = await readTarEntries(request.context);
      const dockerfileName = request.dockerfile ?? 'Dockerfile';
      const dockerfile = files.get(dockerfileName)?.toString('utf8');
      if (dockerfile === undefined) throw new CtunError('BUILD_REJECTED', `no ${dockerfileName} in the build context`);
      const { context: _context, ...rest } = request;
      const build: MemoryBuild = { tags: request.tags, dockerfile, files, request: rest };
      builds.push(build);
      const stream = new PassThrough();
      const result = readDockerStream(stream, { operation: 'build', subject: request.tags[0] ?? 'image', ...(onEvent ? { onEvent } : {}) });
      for (const m of respond(build)) stream.write(JSON.stringify(m) + '\r\n');
      stream.end();
      const r = await result;
      // Labels set in the Dockerfile (LABEL k="v" ...), as the daemon would record them.
      const labels: Record<string, string> = { ...request.labels };
      for (const m of dockerfile.replace(/\\\n/g, ' ').matchAll(/^LABEL\s+(.*)$/gm)) {
        for (const kv of m[1]!.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
          labels[kv[1]!] = kv[2]!.startsWith('"') ? (JSON.parse(kv[2]!) as string) : kv[2]!;
        }
      }
      return { ...r, imageId: addImage(request.tags, labels) };
    },
    async importImage(request) {
      let bytes = 0;
      for await (const c of request.rootfs as AsyncIterable<Buffer>) bytes += c.length;
      const { rootfs: _r, ...rest } = request;
      imports.push({ ...rest, bytes });
      return { imageId: addImage([`${request.repo}:${request.tag}`]) };
    },
    async pullImage(ref) {
      if (!images.has(ref)) throw new CtunError('PULL_FAILED', `pulling ${ref} failed: no registry in the memory twin`);
    },
    async tagImage(source, target) {
      const info = await engine.inspectImage(source);
      if (!info) throw new CtunError('IMAGE_MISSING', `no such image: ${source}`);
      images.set(target, { ...info, tags: [...info.tags, target] });
    },
    async removeImage(ref) {
      images.delete(ref);
    },
    async listImages(labels) {
      const seen = new Set<string>();
      return [...images.values()].filter((i) => {
        if (seen.has(i.id)) return false;
        seen.add(i.id);
        return Object.entries(labels).every(([k, v]) => i.labels[k] === v);
      });
    },
  };
  return Object.assign(engine, { builds, imports, images });
}
