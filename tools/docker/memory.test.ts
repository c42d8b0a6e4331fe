import { describe, expect, it } from 'vitest';
import { daemonMessage, dockerStatus, DockerRefusal } from './errors.js';
import { createMemoryDocker } from './memory.js';
import type { ContainerSpec } from './engine.js';

const spec = (name: string, o: Partial<ContainerSpec> = {}): ContainerSpec => ({
  name,
  image: 'debian:12',
  env: {},
  labels: { 'io.ctun.plan': 'run-1' },
  capAdd: [],
  devices: [],
  sysctls: {},
  shmSize: 0,
  ports: [{ container: 1723, protocol: 'udp', host: 1723, hostIp: '' }],
  ...o,
});

describe('the in-memory Docker twin', () => {
  it('refuses as the daemon does, in the shape dockerStatus and daemonMessage read', async () => {
    const docker = createMemoryDocker({ images: ['debian:12'] });
    await docker.createContainer(spec('sim'));
    const taken = await docker.createContainer(spec('sim')).catch((e: unknown) => e);
    expect(taken).toBeInstanceOf(DockerRefusal);
    expect(dockerStatus(taken)).toBe(409);
    expect(daemonMessage(taken)).toBe('Conflict. The container name "/sim" is already in use by container "x".');
    const noImage = await docker.createContainer(spec('other', { image: 'no/such:1' })).catch((e: unknown) => e);
    expect([dockerStatus(noImage), daemonMessage(noImage)]).toEqual([404, 'No such image: no/such:1']);
    expect(dockerStatus(new Error('socket hang up'))).toBeUndefined();
  });

  it('containers and networks: found by name or id, listed by label, absent is undefined, removing twice is fine', async () => {
    const docker = createMemoryDocker({ images: ['debian:12'], existingNetworks: [{ name: 'closed', internal: true }] });
    const net = await docker.createNetwork({ name: 'dspace-ctun', driver: 'bridge', labels: { 'io.ctun.plan': 'run-1' } });
    const id = await docker.createContainer(spec('sim', { network: 'dspace-ctun', mounts: [{ source: '/pki/ca.crt', target: '/etc/ctun/tls/ca.crt' }] }));
    await docker.startContainer(id);
    const byName = await docker.findContainer('sim');
    expect(byName).toMatchObject({ id, state: 'running', ports: { '1723/udp': ['0.0.0.0:1723'] }, mounts: [{ type: 'bind', source: '/pki/ca.crt', target: '/etc/ctun/tls/ca.crt', readOnly: true }] });
    expect(Object.keys(byName!.networks)).toEqual(['dspace-ctun']);
    expect((await docker.listContainers(['io.ctun.plan=run-1'])).map((c) => c.name)).toEqual(['sim']);
    expect(await docker.listContainers(['io.ctun.plan=run-2'])).toEqual([]);
    expect(await docker.findNetwork('closed')).toMatchObject({ internal: true });
    expect(await docker.findNetwork(net)).toMatchObject({ name: 'dspace-ctun', internal: false, subnet: '172.30.0.0/24', gateway: '172.30.0.1' });
    await docker.removeContainer(id);
    await docker.removeContainer(id);
    await docker.removeNetwork(net);
    await docker.removeNetwork(net);
    expect(await docker.findContainer('sim')).toBeUndefined();
    expect(await docker.findNetwork('dspace-ctun')).toBeUndefined();
    expect(docker.calls).toEqual(['create network dspace-ctun', 'create sim', 'start sim', 'remove sim', 'remove network dspace-ctun']);
  });

  it('images: save refuses a missing one, as docker save does', async () => {
    const docker = createMemoryDocker({ images: ['a/one:1'] });
    const chunks: Buffer[] = [];
    for await (const c of await docker.saveImages(['a/one:1'])) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('saved a/one:1');
    await expect(docker.saveImages(['a/one:1', 'no/such:1'])).rejects.toMatchObject({ statusCode: 404 });
  });
});
