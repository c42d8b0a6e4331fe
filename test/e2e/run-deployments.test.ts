/**
 * The two Docker deployments end to end, as a user on a remote PC meets them: the
 * real ctun-run CLI, real images, a real TAP. The PC is a network namespace whose
 * only path to the Docker host is one veth; the tunnel port is published on the host
 * end of it. So container addresses are unreachable from the PC, and everything the
 * test reaches, it reaches through the tunnel.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { Pc } from '../../tools/demo/pc.js';
import { CTUN_RUN, deployUnavailable, docker, E2E_IMAGES, deploymentWorld, leftovers, NODE, pcSession, removeDeployment, sessionOverTunnel, startPrintedClient } from './harness/deploy.js';
import type { DeploymentWithTunnel } from '../../tools/run/index.js';

/**
 * `ctun-run status --json` of one deployment: its tunnel server, asked inside its
 * container, shows the PC's client attached with bytes both ways (after traffic).
 */
async function tunnelStatus(name: string): Promise<DeploymentWithTunnel> {
  const r = await execa(NODE, [CTUN_RUN, 'status', '--json', '--deployment', name]);
  const [d] = JSON.parse(r.stdout) as DeploymentWithTunnel[];
  expect(d!.tunnel, r.stdout).toBeDefined();
  expect(d!.tunnel!.error, r.stdout).toBeUndefined();
  const clients = d!.tunnel!.figures!.clients!;
  expect(clients.filter((c) => c.attached), r.stdout).toHaveLength(1);
  expect(clients[0]!.peer).toMatch(/^\d+\.\d+\.\d+\.\d+:\d+$/);
  expect(Date.parse(clients[0]!.since)).toBeGreaterThan(Date.now() - 10 * 60_000);
  expect(clients[0]!.bytes.rx, r.stdout).toBeGreaterThan(0);
  expect(clients[0]!.bytes.tx, r.stdout).toBeGreaterThan(0);
  // The text form says the same to a person.
  const text = (await execa(NODE, [CTUN_RUN, 'status', '--deployment', name])).stdout;
  console.log(`$ ctun-run status --deployment ${name}\n${text}`);
  expect(text).toMatch(/tunnel server: 1 client\(s\) connected/);
  expect(text).toMatch(/ {4}client \d+\.\d+\.\d+\.\d+:\d+ {2}since \S+ {2}in [\d.]+ (B|KiB|MiB) {2}out [\d.]+ (B|KiB|MiB) {2}drops \d+/);
  return d!;
}

const skip = await deployUnavailable();

describe.skipIf(skip)('ctun-run deployments, seen from a remote PC', () => {
  const { cleanups, license } = deploymentWorld({ licensePort: 22361, licenseName: 'ctun-e2e-license' });

  it('integrated: ctun-run veos --connect on the PC; port mapper, dynamic TCP/UDP servers, XCP push and broadcast discovery through the tunnel; Ctrl-C removes it all', async () => {
    const name = 'ctun-e2e-veos-int';
    const port = 17261;
    await removeDeployment(name);
    const pc = await Pc.create({ index: 61, prefix: 'ctune2e' });
    cleanups.push(() => pc.destroy(), () => removeDeployment(name));

    const run = pc.spawn(
      NODE,
      [
        CTUN_RUN, 'veos', E2E_IMAGES.veosCtun, license().server, '--startCtun', 'yes', '--connect',
        '--host', pc.hostAddress, '--publishAddress', pc.hostAddress, '--hostPort', String(port),
        '--veosDockerContainer', name, '--progress', 'plain',
      ],
      { label: 'ctun-run veos --connect' },
    );
    cleanups.push(() => run.stop());
    await run.waitFor(/^connected: the simulator is at 192\.168\.100\.1 \(port mapper 27027\)/m, 90_000);
    expect(run.output).toContain(`  ctun client ${pc.hostAddress} --port ${port}\n`);
    expect(run.output).toMatch(/client-connected server=10\.213\.61\.1:17261 serverAddress=192\.168\.100\.1\/24/);

    // The container's own address is not reachable from the PC, tunnel or not: the
    // tunnel carries only the simulator's segment (192.168.100.0/24).
    const containerIp = /veos\s+ctun-e2e-veos-int\s+(\d+\.\d+\.\d+\.\d+) on bridge/.exec(run.output)![1]!;
    expect(await pc.routeTo(containerIp)).toBe(false);
    const [reach] = await pcSession((f, a, o) => pc.exec(f, a, o), { mode: 'reach', host: containerIp, port: 27027 });
    expect(reach).toMatchObject({ step: 'reach', result: 'ENETUNREACH' });

    const by = await sessionOverTunnel(pc, TUNNEL_DEFAULTS.serverAddress, 'e2e', { discovery: { port: 27028, broadcast: '192.168.100.255' } });
    expect(by.open.tcp).toBeGreaterThan(1024);
    expect(by.open.udp).toBeGreaterThan(1024);
    expect(by.xcp.connect).toBe('ff0400ffb8050101');
    expect(by.xcp.daq.map((d: { seq: number }) => d.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(by.discovery).toMatchObject({ from: TUNNEL_DEFAULTS.serverAddress, answer: { product: 'VEOS stand-in', version: '23.1', portmapper: 27027 } });
    // The same dynamic port at the published host address: nothing there. The host
    // answers with a reset (ECONNREFUSED), as in the demo; a timeout or any other
    // error would mean something else is wrong on the path.
    expect(by.direct).toMatchObject({ host: pc.hostAddress, port: by.tcp.port, result: 'ECONNREFUSED' });

    // The tunnel inside the simulator's container, as ctun-run status shows it.
    await tunnelStatus(name);

    run.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.output).toContain(`removed deployment ${name}`);
    expect(await leftovers(name)).toEqual([]);
  });

  it('separated: ctun-run separate finds the target itself; the printed client command run on the PC reaches dynamic ports via --dest', async () => {
    const name = 'ctun-e2e-veos-sep';
    const port = 17262;
    await removeDeployment(name);
    const pc = await Pc.create({ index: 62, prefix: 'ctune2e' });
    cleanups.push(() => pc.destroy(), () => removeDeployment(name));

    const r = await execa(
      NODE,
      [
        CTUN_RUN, 'separate', E2E_IMAGES.veos, license().server, '--ctunDockerImage', E2E_IMAGES.separateServer,
        '--host', pc.hostAddress, '--publishAddress', pc.hostAddress, '--hostPort', String(port),
        '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`, '--progress', 'plain',
      ],
      { reject: false, all: true, timeout: 120_000 },
    );
    expect(r.exitCode, r.all).toBe(0);
    const command = /^ {2}(ctun client .*)$/m.exec(r.stdout)![1]!;
    const dest = /--dest (\S+)$/.exec(command)![1]!;
    expect(command).toBe(`ctun client ${pc.hostAddress} --port ${port} --dest ${dest}`);
    expect(r.stdout).toMatch(new RegExp(`veos\\s+${name}\\s+${dest.replace(/\./g, '\\.')} on ${name}-net`));

    // Before the tunnel: the PC has no route to the simulator at all.
    expect(await pc.routeTo(dest)).toBe(false);

    const client = await startPrintedClient(pc, command, cleanups);
    await client.waitFor(new RegExp(`route-added dest=${dest.replace(/\./g, '\\.')} via=192\\.168\\.100\\.1`), 20_000);
    await client.waitFor(/client-connected/, 20_000);

    const by = await sessionOverTunnel(pc, dest, 'sep');
    expect(by.xcp.connect).toBe('ff0400ffb8050101');
    expect(by.xcp.daq).toHaveLength(5);
    // Straight at the host, the dynamic port is refused, not reached (nor lost in a timeout).
    expect(by.direct).toMatchObject({ host: pc.hostAddress, result: 'ECONNREFUSED' });

    // status shows it, by label; clean removes it and only it.
    const status = await execa(NODE, [CTUN_RUN, 'status', '--json', '--deployment', name]);
    const [d] = JSON.parse(status.stdout) as Array<{ deployment: string; kind: string; containers: Array<{ role: string; state: string }>; networks: Array<{ name: string }> }>;
    expect(d).toMatchObject({ deployment: name, kind: 'separated', networks: [{ name: `${name}-net` }] });
    expect(d!.containers.map((c) => `${c.role}:${c.state}`).sort()).toEqual(['ctun-server:running', 'veos:running']);
    const withTunnel = await tunnelStatus(name);
    expect(withTunnel.tunnel!.container).toBe(`${name}-ctun`);
    expect(withTunnel.tunnel!.figures!.clients![0]!.dest).toBe(dest);

    expect(await client.stop()).toBe(0);
    expect(await pc.routeTo(dest)).toBe(false);
    // stop keeps the containers (for docker logs); clean removes them.
    const stop = await execa(NODE, [CTUN_RUN, 'stop', '--deployment', name]);
    expect(stop.stdout).toMatch(new RegExp(`^stopped (${name}, ${name}-ctun|${name}-ctun, ${name})$`, 'm'));
    const stopped = JSON.parse((await execa(NODE, [CTUN_RUN, 'status', '--json', '--deployment', name])).stdout) as typeof d[];
    expect(stopped[0]!.containers.map((c) => c.state)).toEqual(['exited', 'exited']);
    const clean = await execa(NODE, [CTUN_RUN, 'clean', '--deployment', name]);
    expect(clean.stdout).toContain(`network ${name}-net`);
    expect(await leftovers(name)).toEqual([]);
  });
});
