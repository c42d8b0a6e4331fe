import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger } from '../common/index.js';
import { LABEL_PYTHON_STANDINS } from '../image/index.js';
import { createMemoryDocker } from '../docker/index.js';
import { checkImagePrefix, demoImages, ensureImages } from './images.js';

// Only the simulator image is missing: no runtime bundle, no base bootstrap (unit-test fast).
const present = ['t/debian:12', 't/dspace/ctun/separate-server:23.1.0', 't/dspace/veos/simulator:23.1-ctun'];
const never = (): Promise<boolean> => Promise.reject(new Error('the PyPI probe must not run'));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctun-demo-images-test-'));
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
    const r = await ensureImages({ docker, logger: createMemoryLogger(), imagePrefix: 't', cacheDir: dir, python: 'auto', probePypi: async () => true, onPhase: (l) => phases.push(l) });
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
    const wheels = join(dir, 'wheels');
    await rm(wheels, { recursive: true, force: true });
    await mkdir(wheels);
    for (const w of ['setuptools-66.1.1', 'supervisor-4.2.5', 'toposort-1.9', 'supervisor_console-0.5.0+ctundemo', 'supervisord_dependent_startup-1.4.0+ctundemo']) await writeFile(join(wheels, `${w}-py3-none-any.whl`), '');
    const docker = createMemoryDocker({ images: present });
    const r = await ensureImages({ docker, logger: createMemoryLogger(), imagePrefix: 't', cacheDir: dir, wheels, python: 'auto', probePypi: never });
    expect(r.python).toBeUndefined();
    expect(docker.builds[0]!.dockerfile).toContain('--no-index --find-links /tmp/wheels');
    expect(docker.builds[0]!.dockerfile).toContain(`${LABEL_PYTHON_STANDINS}="supervisor_console 0.5.0+ctundemo, supervisord_dependent_startup 1.4.0+ctundemo"`);
  });

  it('builds nothing and asks nobody when every image is there', async () => {
    const docker = createMemoryDocker({ images: [...present, 't/dspace/veos/simulator:23.1'] });
    const r = await ensureImages({ docker, logger: createMemoryLogger(), imagePrefix: 't', cacheDir: dir, probePypi: never });
    expect(r.built).toEqual([]);
    expect(docker.builds).toHaveLength(0);
  });
});
