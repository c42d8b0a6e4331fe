import { describe, expect, it } from 'vitest';
import { metadata, TUNNEL_DEFAULTS } from '../common/index.js';
import { buildCommandFor, clientCommands, describePublished, parseReadyPort, parseSize, planIntegrated, planSeparated, SERVER_READY_PATTERN } from './plan.js';
import { describeReady } from './wait.js';

const base = { image: metadata.images.veosCtun, licenseServer: '22350@license.example', runId: 'r1' };

describe('planIntegrated', () => {
  it('is the seed RunVeos.py deployment: one container, DS_CMU_SERVER, tunnel port, NET_ADMIN and /dev/net/tun', () => {
    const plan = planIntegrated({ ...base, startCtun: true });
    expect(plan.kind).toBe('integrated');
    expect(plan.network).toBeUndefined();
    expect(plan.containers).toHaveLength(1);
    const [c] = plan.containers;
    expect(c).toMatchObject({
      role: 'veos',
      name: 'dspace-veos',
      image: metadata.images.veosCtun,
      imageRole: 'veos-ctun',
      env: { DS_CMU_SERVER: '22350@license.example', CTUN_START: 'yes' },
      capAdd: ['NET_ADMIN'],
      devices: ['/dev/net/tun'],
      sysctls: {},
      shmSize: 256 * 1024 * 1024,
      ports: [{ container: 1723, protocol: 'udp', host: 1723, hostIp: '' }],
    });
    // The simulator contract: its port mapper accepts, probed inside the container
    // (from the deployment's own network); the tunnel server's own line.
    expect(c!.ready.map((r) => describeReady(r))).toEqual(['the simulator accepting on TCP 27027', `the tunnel server (/${SERVER_READY_PATTERN.source}/ in its log)`]);
    expect(c!.ready[0]).toMatchObject({ kind: 'port', target: { container: 'dspace-veos' }, probe: { from: 'container', container: 'dspace-veos' } });
    expect(c!.labels).toMatchObject({
      'io.ctun.managed': 'true',
      'io.ctun.deployment': 'dspace-veos',
      'io.ctun.deployment.kind': 'integrated',
      'io.ctun.plan': 'r1',
      'io.ctun.role': 'veos',
    });
    expect(plan.client).toEqual({ host: '127.0.0.1', port: TUNNEL_DEFAULTS.port, transport: TUNNEL_DEFAULTS.transport, tap: TUNNEL_DEFAULTS.clientTap, tapAddress: TUNNEL_DEFAULTS.clientAddress });
    // The plan is data: JSON round-trips it unchanged.
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it('without --startCtun yes runs only the simulator: no port, no capability, no client', () => {
    const plan = planIntegrated({ ...base, image: metadata.images.veos });
    const c = plan.containers[0]!;
    expect(c.env.CTUN_START).toBe('no');
    expect(c.capAdd).toEqual([]);
    expect(c.devices).toEqual([]);
    expect(c.ports).toEqual([]);
    expect(c.imageRole).toBe('veos');
    expect(plan.client).toBeUndefined();
  });

  it('passes the transport to the server inside, names and ports as given', () => {
    const plan = planIntegrated({
      ...base,
      startCtun: true,
      transport: 'tcp',
      hostPort: 11723,
      publishAddress: '10.1.2.3',
      veosDockerContainer: 'my-veos',
      clientHost: '10.1.2.3',
      shmSize: '1g',
      env: ['VEOS_STANDIN_LICENSE_ATTEMPTS=2', 'A=b=c'],
    });
    const c = plan.containers[0]!;
    expect(c.env).toMatchObject({ CTUN_ARGS: '--transport tcp', VEOS_STANDIN_LICENSE_ATTEMPTS: '2', A: 'b=c' });
    expect(c.ports).toEqual([{ container: 1723, protocol: 'tcp', host: 11723, hostIp: '10.1.2.3' }]);
    expect(c.name).toBe('my-veos');
    expect(c.shmSize).toBe(1024 ** 3);
    expect(clientCommands(plan.client!).client).toBe('ctun client 10.1.2.3 --port 11723 --transport tcp');
  });

  it('an IPv6 Docker host: --host and --publishAddress as [addr] or bare; the client is told the address bare, the published port as [addr]:port', () => {
    for (const [clientHost, publishAddress] of [['fd00::1', '::'], ['[fd00::1]', '[::]']]) {
      const plan = planIntegrated({ ...base, startCtun: true, clientHost, publishAddress, hostPort: 11723 });
      expect(plan.containers[0]!.ports).toEqual([{ container: 1723, protocol: 'udp', host: 11723, hostIp: '::' }]);
      // ctun client takes the host bare and the port apart; `fd00::1:11723` would be another address.
      expect(clientCommands(plan.client!).client).toBe('ctun client fd00::1 --port 11723');
      expect(describePublished(plan.containers[0]!.ports[0]!)).toBe('[::]:11723/udp');
    }
    expect(describePublished({ container: 1723, protocol: 'udp', host: 1723, hostIp: '' })).toBe('0.0.0.0:1723/udp');
    expect(() => planSeparated({ ...base, image: metadata.images.veos, publishAddress: 'docker.lab' })).toThrowError(
      expect.objectContaining({ code: 'USAGE', exitCode: 1, message: '--publishAddress must be an IP address of the Docker host, got "docker.lab"' }),
    );
  });

  it('rejects bad input before anything runs, with a hint', () => {
    expect(() => planIntegrated({ ...base, licenseServer: 'x@' })).toThrow(/License server/);
    expect(() => planIntegrated({ ...base, veosDockerContainer: '-bad name' })).toThrow(/not a valid Docker name/);
    expect(() => planIntegrated({ ...base, shmSize: 'lots' })).toThrow(/--shmSize must be a size/);
    expect(() => planIntegrated({ ...base, hostPort: 70000 })).toThrow(/--hostPort must be 1-65535/);
    expect(() => planIntegrated({ ...base, env: ['NOVALUE'] })).toThrow(/NAME=VALUE/);
  });
});

describe('planSeparated', () => {
  it('is the seed RunCtunAndVeosSeparately.py deployment on one private labelled network', () => {
    const plan = planSeparated({ ...base, image: metadata.images.veos });
    expect(plan.network).toMatchObject({ name: 'dspace-ctun', driver: 'bridge', labels: { 'io.ctun.deployment': 'dspace-veos', 'io.ctun.plan': 'r1' } });
    const [veos, server] = plan.containers;
    expect(veos).toMatchObject({ name: 'dspace-veos', network: 'dspace-ctun', capAdd: [], ports: [], env: { DS_CMU_SERVER: '22350@license.example', CTUN_START: 'no' } });
    expect(server).toMatchObject({
      role: 'ctun-server',
      name: 'dspace-ctun-server',
      image: metadata.images.separateServer,
      network: 'dspace-ctun',
      capAdd: ['NET_ADMIN'],
      devices: ['/dev/net/tun'],
      sysctls: { 'net.ipv4.ip_forward': '1' },
      ports: [{ container: 1723, protocol: 'udp', host: 1723, hostIp: '' }],
      cmd: [],
    });
    // Never --privileged: the plan has no such field at all.
    expect(JSON.stringify(plan)).not.toMatch(/privileged/i);
    expect(plan.client?.destFrom).toEqual({ container: 'dspace-veos', network: 'dspace-ctun' });
    expect(clientCommands(plan.client!, '172.30.0.2')).toEqual({
      configure: 'sudo ctun configure --tap dstap0 192.168.100.100 --non-interactive',
      client: 'ctun client 127.0.0.1 --dest 172.30.0.2',
    });
  });

  it('refuses the same name for both containers', () => {
    expect(() => planSeparated({ ...base, ctunDockerContainer: 'dspace-veos' })).toThrow(/both "dspace-veos"/);
  });
});

describe('helpers', () => {
  it('parses sizes as docker run --shm-size does', () => {
    expect(parseSize('256m')).toBe(268435456);
    expect(parseSize('1G')).toBe(1073741824);
    expect(parseSize('2048k')).toBe(2 * 1024 * 1024);
    expect(parseSize('67108864')).toBe(67108864);
    expect(() => parseSize('10k')).toThrow(/at least 1m/);
  });

  it('suggests the ctun-build command that makes a missing image', () => {
    expect(buildCommandFor('separate-server', metadata.images.separateServer)).toBe('ctun-build ctun acceptDspaceEula');
    expect(buildCommandFor('veos-ctun', metadata.images.veosCtun)).toBe(
      `ctun-build veos online acceptDspaceEula ${metadata.images.veosCtun} dspace-veos-2023a.tar.gz --installCtun yes`,
    );
    expect(buildCommandFor('veos', 'my/sim:1')).toBe('ctun-build veos online acceptDspaceEula my/sim:1 dspace-veos-2023a.tar.gz');
  });

  it('--readyPort takes tcp:N or N; udp and junk are refused with what to do instead', () => {
    expect(parseReadyPort('tcp:8080')).toEqual({ protocol: 'tcp', port: 8080 });
    expect(parseReadyPort('27027')).toEqual({ protocol: 'tcp', port: 27027 });
    expect(() => parseReadyPort('udp:5555')).toThrow(/a UDP port cannot be probed/);
    try {
      parseReadyPort('udp:5555');
    } catch (e) {
      expect(e).toMatchObject({ code: 'USAGE', exitCode: 1, hint: expect.stringContaining('--readyLog') });
    }
    expect(() => parseReadyPort('tcp:70000')).toThrow(/tcp:PORT \(1-65535\)/);
    expect(() => parseReadyPort('http')).toThrow(/--readyPort takes tcp:PORT/);
    expect(() => planSeparated({ ...base, readyLog: '(' })).toThrow(/--readyLog "\(" is not a regular expression/);
  });

  it('nothing in a plan depends on the stand-in\'s ready line', () => {
    for (const plan of [planIntegrated({ ...base, startCtun: true }), planIntegrated(base), planSeparated(base)]) {
      expect(JSON.stringify(plan)).not.toMatch(/stand-in|portmapper=/);
    }
    const sep = planSeparated({ ...base, readyPorts: [{ protocol: 'tcp', port: 4000 }], readyLog: 'up' });
    expect(sep.containers[0]!.ready).toEqual([
      { kind: 'port', what: 'the simulator', protocol: 'tcp', port: 4000, target: { container: 'dspace-veos', network: 'dspace-ctun' }, probe: { from: 'container', container: 'dspace-ctun-server' } },
      { kind: 'log', what: 'the simulator', pattern: 'up' },
    ]);
    expect(planIntegrated(base).containers[0]!.ready[0]).toMatchObject({ probe: { from: 'host' } });
  });

  it('the tunnel server\'s readiness pattern matches its line', () => {
    expect(SERVER_READY_PATTERN.test('2025-01-01T00:00:00.000Z INFO  server-listening transport=udp address=0.0.0.0 port=1723')).toBe(true);
  });
});
