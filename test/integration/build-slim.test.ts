/**
 * The tunnel images are only what a tunnel end runs: built under this test's own
 * prefix (the default tags are left alone), each is at most 150 MB, the four share
 * one root layer (what `docker save` of all four, the air-gap bundle, carries once),
 * and that root holds what the tunnel and its users run — `ctun`, `ip`, `iptables`
 * and `ip6tables` working with NET_ADMIN, `sh` for `docker exec` — and a bill of
 * materials of the Debian packages whose files it holds; no package manager, no npm.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { metadata } from '../../tools/common/index.js';
import { connectDocker } from '../../tools/docker/index.js';
import { runtimeImageName } from '../../tools/image/index.js';
import { ctunBuild, dockerCli } from '../fixtures/build/images.js';

const PREFIX = `ctun-it-slim-${process.pid}/`;
const BASE = 'debian:12';
const LIMIT_BYTES = 150 * 1e6;
const docker = connectDocker();
const daemon = await docker.ping().then(
  () => true,
  () => false,
);
const base = daemon && (await docker.imageExists(BASE));
const tunnelImages = Object.entries(metadata.images)
  .filter(([key]) => !key.startsWith('veos'))
  .map(([, image]) => PREFIX + image);
const runtimeImage = PREFIX + runtimeImageName();
const RUN = ['run', '--rm', '--label', 'io.ctun.managed=true', '--label', 'io.ctun.kind=container/test-build-slim'];

describe.skipIf(!base)('the tunnel images are slim (real daemon)', () => {
  afterAll(async () => {
    for (const image of [...tunnelImages, runtimeImage]) await docker.removeImage(image).catch(() => undefined);
  });

  it('each is at most 150 MB, the four share their root layer, and it runs what the tunnel needs', async () => {
    const r = await ctunBuild(['ctun', 'acceptDspaceEula', '--baseImage', BASE, '--tagPrefix', PREFIX, '--progress', 'plain']);
    expect(r.exitCode, r.all.split('\n').slice(-20).join('\n')).toBe(0);

    const layersOf = async (image: string): Promise<string[]> => JSON.parse((await dockerCli(['image', 'inspect', '-f', '{{json .RootFS.Layers}}', image])).stdout) as string[];
    const layers = await Promise.all(tunnelImages.map(layersOf));
    for (const image of tunnelImages) {
      const size = Number((await dockerCli(['image', 'inspect', '-f', '{{.Size}}', image])).stdout);
      expect(size, `${image} is ${(size / 1e6).toFixed(0)} MB`).toBeLessThanOrEqual(LIMIT_BYTES);
    }
    // One root layer shared by all four, under each image's own bill of materials.
    expect(new Set(layers.map((l) => l[0])).size).toBe(1);
    expect(layers.map((l) => l.length)).toEqual([2, 2, 2, 2]);

    const separate = tunnelImages[1]!;
    const v = await dockerCli([...RUN, '--entrypoint', 'ctun', separate, '--version']);
    expect(v.stdout.trim()).toBe(metadata.ctunVersion);
    // What the separate server runs to forward and NAT, in a container as ctun-run starts it.
    const nat = await dockerCli([
      ...RUN, '--cap-add', 'NET_ADMIN', '--entrypoint', 'sh', separate, '-c',
      'iptables -w -t nat -A POSTROUTING -o eth0 -m comment --comment "ctun: test" -j MASQUERADE && iptables -w -t nat -S POSTROUTING && ip6tables -w -S FORWARD && ip -j route get 127.0.0.1',
    ]);
    expect(nat.exitCode, nat.all).toBe(0);
    expect(nat.stdout).toContain('-A POSTROUTING -o eth0 -m comment --comment "ctun: test" -j MASQUERADE');
    expect(nat.stdout).toContain('-P FORWARD ACCEPT');
    expect(nat.stdout).toContain('"dev":"lo"');
    // Only the runtime, the bundle and the addon in /opt/ctun; no npm, compiler or apt.
    const files = await dockerCli([...RUN, '--entrypoint', 'sh', separate, '-c', 'echo /opt/ctun/* /opt/ctun/native/*; command -v npm gcc apt-get dpkg || true']);
    expect(files.stdout.trim()).toBe('/opt/ctun/bin /opt/ctun/ctun.mjs /opt/ctun/native /opt/ctun/native/ctun_tap.node');

    // The bill of materials names the packages whose files are in the image.
    const sbomPath = (await dockerCli(['image', 'inspect', '-f', '{{index .Config.Labels "io.ctun.sbom"}}', separate])).stdout.trim();
    const sbom = JSON.parse((await dockerCli([...RUN, '--entrypoint', '/opt/ctun/bin/node', separate, '-e', `process.stdout.write(require('fs').readFileSync(${JSON.stringify(sbomPath)}))`])).stdout) as { components: Array<{ name: string; purl?: string }> };
    const debs = sbom.components.filter((c) => c.purl?.startsWith('pkg:deb/')).map((c) => c.name);
    expect(debs).toEqual(expect.arrayContaining(['iproute2', 'iptables', 'libc6', 'libstdc++6', 'dash']));
    expect(debs).not.toContain('apt');
  }, 900_000);
});
