import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, metadata } from '../common/index.js';
import { createMemoryDocker } from '../docker/index.js';
import { executeBuildPlan, LABEL_CONTEXT_DIGEST } from './execute.js';
import { projectPaths, type ProjectPaths } from './paths.js';
import { planCtun, planVeos, runtimeImageName, type TarballInfo } from './plan.js';
import { miniatureCheckout, STANDIN_TARBALL } from './testing.js';
import { checkoutTunnelDigest, LABEL_TUNNEL_DIGEST } from './tunnel-digest.js';

// A checkout in miniature: a prebuilt bundle (copied, not bundled), a small "Node" and
// "addon", so the runtime context is a few bytes and the test needs no esbuild.
let dir: string;
let paths: ProjectPaths;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctun-tunnel-digest-test-'));
  paths = await miniatureCheckout(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// The stand-in's manifest, with a file that exists as the tarball (the build context copies it).
const tarball: TarballInfo = { ...STANDIN_TARBALL, path: `${projectPaths().root}/metadata.json` };

describe('the tunnel an image carries', () => {
  it('labels the runtime and every image that copies it with the checkout tunnel digest; an image without the tunnel gets none', async () => {
    const docker = createMemoryDocker({ images: ['debian:12'] });
    const opts = { docker, logger: createMemoryLogger(), paths };
    await executeBuildPlan(planCtun({ eula: 'acceptDspaceEula', distro: 'debian' }, paths, ['separate-server']), opts);
    const ours = await checkoutTunnelDigest(paths);
    expect(ours).toMatch(/^[0-9a-f]{32}$/);
    expect(docker.images.get(runtimeImageName())?.labels[LABEL_TUNNEL_DIGEST]).toBe(ours);
    expect(docker.images.get(metadata.images.separateServer)?.labels[LABEL_TUNNEL_DIGEST]).toBe(ours);
    const veos = (installCtun: boolean) => planVeos({ eula: 'acceptDspaceEula', mode: 'online', image: metadata.images.veos, tarball, installCtun, distro: 'debian' }, paths);
    await executeBuildPlan(veos(true), opts);
    expect(docker.images.get(metadata.images.veos)?.labels[LABEL_TUNNEL_DIGEST]).toBe(ours);
    await executeBuildPlan(veos(false), opts);
    expect(docker.images.get(metadata.images.veos)?.labels).not.toHaveProperty(LABEL_TUNNEL_DIGEST);
  });

  it('a changed runtime makes the images that copy it out of date (ctun-build ctun rebuilds them)', async () => {
    const docker = createMemoryDocker({ images: ['debian:12'] });
    const opts = { docker, logger: createMemoryLogger(), paths };
    const plan = planCtun({ eula: 'acceptDspaceEula', distro: 'debian' }, paths, ['separate-server']);
    expect((await executeBuildPlan(plan, opts)).map((b) => b.upToDate)).toEqual([false, false]);
    expect((await executeBuildPlan(plan, opts)).map((b) => b.upToDate)).toEqual([true, true]);
    const before = docker.images.get(metadata.images.separateServer)!;
    await writeFile(paths.ctunEntry, 'console.log("ctun 2")\n');
    try {
      expect((await executeBuildPlan(plan, opts)).map((b) => b.upToDate)).toEqual([false, false]);
      const after = docker.images.get(metadata.images.separateServer)!;
      expect(after.labels[LABEL_TUNNEL_DIGEST]).toBe(await checkoutTunnelDigest(paths));
      expect(after.labels[LABEL_TUNNEL_DIGEST]).not.toBe(before.labels[LABEL_TUNNEL_DIGEST]);
      expect(after.labels[LABEL_CONTEXT_DIGEST]).not.toBe(before.labels[LABEL_CONTEXT_DIGEST]);
    } finally {
      await writeFile(paths.ctunEntry, 'console.log("ctun 1")\n');
    }
  });
});
