import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger } from '../common/index.js';
import { checkoutTunnelDigest, LABEL_PYTHON_STANDINS, LABEL_TUNNEL_DIGEST, type ProjectPaths } from '../image/index.js';
import { createMemoryDocker } from '../docker/index.js';
import { miniatureCheckout } from '../image/testing.js';
import { checkImagePrefix, demoImages, ensureImages } from './images.js';

const never = (): Promise<boolean> => Promise.reject(new Error('the PyPI probe must not run'));
let dir: string;
let wheels: string;
// A checkout in miniature: a prebuilt bundle (copied, not bundled), a small "Node" and
// "addon", so a runtime context is a few bytes (unit-test fast).
let paths: ProjectPaths;
let ours: string;
// Only the simulator image is missing; the tunnel images carry this checkout's tunnel.
let present: Array<string | { ref: string; labels: Record<string, string> }>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctun-demo-images-test-'));
  paths = await miniatureCheckout(dir);
  ours = await checkoutTunnelDigest(paths);
  const tunnel = { [LABEL_TUNNEL_DIGEST]: ours };
  present = ['t/debian:12', { ref: 't/dspace/ctun/separate-server:23.1.0', labels: tunnel }, { ref: 't/dspace/veos/simulator:23.1-ctun', labels: tunnel }];
  wheels = join(dir, 'wheels');
  await mkdir(wheels);
  for (const w of ['setuptools-66.1.1', 'supervisor-4.2.5', 'toposort-1.9', 'supervisor_console-0.5.0+ctundemo', 'supervisord_dependent_startup-1.4.0+ctundemo']) await writeFile(join(wheels, `${w}-py3-none-any.whl`), '');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the demo images', () => {
  it('with a prefix, every name (the base too) is its own', () => {
    expect(demoImages('t')).toEqual({ veos: 't/dspace/veos/simulator:23.1', veosCtun: 't/dspace/veos/simulator:23.1-ctun', separateServer: 't/dspace/ctun/separate-server:23.1.0' });
    expect(() => checkImagePrefix('Fresh Set')).toThrow(expect.objectContaining({ code: 'DEMO_BAD_IMAGE_PREFIX', exitCode: 1 }));
    expect(() => checkImagePrefix('ctun-e2e/fresh_1')).not.toThrow();
  });

  it('uses PyPI when it answers, and says so in one line before the image line with its time', async () => {
    const docker = createMemoryDocker({ images: present });
    const phases: string[] = [];
    const r = await ensureImages({ docker, logger: createMemoryLogger(), paths, imagePrefix: 't', cacheDir: dir, python: 'auto', probePypi: async () => true, onPhase: (l) => phases.push(l) });
    expect(r.built).toEqual(['t/dspace/veos/simulator:23.1']);
    expect(r.python).toEqual({ source: 'pypi', reason: 'PyPI answers' });
    expect(phases).toEqual(['Python packages: from PyPI (PyPI answers)', 'building t/dspace/veos/simulator:23.1', expect.stringMatching(/^built t\/dspace\/veos\/simulator:23\.1 \(\d+ s\)$/)]);
    expect(docker.builds[0]!.tags).toEqual(['t/dspace/veos/simulator:23.1']);
    expect(docker.builds[0]!.dockerfile).toContain('FROM t/debian:12');
    expect(docker.builds[0]!.dockerfile).toContain('--index-url "$PIP_INDEX_URL"');
    expect(docker.builds[0]!.request.buildArgs?.PIP_INDEX_URL).toBe('https://pypi.org/simple');
    expect(docker.builds[0]!.dockerfile).not.toContain(LABEL_PYTHON_STANDINS);
  });

  it('given wheels, asks nobody; an image built from the stand-ins carries their label', async () => {
    const docker = createMemoryDocker({ images: present });
    const r = await ensureImages({ docker, logger: createMemoryLogger(), paths, imagePrefix: 't', cacheDir: dir, wheels, python: 'auto', probePypi: never });
    expect(r.python).toBeUndefined();
    expect(docker.builds[0]!.dockerfile).toContain('--no-index --find-links /tmp/wheels');
    expect(docker.builds[0]!.dockerfile).toContain(`${LABEL_PYTHON_STANDINS}="supervisor_console 0.5.0+ctundemo, supervisord_dependent_startup 1.4.0+ctundemo"`);
  });

  it('builds nothing and asks nobody when every image is there', async () => {
    const docker = createMemoryDocker({ images: [...present, 't/dspace/veos/simulator:23.1'] });
    const r = await ensureImages({ docker, logger: createMemoryLogger(), paths, imagePrefix: 't', cacheDir: dir, probePypi: never });
    expect(r.built).toEqual([]);
    expect(docker.builds).toHaveLength(0);
  });

  it('builds a missing tunnel image, keeps one with this tunnel, and rebuilds one with another tunnel, saying why in one line', async () => {
    const docker = createMemoryDocker({ images: ['t/debian:12', 't/dspace/veos/simulator:23.1', { ref: 't/dspace/veos/simulator:23.1-ctun', labels: { [LABEL_TUNNEL_DIGEST]: ours } }] });
    const run = async () => {
      const phases: string[] = [];
      const r = await ensureImages({ docker, logger: createMemoryLogger(), paths, imagePrefix: 't', cacheDir: dir, wheels, probePypi: never, onPhase: (l) => phases.push(l) });
      return { built: r.built, phases };
    };
    // Missing: built, with this checkout's tunnel.
    const missing = await run();
    expect(missing.built).toEqual(['t/dspace/ctun/runtime:23.1.0', 't/dspace/ctun/separate-server:23.1.0']);
    expect(missing.phases[0]).toBe('building t/dspace/ctun/separate-server:23.1.0');
    expect(docker.images.get('t/dspace/ctun/separate-server:23.1.0')?.labels[LABEL_TUNNEL_DIGEST]).toBe(ours);
    // Same tunnel: kept, nothing built.
    const builds = docker.builds.length;
    expect(await run()).toEqual({ built: [], phases: [] });
    expect(docker.builds).toHaveLength(builds);
    // Another tunnel (this checkout changed since): both tunnel images rebuilt, the plain simulator kept.
    await writeFile(paths.ctunEntry, 'console.log("ctun 2")\n');
    try {
      const newer = await checkoutTunnelDigest(paths);
      const other = await run();
      expect(other.built).toEqual(['t/dspace/ctun/runtime:23.1.0', 't/dspace/ctun/separate-server:23.1.0', 't/dspace/veos/simulator:23.1-ctun']);
      expect(other.phases).toContain(`rebuilding t/dspace/ctun/separate-server:23.1.0: it carries another tunnel than this ctun (${LABEL_TUNNEL_DIGEST} ${ours.slice(0, 12)}, this ctun's ${newer.slice(0, 12)})`);
      expect(other.phases).toContain(`rebuilding t/dspace/veos/simulator:23.1-ctun: it carries another tunnel than this ctun (${LABEL_TUNNEL_DIGEST} ${ours.slice(0, 12)}, this ctun's ${newer.slice(0, 12)})`);
      expect(other.phases.filter((l) => l.startsWith('building'))).toEqual([]);
      for (const ref of ['t/dspace/ctun/separate-server:23.1.0', 't/dspace/veos/simulator:23.1-ctun']) expect(docker.images.get(ref)?.labels[LABEL_TUNNEL_DIGEST]).toBe(newer);
      expect(docker.builds.map((b) => b.tags[0])).not.toContain('t/dspace/veos/simulator:23.1');
    } finally {
      await writeFile(paths.ctunEntry, 'console.log("ctun 1")\n');
    }
  });

  it('rebuilds a tunnel image an older ctun made (no tunnel label), and says so', async () => {
    const docker = createMemoryDocker({ images: ['t/debian:12', 't/dspace/veos/simulator:23.1', 't/dspace/veos/simulator:23.1-ctun', { ref: 't/dspace/ctun/separate-server:23.1.0', labels: { [LABEL_TUNNEL_DIGEST]: ours } }] });
    const phases: string[] = [];
    const r = await ensureImages({ docker, logger: createMemoryLogger(), paths, imagePrefix: 't', cacheDir: dir, wheels, probePypi: never, onPhase: (l) => phases.push(l) });
    expect(r.built).toEqual(['t/dspace/ctun/runtime:23.1.0', 't/dspace/veos/simulator:23.1-ctun']);
    expect(phases[0]).toBe('rebuilding t/dspace/veos/simulator:23.1-ctun: it carries another tunnel than this ctun (no tunnel digest: built by an older ctun)');
  });
});
