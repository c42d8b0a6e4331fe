/**
 * Which tunnel an image carries. An image built by an older ctun keeps its old tunnel
 * (no `--metrics`, no `ctun status`) under the same tag; the demo and the tests must
 * tell that without starting it. So every image that carries the tunnel is labelled
 * with a digest of the runtime that went in (the Node binary, the `ctun` wrapper, the
 * bundled script, the addon: the runtime image's context), and this checkout's or
 * install's own digest is computed by making that context alone — a bundle, no build.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DockerEngine } from '../docker/index.js';
import { materializeContext } from './context.js';
import type { ProjectPaths } from './paths.js';
import { planRuntime, type CommonBuildOptions, type ImageStep } from './plan.js';

/** The label with the digest of the tunnel runtime an image carries. */
export const LABEL_TUNNEL_DIGEST = 'io.ctun.tunnel-digest';

// Content digests of files by identity: the 120 MB Node binary is read once per
// process, though every build context hard-links it anew.
const fileDigests = new Map<string, Promise<string>>();

async function fileDigest(path: string): Promise<string> {
  const st = await stat(path);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  let d = fileDigests.get(key);
  if (!d) {
    d = (async () => {
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
      return hash.digest('hex');
    })();
    fileDigests.set(key, d);
    d.catch(() => fileDigests.delete(key));
  }
  return d;
}

/**
 * The digest of a materialized runtime context: every file but the Dockerfile (path,
 * mode, content). The Dockerfile only says where the files go and what labels the
 * image gets, so it is not the tunnel.
 */
export async function runtimeContextDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === 'Dockerfile') continue;
      const st = await stat(join(dir, path));
      if (st.isDirectory()) {
        await walk(path);
        continue;
      }
      hash.update(`${path} ${(st.mode & 0o777).toString(8)} ${await fileDigest(join(dir, path))}\n`);
    }
  };
  await walk('');
  return hash.digest('hex').slice(0, 32);
}

/**
 * The tunnel digest the images of this checkout or install would carry: the runtime
 * context made in a temporary folder (the bundle, hard links to the Node binary and
 * the addon) and digested; about a second, the first time in a process.
 */
export async function checkoutTunnelDigest(paths: ProjectPaths, options: Pick<CommonBuildOptions, 'ctunEntry'> & { tmpDir?: string } = {}): Promise<string> {
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'ctun-tunnel-digest-'));
  try {
    await materializeContext(planRuntime(paths, options.ctunEntry ? { ctunEntry: options.ctunEntry } : {}), paths, dir);
    return await runtimeContextDigest(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The tunnel digest an image built from this step will carry, or undefined for an
 * image without the tunnel (or built from a runtime image that has no label).
 */
export async function stepTunnelDigest(step: ImageStep, contextDir: string, docker: DockerEngine): Promise<string | undefined> {
  if (!step.tunnel) return undefined;
  if (step.tunnel.from === 'context') return runtimeContextDigest(contextDir);
  return (await docker.inspectImage(step.tunnel.from))?.labels[LABEL_TUNNEL_DIGEST];
}
