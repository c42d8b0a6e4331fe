/**
 * What a user of ctun-run meets when something is wrong, against the real daemon: a
 * one-line cause and a hint, a distinct exit code, and nothing left behind.
 */
import dgram from 'node:dgram';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { DEFAULT_IMAGES } from '../../tools/demo/images.js';
import { CTUN_RUN, deployUnavailable, docker, leftovers, NODE, prepareImages, removeDeployment } from '../e2e/harness/deploy.js';

const skip = await deployUnavailable();
const names: string[] = [];
afterEach(async () => {
  for (const n of names.splice(0)) await removeDeployment(n);
});

function ctunRun(args: string[]) {
  return execa(NODE, [CTUN_RUN, ...args, '--progress', 'plain'], { reject: false, timeout: 90_000 });
}

describe.skipIf(skip)('ctun-run errors', () => {
  beforeAll(async () => {
    await prepareImages();
  });

  it('a missing image names the ctun-build command that makes it', async () => {
    const r = await ctunRun(['veos', 'ctun-test/no-such-veos:1', '22350@127.0.0.1', '--startCtun', 'yes', '--veosDockerContainer', 'ctun-err-img']);
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toContain('ctun-run: error: image ctun-test/no-such-veos:1 (for container ctun-err-img) does not exist on this Docker host');
    expect(r.stderr).toContain('ctun-run: hint: build it: ctun-build veos online acceptDspaceEula ctun-test/no-such-veos:1 dspace-veos-2023a.tar.gz --installCtun yes');
    const s = await ctunRun(['separate', DEFAULT_IMAGES.veos, '22350@127.0.0.1', '--ctunDockerImage', 'ctun-test/no-such-server:1', '--veosDockerContainer', 'ctun-err-img2']);
    expect(s.stderr).toContain('ctun-run: hint: build it: ctun-build ctun acceptDspaceEula (then: docker tag dspace/ctun/separate-server:23.1.0 ctun-test/no-such-server:1)');
    expect(await leftovers('ctun-err-img2')).toEqual([]);
  });

  describe('a name already in use', () => {
    const foreign = 'ctun-err-foreign';
    beforeAll(async () => {
      await docker.removeContainer(foreign);
      await docker.createContainer({ name: foreign, image: DEFAULT_IMAGES.veos, entrypoint: ['true'], env: {}, labels: {}, capAdd: [], devices: [], sysctls: {}, shmSize: 0, ports: [] });
    });
    afterAll(async () => {
      await docker.removeContainer(foreign);
    });

    it('is refused before anything starts, and a container that is not ours is left alone', async () => {
      const r = await ctunRun(['separate', DEFAULT_IMAGES.veos, '22350@127.0.0.1', '--veosDockerContainer', 'ctun-err-name', '--ctunDockerContainer', foreign]);
      expect(r.exitCode).toBe(7);
      expect(r.stderr).toContain(`ctun-run: error: a container named ${foreign} already exists\n`);
      expect(r.stderr).toContain(`ctun-run: hint: it is not ctun's: choose another name with --ctunDockerContainer, or remove it yourself (docker rm ${foreign})`);
      expect(await leftovers('ctun-err-name')).toEqual([]);
      expect((await docker.findContainer(foreign))?.name).toBe(foreign);
    });
  });

  it('an unreachable license server is surfaced from the simulator\'s log, and everything is removed', async () => {
    const name = 'ctun-err-license';
    names.push(name);
    const r = await ctunRun([
      'veos', DEFAULT_IMAGES.veosCtun, '22398@127.0.0.1', '--startCtun', 'yes', '--hostPort', '17281', '--veosDockerContainer', name,
      '--env', 'VEOS_STANDIN_LICENSE_ATTEMPTS=2', '--env', 'VEOS_STANDIN_LICENSE_RETRY_DELAY_MS=100',
    ]);
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toMatch(/^ctun-run: error: the simulator in ctun-err-license cannot reach its license server: license server 127\.0\.0\.1:22398 \(DS_CMU_SERVER=22398@127\.0\.0\.1\) unreachable after 2 attempt\(s\)/m);
    expect(r.stderr).toMatch(/^ctun-run: hint: start the license server .* \(the LICENSE_SERVER argument is passed as DS_CMU_SERVER\)$/m);
    expect(await leftovers(name)).toEqual([]);
  });

  it('the tunnel port taken on the Docker host: exit 3 and a hint', async () => {
    const name = 'ctun-err-port';
    names.push(name);
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(17282, '0.0.0.0', resolve));
    try {
      const r = await ctunRun(['separate', DEFAULT_IMAGES.veos, '22350@127.0.0.1', '--hostPort', '17282', '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`]);
      expect(r.stderr).toContain('ctun-run: error: port 17282/udp on the Docker host is taken, so ctun-err-port-ctun cannot publish the tunnel port');
      expect(r.stderr).toContain('--hostPort');
      expect(r.exitCode).toBe(3);
      expect(await leftovers(name)).toEqual([]);
    } finally {
      sock.close();
    }
  });

  // What a user meets through the real CLI. ctun-run always adds NET_ADMIN and passes
  // /dev/net/tun, and the host's tun module is shared with every other test, so the two
  // conditions are made inside the tunnel server's image (--ctunDockerImage): run as a
  // user other than root, the server holds no capability whatever the container is
  // given (what rootless Docker or a policy that drops it does); with the device node
  // gone, it finds no /dev/net/tun (what a host without the tun module gives).
  for (const [what, dockerfile, code, exitCode] of [
    ['NET_ADMIN', 'USER nobody', 'lacks the NET_ADMIN capability', 2],
    // (removed with the image's Node: a tunnel image has no rm)
    ['/dev/net/tun', 'ENTRYPOINT ["sh", "-c", "/opt/ctun/bin/node -e \\"require(\'fs\').rmSync(\'/dev/net/tun\', { force: true })\\" && exec ctun server --mode separate \\"$@\\"", "ctun-server"]', 'cannot open /dev/net/tun', 6],
  ] as const) {
    it(`ctun-run separate: a tunnel server without ${what} is named, exits ${exitCode}, and everything is removed`, async () => {
      const name = `ctun-err-cli${exitCode}`;
      names.push(name);
      const image = `ctun-test/ctun-err-${exitCode}:${process.pid}`;
      const b = await execa('docker', ['build', '-q', '-t', image, '--label', 'io.ctun.managed=true', '-'], {
        input: `FROM ${DEFAULT_IMAGES.separateServer}\n${dockerfile}\n`,
        reject: false,
      });
      expect(b.exitCode, b.stderr).toBe(0);
      try {
        const r = await ctunRun([
          'separate', DEFAULT_IMAGES.veos, '22350@127.0.0.1', '--ctunDockerImage', image, '--hostPort', String(17283 + exitCode),
          '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`, '--env', 'VEOS_STANDIN_LICENSE_ATTEMPTS=100',
        ]);
        expect(r.stderr).toMatch(new RegExp(`^ctun-run: error: the tunnel server in ${name}-ctun ${code}: `, 'm'));
        expect(r.stderr).toMatch(/^ctun-run: hint: the container needs /m);
        expect(r.exitCode, r.stderr).toBe(exitCode);
        expect(await leftovers(name)).toEqual([]);
      } finally {
        await docker.removeImage(image).catch(() => undefined);
      }
    });
  }
});
