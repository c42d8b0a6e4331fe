/**
 * The demo from nothing, as `npm run demo` runs it (tsx tools/demo/run.ts), with its
 * output checked line by line for every step. It runs with an image prefix of its own,
 * so no image of another test or an earlier run can stand in for one it needs: the
 * base image is bootstrapped from the host's Debian mirror, every image is built, and
 * the simulator's Python packages are made from that mirror (`--python debian`: PyPI
 * is never contacted, not even looked up). Afterwards exactly the images it made are
 * removed. A cold run: minutes, most of it the base bootstrap and the apt installs.
 */
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { LABEL_PYTHON_STANDINS } from '../../tools/image/index.js';
import { deployUnavailable, docker, leftovers, ROOT } from './harness/deploy.js';

const skip = await deployUnavailable();
// A fresh set of tags for this run only (lower case, as Docker wants).
const PREFIX = `ctun-e2e-fresh-${process.pid}-${Date.now().toString(36)}`;
const TSX = `${ROOT}node_modules/.bin/tsx`;

/** Every tag under this run's prefix that the daemon holds. */
async function prefixedTags(): Promise<string[]> {
  const all = await docker.listImages();
  return all.flatMap((i) => i.tags).filter((t) => t.startsWith(`${PREFIX}/`)).sort();
}

/** Removes this run's images, newest first (children before the base they were built on). */
async function removeOwnImages(): Promise<void> {
  const all = await docker.listImages();
  const own = all.filter((i) => i.tags.some((t) => t.startsWith(`${PREFIX}/`))).sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
  for (const image of own) {
    for (const tag of image.tags.filter((t) => t.startsWith(`${PREFIX}/`))) await docker.removeImage(tag).catch(() => undefined);
  }
}

async function wheelScratchDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((d) => d.startsWith('ctun-demo-wheels-'));
}

describe.skipIf(skip)('npm run demo', () => {
  beforeAll(async () => {
    expect(await prefixedTags()).toEqual([]);
  });

  afterAll(async () => {
    await removeOwnImages();
    expect(await prefixedTags()).toEqual([]);
  });

  it('--help documents the fresh image set and the Python source', async () => {
    const r = await execa(TSX, ['tools/demo/run.ts', '--help'], { cwd: ROOT, reject: false, all: true, timeout: 60_000 });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/--imagePrefix\s+name every image PREFIX\/<name>, the base image included/);
    expect(r.stdout).toMatch(/--python\s+where the simulator image's Python packages come from/);
    expect(r.stdout).toContain('[choices: "auto", "pypi", "debian"]');
  });

  it('builds its own images from nothing, shows every step for both deployments and removes everything', async () => {
    const scratchBefore = await wheelScratchDirs();
    const r = await execa(TSX, ['tools/demo/run.ts', '--imagePrefix', PREFIX, '--python', 'debian', '--progress', 'plain'], {
      cwd: ROOT,
      reject: false,
      all: true,
      timeout: 1_200_000,
      env: { PATH: `${ROOT}node_modules/.bin:${process.env.PATH}` },
    });
    const out = r.all ?? '';
    expect(r.exitCode, out).toBe(0);
    const expectLine = (re: RegExp): void => expect(out, `missing ${re}`).toMatch(re);
    const p = PREFIX.replace(/[.]/g, '\\.');

    // The images: each built now, one line each with its time; the Python line once.
    expectLine(new RegExp(`^ {2}· bootstrapping ${p}/debian:12 from this host's apt mirror$`, 'm'));
    for (const image of ['debian:12', 'dspace/ctun/runtime:23\\.1\\.0', 'dspace/ctun/separate-server:23\\.1\\.0', 'dspace/veos/simulator:23\\.1', 'dspace/veos/simulator:23\\.1-ctun']) {
      expectLine(new RegExp(`^ {2}· built ${p}/${image} \\(\\d+ s\\)$`, 'm'));
    }
    const python = out.split('\n').filter((l) => l.includes('Python packages'));
    expect(python, out).toHaveLength(1);
    expect(python[0]).toMatch(
      /^ {2}· Python packages: PyPI not asked \(--python debian\), so wheels made from this host's Debian mirror \(setuptools \S+, supervisor 4\.2\.\S+, toposort \S+\) and the demo's own stand-ins \(supervisor_console 0\.5\.\d+\+ctundemo, supervisord_dependent_startup 1\.4\.\d+\+ctundemo\)$/,
    );
    expectLine(/^✔ images \(built 5 images\) \(\d+\.\d s\)$/m);
    expect(await prefixedTags()).toEqual([
      `${PREFIX}/debian:12`,
      `${PREFIX}/dspace/ctun/runtime:23.1.0`,
      `${PREFIX}/dspace/ctun/separate-server:23.1.0`,
      `${PREFIX}/dspace/veos/simulator:23.1`,
      `${PREFIX}/dspace/veos/simulator:23.1-ctun`,
    ]);
    for (const tag of ['dspace/veos/simulator:23.1', 'dspace/veos/simulator:23.1-ctun']) {
      const labels = (await docker.inspectImage(`${PREFIX}/${tag}`))!.labels;
      expect(labels[LABEL_PYTHON_STANDINS], tag).toMatch(/^supervisor_console 0\.5\.\d+\+ctundemo, supervisord_dependent_startup 1\.4\.\d+\+ctundemo$/);
    }
    // The wheels were made for this run only: nothing is left where a later build could find them.
    expect(await wheelScratchDirs()).toEqual(scratchBefore);

    expectLine(/^ {2}· license server 22350@\d+\.\d+\.\d+\.\d+ /m);
    expectLine(/^ {2}· PC 10\.213\.0\.2, its only link: a veth to the Docker host at 10\.213\.0\.1$/m);
    for (const kind of ['integrated', 'separated'] as const) {
      const target = kind === 'integrated' ? '192\\.168\\.100\\.1' : '\\d+\\.\\d+\\.\\d+\\.\\d+';
      expectLine(new RegExp(`^ {2}· \\$ ctun-run ${kind === 'integrated' ? `veos ${p}/dspace/veos/simulator:23\\.1-ctun 22350@\\S+ --startCtun yes` : `separate ${p}/dspace/veos/simulator:23\\.1 22350@\\S+`} --host 10\\.213\\.0\\.1$`, 'm'));
      expectLine(new RegExp(`^✔ ${kind}: ctun-run (veos|separate) \\(`, 'm'));
      expectLine(new RegExp(`^✔ ${kind}: without the tunnel the PC cannot reach the simulator`, 'm'));
      expectLine(new RegExp(`^ {2}· \\$ ctun client 10\\.213\\.0\\.1${kind === 'separated' ? ' --dest \\S+' : ''}$`, 'm'));
      expectLine(new RegExp(`^ {2}· client-connected server=10\\.213\\.0\\.1:1723`, 'm'));
      expectLine(new RegExp(`^ {2}· port mapper ${target}:27027 opened a TCP server on port \\d+ and a UDP server on port \\d+ \\(chosen at run time\\)$`, 'm'));
      expectLine(new RegExp(`^ {2}· TCP ${target}:\\d+: greeting "HELLO ${kind}-tcp", answer "${kind}-tcp: ping over the tunnel"$`, 'm'));
      expectLine(new RegExp(`^ {2}· UDP ${target}:\\d+: answer "${kind}-udp: datagram over the tunnel"$`, 'm'));
      expectLine(new RegExp(`^ {2}· XCP ${target}:5555: CONNECT answered ff0400ffb8050101, then 5 DAQ packets arrived unrequested \\(seq 0\\.\\.4\\)$`, 'm'));
      expectLine(new RegExp(`^✔ ${kind}: through the tunnel`, 'm'));
      expectLine(new RegExp(`^✔ ${kind}: remove`, 'm'));
    }
    expectLine(/^ {2}· broadcast DISCOVER: "VEOS stand-in" 23\.1 answered from 192\.168\.100\.1$/m);
    expect(out.match(/^ {2}· the same TCP port straight at the Docker host 10\.213\.0\.1:\d+: ECONNREFUSED \(unreachable without the tunnel\)$/gm)).toHaveLength(2);
    expectLine(/^demo done: everything it started is removed$/m);
    expect(out).not.toMatch(/✖/);
    for (const d of ['dspace-veos', 'ctun-demo-license']) expect(await leftovers(d)).toEqual([]);
    expect((await execa('ip', ['netns', 'list'])).stdout).not.toMatch(/ctundemo0/);
  }, 1_260_000);
});
