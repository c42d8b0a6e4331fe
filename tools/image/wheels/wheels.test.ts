import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkWheels } from '../plan.js';
import { isStandinWheel, makeStandinWheels, parseWheelFile, STANDIN_LABEL } from './wheels.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('stand-in wheels', () => {
  it('are built locally, carry +ctundemo and satisfy the versions the build asks for', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ctun-wheels-test-'));
    const made = await makeStandinWheels(dir);
    expect(made.map((w) => w.file)).toEqual([`supervisor_console-0.5.0+${STANDIN_LABEL}-py3-none-any.whl`, `supervisord_dependent_startup-1.4.0+${STANDIN_LABEL}-py3-none-any.whl`]);
    expect(await readdir(dir)).toEqual(made.map((w) => w.file));
    expect(made.every((w) => isStandinWheel(w.file))).toBe(true);
    // With Debian's three beside them nothing is short; the label does not spoil `==0.5.*`.
    const debian = ['setuptools-66.1.1-py3-none-any.whl', 'supervisor-4.2.5-py3-none-any.whl', 'toposort-1.9-py3-none-any.whl'];
    expect(checkWheels([...debian, ...made.map((w) => w.file)])).toEqual([]);
    expect(debian.some(isStandinWheel)).toBe(false);
  }, 30_000); // two python3 runs: seconds on a loaded machine

  it('parses a wheel file name', () => {
    expect(parseWheelFile('supervisor-4.2.5-py3-none-any.whl')).toEqual({ file: 'supervisor-4.2.5-py3-none-any.whl', name: 'supervisor', version: '4.2.5' });
  });
});

describe('images built from stand-ins', () => {
  it('are labelled with the stand-ins they install; others are left as they are', async () => {
    const { planVeos } = await import('../plan.js');
    const { projectPaths } = await import('../paths.js');
    const { LABEL_PYTHON_STANDINS, labelStandinImages } = await import('./wheels.js');
    const tarball = { path: '/srv/t.tar.gz', product: 'VEOS stand-in', release: '2023a', version: '23.1', topDir: 'd', installScript: 'install.sh', installDir: '/opt/d', simulatorArgv: ['python3'], needsDotnet: false, ports: [] };
    const files = ['setuptools-66.1.1-py3-none-any.whl', 'supervisor-4.2.5-py3-none-any.whl', 'toposort-1.9-py3-none-any.whl'];
    const plan = (wheels: string[]) =>
      planVeos({ eula: 'acceptDspaceEula', distro: 'debian', mode: 'online', image: 'x/veos:1', tarball, installCtun: true, wheels: { dir: '/w', files: wheels } }, projectPaths());
    const withStandins = labelStandinImages(plan([...files, 'supervisor_console-0.5.0+ctundemo-py3-none-any.whl', 'supervisord_dependent_startup-1.4.0+ctundemo-py3-none-any.whl']));
    const veos = withStandins.images.find((i) => i.id === 'veos-ctun')!;
    expect(veos.labels[LABEL_PYTHON_STANDINS]).toBe('supervisor_console 0.5.0+ctundemo, supervisord_dependent_startup 1.4.0+ctundemo');
    expect(withStandins.images.find((i) => i.id === 'ctun-runtime')!.labels[LABEL_PYTHON_STANDINS]).toBeUndefined();
    const real = plan([...files, 'supervisor_console-0.5.1-py3-none-any.whl', 'supervisord_dependent_startup-1.4.0-py3-none-any.whl']);
    expect(labelStandinImages(real)).toBe(real);
  });
});
