/**
 * Ctrl-C in the middle of ctun-run: whatever step it is at, nothing labelled stays
 * behind. The simulator is kept from becoming ready (its license server never
 * answers, with many retries), so the SIGINT lands while ctun-run waits.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startProcess } from '../../tools/lab/index.js';
import { DEFAULT_IMAGES } from '../../tools/demo/images.js';
import { CTUN_RUN, deployUnavailable, leftovers, NODE, prepareImages, removeDeployment } from './harness/deploy.js';

const skip = await deployUnavailable();
const names: string[] = [];
afterEach(async () => {
  for (const n of names.splice(0)) await removeDeployment(n);
});

describe.skipIf(skip)('ctun-run interrupted', () => {
  beforeAll(async () => {
    await prepareImages();
  });

  const neverLicensed = ['--env', 'VEOS_STANDIN_LICENSE_ATTEMPTS=100', '--env', 'VEOS_STANDIN_LICENSE_RETRY_DELAY_MS=1000'];

  it('separated: SIGINT while waiting for readiness removes both containers and the network, exit 130', async () => {
    const name = 'ctun-e2e-int-sep';
    names.push(name);
    const run = startProcess(
      NODE,
      [
        CTUN_RUN, 'separate', DEFAULT_IMAGES.veos, '22399@127.0.0.1', ...neverLicensed, '--hostPort', '17271',
        '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`, '--progress', 'plain',
      ],
      { label: 'ctun-run separate' },
    );
    // Both containers started, the server is up: only the simulator keeps it waiting.
    await run.waitFor(new RegExp(`✔ start container ${name}-ctun`), 60_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await leftovers(name)).length).toBe(3);
    run.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.output).toContain('ctun-run: SIGINT: undoing what was started');
    expect(run.output).toMatch(/ctun-run: error: interrupted while .*; everything started was removed/);
    expect(await leftovers(name)).toEqual([]);
  });

  it('integrated: SIGINT right after the container was created removes it, exit 130', async () => {
    const name = 'ctun-e2e-int-int';
    names.push(name);
    const run = startProcess(
      NODE,
      [
        CTUN_RUN, 'veos', DEFAULT_IMAGES.veosCtun, '22399@127.0.0.1', '--startCtun', 'yes', ...neverLicensed, '--hostPort', '17272',
        '--veosDockerContainer', name, '--progress', 'plain',
      ],
      { label: 'ctun-run veos' },
    );
    await run.waitFor(new RegExp(`start container ${name}`), 60_000);
    run.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(await leftovers(name)).toEqual([]);
  });
});
