/**
 * The demo, as `npm run demo` runs it (tsx tools/demo/run.ts), with its output checked
 * line by line for every step. Images are built first when missing (warm caches make
 * this a half-minute test).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { deployUnavailable, leftovers, prepareImages, ROOT } from './harness/deploy.js';

const skip = await deployUnavailable();

describe.skipIf(skip)('npm run demo', () => {
  beforeAll(async () => {
    await prepareImages();
  });

  it('shows every step for both deployments and removes everything', async () => {
    const r = await execa(`${ROOT}node_modules/.bin/tsx`, ['tools/demo/run.ts'], { cwd: ROOT, reject: false, all: true, timeout: 240_000, env: { PATH: `${ROOT}node_modules/.bin:${process.env.PATH}` } });
    const out = r.all ?? '';
    expect(r.exitCode, out).toBe(0);
    const expectLine = (re: RegExp): void => expect(out, `missing ${re}`).toMatch(re);
    expectLine(/^✔ images \((cached|built .*)\)/m);
    expectLine(/^ {2}· license server 22350@\d+\.\d+\.\d+\.\d+ /m);
    expectLine(/^ {2}· PC 10\.213\.0\.2, its only link: a veth to the Docker host at 10\.213\.0\.1$/m);
    for (const kind of ['integrated', 'separated'] as const) {
      const target = kind === 'integrated' ? '192\\.168\\.100\\.1' : '\\d+\\.\\d+\\.\\d+\\.\\d+';
      expectLine(new RegExp(`^ {2}· \\$ ctun-run ${kind === 'integrated' ? 'veos dspace/veos/simulator:23\\.1-ctun 22350@\\S+ --startCtun yes' : 'separate dspace/veos/simulator:23\\.1 22350@\\S+'} --host 10\\.213\\.0\\.1$`, 'm'));
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
  });
});
