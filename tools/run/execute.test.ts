import { describe, expect, it } from 'vitest';
import { createMemoryLogger, metadata, TUNNEL_DEFAULTS } from '../common/index.js';
import { cidrOverlap, executeDeployment, freeSubnets } from './execute.js';
import { createMemoryDocker, DockerRefusal, type MemoryDockerOptions } from '../docker/index.js';
import { planIntegrated, planSeparated, type ContainerPlan } from './plan.js';
import { failureInLog } from './errors.js';

// A simulator that prints nothing ctun knows: it is ready because its port 27027 accepts.
const LISTENING = '2025-01-01T00:00:00.000Z INFO  server-listening transport=udp address=0.0.0.0 port=1723 mode=separate';
const healthy = (spec: ContainerPlan) =>
  spec.role === 'veos' ? { lines: ['sim: booting', ...(spec.env.CTUN_START === 'yes' ? [LISTENING] : [])], openPorts: [27027] } : { lines: [LISTENING] };
const allImages = [metadata.images.veos, metadata.images.veosCtun, metadata.images.separateServer];
const engineWith = (o: MemoryDockerOptions<ContainerPlan> = {}) => createMemoryDocker<ContainerPlan>({ images: allImages, script: healthy, ...o });
const separated = (o: Partial<Parameters<typeof planSeparated>[0]> = {}) =>
  planSeparated({ image: metadata.images.veos, licenseServer: '10.0.0.9', runId: 'r1', readyTimeoutMs: 2000, ...o });
const fast = { pollMs: 20 };
const integrated = () => planIntegrated({ image: metadata.images.veosCtun, licenseServer: '10.0.0.9', startCtun: true, runId: 'r2', readyTimeoutMs: 2000 });

describe('executeDeployment', () => {
  it('separated: network, both containers, readiness, the target found by inspecting the simulator', async () => {
    const engine = engineWith();
    const r = await executeDeployment(separated(), { engine, logger: createMemoryLogger(), ...fast });
    expect(engine.calls.filter((c) => !c.startsWith('exec'))).toEqual(['create network dspace-ctun', 'create dspace-veos', 'start dspace-veos', 'create dspace-ctun-server', 'start dspace-ctun-server']);
    expect(r.dest).toMatch(/^172\.30\.0\.\d+$/);
    expect(r.target).toBe(r.dest);
    // Probed from the tunnel server, at the simulator's address on the private network.
    expect(engine.calls).toContain(`exec dspace-ctun-server ${r.dest}:27027`);
    expect(engine.calls.some((c) => c.startsWith('exec dspace-veos'))).toBe(false);
    expect(r.readyPorts).toEqual([{ protocol: 'tcp', port: 27027 }]);
    expect(r.commands?.client).toBe(`ctun client 127.0.0.1 --dest ${r.dest}`);
  });

  it('integrated: the target is the tunnel address beside the simulator', async () => {
    const engine = engineWith();
    const r = await executeDeployment(integrated(), { engine, logger: createMemoryLogger(), ...fast });
    expect(engine.calls.some((c) => /^exec dspace-veos 172\.30\.0\.\d+:27027$/.test(c))).toBe(true);
    expect(r.target).toBe(TUNNEL_DEFAULTS.serverAddress);
    expect(r.dest).toBeUndefined();
    expect(r.commands?.client).toBe('ctun client 127.0.0.1');
  });

  it('an IPv6 Docker host: the port published on ::, shown as [::]:1723, and the client command with the host bare', async () => {
    const engine = engineWith();
    const r = await executeDeployment(separated({ clientHost: '[fd00::1]', publishAddress: '::' }), { engine, logger: createMemoryLogger(), ...fast });
    expect((await engine.findContainer('dspace-ctun-server'))!.ports).toEqual({ '1723/udp': ['[::]:1723'] });
    expect(r.commands?.client).toBe(`ctun client fd00::1 --dest ${r.dest}`);
  });

  it('a missing image names the ctun-build command, before anything is created', async () => {
    const engine = createMemoryDocker<ContainerPlan>({ images: [metadata.images.veos], script: healthy });
    await expect(executeDeployment(separated(), { engine, logger: createMemoryLogger() })).rejects.toMatchObject({
      code: 'IMAGE_MISSING',
      hint: 'build it: ctun-build ctun acceptDspaceEula',
    });
    expect(engine.calls).toEqual([]);
  });

  it('an integrated image built without the tunnel is refused for --startCtun yes', async () => {
    const engine = createMemoryDocker<ContainerPlan>({ images: [{ ref: metadata.images.veosCtun, labels: { 'io.ctun.install-ctun': 'false' } }] });
    await expect(executeDeployment(integrated(), { engine, logger: createMemoryLogger() })).rejects.toMatchObject({ code: 'IMAGE_HAS_NO_TUNNEL' });
  });

  it('a name in use is one line with a hint, ours or not', async () => {
    // An image's labels (io.ctun.managed) are inherited by any container made from it: not enough to be ours.
    const foreign = engineWith({ existing: [{ name: 'dspace-veos', labels: { 'io.ctun.managed': 'true' } }] });
    await expect(executeDeployment(separated(), { engine: foreign, logger: createMemoryLogger() })).rejects.toMatchObject({
      code: 'NAME_IN_USE',
      message: 'a container named dspace-veos already exists',
    });
    const ours = engineWith({ existing: [{ name: 'dspace-ctun-server', labels: { 'io.ctun.managed': 'true', 'io.ctun.deployment': 'dspace-veos' } }] });
    const e = await executeDeployment(separated(), { engine: ours, logger: createMemoryLogger() }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'NAME_IN_USE', message: 'a container named dspace-ctun-server already exists (left by an earlier ctun-run)' });
    expect((e as { hint: string }).hint).toBe('remove it with `ctun-run clean --deployment dspace-veos`, or choose another name with --ctunDockerContainer');
  });

  it('an unreachable license server fails the wait with the simulator\'s own words, and everything is undone', async () => {
    const engine = engineWith({
      script: (spec) =>
        spec.role === 'veos'
          ? { lines: ['veos-standin: error: license server 10.0.0.9:22350 (DS_CMU_SERVER=10.0.0.9) unreachable after 5 attempt(s) 1000 ms apart: connection refused; start the license server (or license_standin.py) and check that this host reaches it'] }
          : { lines: [LISTENING] },
    });
    const e = await executeDeployment(separated(), { engine, logger: createMemoryLogger() }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'LICENSE_SERVER_UNREACHABLE' });
    expect((e as Error).message).toContain('license server 10.0.0.9:22350');
    expect((e as { hint: string }).hint).toContain('start the license server');
    expect(engine.containers.size).toBe(0);
    expect(engine.networks.size).toBe(0);
  });

  it('a container that exits before it is ready fails with its exit code and log tail', async () => {
    const engine = engineWith({ script: (spec) => (spec.role === 'ctun-server' ? { lines: ['boom'], exitCode: 7 } : healthy(spec)) });
    const e = await executeDeployment(separated(), { engine, logger: createMemoryLogger(), ...fast }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'CONTAINER_EXITED' });
    expect((e as Error).message).toMatch(/dspace-ctun-server exited with code 7[\s\S]*\| boom/);
    expect(engine.containers.size).toBe(0);
  });

  it('a wait is bounded and says what it probed, from where, how often, and how it ended', async () => {
    const engine = engineWith({ script: () => ({ lines: ['nothing useful'] }) });
    const plan = planIntegrated({ image: metadata.images.veosCtun, licenseServer: 'x', startCtun: true, runId: 'r', readyTimeoutMs: 300 });
    const e = await executeDeployment(plan, { engine, logger: createMemoryLogger(), ...fast }).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(
      /^waited 0 s for the simulator accepting on TCP 27027 \(172\.30\.0\.\d+:27027 from container dspace-veos: \d+ attempts, last ECONNREFUSED\) and the tunnel server \(.*\) in container dspace-veos/,
    );
    expect((e as { hint: string }).hint).toContain('--readyPort tcp:N');
    expect(engine.containers.size).toBe(0);
  });

  it('the simulator contract: any port it opens (--readyPort), an extra log line (--readyLog); the stand-in\'s line is not needed', async () => {
    const engine = engineWith({
      script: (spec) => (spec.role === 'veos' ? { lines: ['kernel: simulation started'], openPorts: [8080, 9090] } : { lines: [LISTENING] }),
    });
    const plan = separated({ readyPorts: [{ protocol: 'tcp', port: 8080 }, { protocol: 'tcp', port: 9090 }], readyLog: 'simulation started$' });
    const r = await executeDeployment(plan, { engine, logger: createMemoryLogger(), ...fast });
    expect(r.readyPorts).toEqual([{ protocol: 'tcp', port: 8080 }, { protocol: 'tcp', port: 9090 }]);
    // The default port is not open on this one: waiting for it runs out, naming it.
    const other = engineWith({ script: (spec) => (spec.role === 'veos' ? { lines: [], openPorts: [8080] } : { lines: [LISTENING] }) });
    const e = await executeDeployment(separated({ readyTimeoutMs: 300 }), { engine: other, logger: createMemoryLogger(), ...fast }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'READY_TIMEOUT' });
    expect((e as Error).message).toMatch(/the simulator accepting on TCP 27027 \(172\.30\.0\.\d+:27027 from container dspace-ctun-server/);
    // A log line asked for and never printed is named too.
    const quiet = engineWith({ script: (spec) => (spec.role === 'veos' ? { lines: [], openPorts: [27027] } : { lines: [LISTENING] }) });
    const e2 = await executeDeployment(separated({ readyTimeoutMs: 300, readyLog: 'never' }), { engine: quiet, logger: createMemoryLogger(), ...fast }).catch((x: unknown) => x);
    expect((e2 as Error).message).toMatch(/^waited 0 s for the simulator \(\/never\/ in its log\) in container dspace-veos/);
  });

  it('an image without the tunnel runtime cannot host the probe: said at the first attempt, not after the timeout', async () => {
    const engine = engineWith({ execRefused: () => true });
    const plan = planIntegrated({ image: metadata.images.veosCtun, licenseServer: 'x', startCtun: true, runId: 'r', readyTimeoutMs: 60_000 });
    const started = Date.now();
    const e = await executeDeployment(plan, { engine, logger: createMemoryLogger(), ...fast }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'PROBE_UNAVAILABLE', exitCode: 1, hint: expect.stringContaining('--installCtun yes') });
    expect((e as Error).message).toMatch(
      /^cannot tell whether the simulator accepting on TCP 27027: probing 172\.30\.0\.\d+:27027 from container dspace-veos: cannot run the probe \(\/opt\/ctun\/bin\/node is not in that container\)$/,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(engine.containers.size).toBe(0);
  });

  it('without a tunnel the simulator is probed from the Docker host', async () => {
    const engine = engineWith();
    const asked: string[] = [];
    const plan = planIntegrated({ image: metadata.images.veos, licenseServer: 'x', runId: 'r', readyTimeoutMs: 2000 });
    const r = await executeDeployment(plan, {
      engine,
      logger: createMemoryLogger(),
      ...fast,
      probeFromHost: async (host, port) => {
        asked.push(`${host}:${port}`);
        return asked.length < 3 ? { open: false, reason: 'ECONNREFUSED' } : { open: true };
      },
    });
    expect(asked).toEqual([`${r.containerAddress}:27027`, `${r.containerAddress}:27027`, `${r.containerAddress}:27027`]);
    expect(engine.calls.some((c) => c.startsWith('exec'))).toBe(false);
  });

  it('a port in use on the Docker host is explained at start', async () => {
    const engine = engineWith({
      refuse: (spec, step) =>
        spec.role === 'ctun-server' && step === 'start'
          ? new DockerRefusal(500, 'driver failed programming external connectivity on endpoint dspace-ctun-server: Bind for 0.0.0.0:1723 failed: port is already allocated')
          : undefined,
    });
    await expect(executeDeployment(separated(), { engine, logger: createMemoryLogger() })).rejects.toMatchObject({ code: 'ADDRESS_IN_USE', exitCode: 3 });
    expect(engine.containers.size).toBe(0);
    expect(engine.networks.size).toBe(0);
  });

  it('an abort (Ctrl-C) during the wait undoes everything', async () => {
    const engine = engineWith({ script: () => ({ lines: [] }) });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(executeDeployment(separated({ readyTimeoutMs: 10_000 }), { engine, logger: createMemoryLogger(), signal: controller.signal })).rejects.toMatchObject({
      code: 'INTERRUPTED',
      exitCode: 130,
    });
    expect(engine.containers.size).toBe(0);
    expect(engine.networks.size).toBe(0);
  });

  it('a subnet Docker chose over the tunnel\'s is replaced by the next free pool', async () => {
    const engine = engineWith({ subnets: ['192.168.96.0/20'] });
    const r = await executeDeployment(separated(), { engine, logger: createMemoryLogger(), ...fast });
    expect(r.network?.subnet).toBe('172.17.0.0/16');
    expect(engine.calls.filter((c) => c.includes('network'))).toEqual(['create network dspace-ctun', 'remove network dspace-ctun', 'create network dspace-ctun']);
    expect(freeSubnets(['172.17.0.0/16', '172.18.0.0/16'], '192.168.100.1/24').slice(0, 2)).toEqual(['172.19.0.0/16', '172.20.0.0/16']);
    expect(freeSubnets([], '192.168.100.1/24')).not.toContain('192.168.96.0/20');
  });

  it('a given subnet overlapping the tunnel is refused', async () => {
    const engine = engineWith();
    await expect(executeDeployment(separated({ subnet: '192.168.96.0/20' }), { engine, logger: createMemoryLogger() })).rejects.toMatchObject({ code: 'NETWORK_SUBNET' });
    expect(engine.networks.size).toBe(0);
  });
});

describe('failureInLog', () => {
  it('recognises the tunnel server lacking NET_ADMIN or the tun device', () => {
    expect(failureInLog('ctun: error: opening TAP ctun0 failed: operation not permitted (EPERM): needs NET_ADMIN\n', 'c')?.code).toBe('NO_NET_ADMIN');
    expect(failureInLog('ctun: error: cannot open /dev/net/tun: no such file\n', 'c')?.code).toBe('NO_TUN_DEVICE');
    expect(failureInLog('INFO gave up: veos entered FATAL state, too many start retries too quickly\n', 'c')?.code).toBe('PROCESS_FATAL');
    expect(failureInLog('all good\n', 'c')).toBeUndefined();
  });

  it('cidrOverlap', () => {
    expect(cidrOverlap('192.168.96.0/20', '192.168.100.1/24')).toBe(true);
    expect(cidrOverlap('172.18.0.0/16', '192.168.100.1/24')).toBe(false);
  });
});
