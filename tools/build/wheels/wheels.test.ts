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
  });

  it('parses a wheel file name', () => {
    expect(parseWheelFile('supervisor-4.2.5-py3-none-any.whl')).toEqual({ file: 'supervisor-4.2.5-py3-none-any.whl', name: 'supervisor', version: '4.2.5' });
  });
});
