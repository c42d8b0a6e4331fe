/**
 * `ctun-run` for a PC that reaches the Docker host over IPv6 (issue 18): the PC is a
 * network namespace whose path to the host is one veth, and the test gives that veth
 * an IPv6 network of its own. The tunnel port is published on the host's IPv6 address
 * of it (Docker's proxy listens there; the daemon needs no IPv6 configuration), the
 * summary names it `[addr]:port`, and the printed client command, run as it stands on
 * the PC, dials the host's IPv6 address and reaches the simulator's run-time ports.
 */
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { Pc } from '../../tools/demo/pc.js';
import { CTUN_RUN, deployUnavailable, deploymentWorld, E2E_IMAGES, leftovers, NODE, removeDeployment, sessionOverTunnel, startPrintedClient } from './harness/deploy.js';

const skip = await deployUnavailable();

/** The IPv6 network of the PC's veth (a ULA of the test's own). */
const HOST6 = 'fd00:213:63::1';
const PC6 = 'fd00:213:63::2';

describe.skipIf(skip)('ctun-run separate for a PC on IPv6', () => {
  const { cleanups, license } = deploymentWorld({ licensePort: 22363, licenseName: 'ctun-e2e-license-v6' });

  it('published on the host\'s IPv6 address: the summary says [addr]:port, the printed client command dials the address bare and reaches dynamic ports via --dest', async () => {
    const name = 'ctun-e2e-veos-v6';
    const port = 17263;
    await removeDeployment(name);
    const pc = await Pc.create({ index: 63, prefix: 'ctune2e' });
    cleanups.push(() => pc.destroy(), () => removeDeployment(name));
    // nodad: usable at once, not after duplicate address detection. The veth goes with the PC.
    await execa('ip', ['addr', 'add', `${HOST6}/64`, 'dev', pc.hostIf, 'nodad']);
    const pcIf = /^\d+: ([^@:]+)/.exec(await pc.ip('-o', 'link', 'show', 'type', 'veth'))![1]!;
    await pc.ip('addr', 'add', `${PC6}/64`, 'dev', pcIf, 'nodad');

    const r = await execa(
      NODE,
      [
        CTUN_RUN, 'separate', E2E_IMAGES.veos, license().server, '--ctunDockerImage', E2E_IMAGES.separateServer,
        '--host', `[${HOST6}]`, '--publishAddress', HOST6, '--hostPort', String(port),
        '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`, '--progress', 'plain',
      ],
      { reject: false, all: true, timeout: 120_000 },
    );
    expect(r.exitCode, r.all).toBe(0);
    console.log(r.stdout);
    expect(r.stdout).toContain(`  tunnel:    [${HOST6}]:${port}/udp on the Docker host\n`);
    const command = /^ {2}(ctun client .*)$/m.exec(r.stdout)![1]!;
    const dest = /--dest (\S+)$/.exec(command)![1]!;
    expect(command).toBe(`ctun client ${HOST6} --port ${port} --dest ${dest}`);
    const status = await execa(NODE, [CTUN_RUN, 'status', '--deployment', name]);
    console.log(status.stdout);
    expect(status.stdout).toContain(`[${HOST6}]:${port}->1723/udp`);

    const client = await startPrintedClient(pc, command, cleanups);
    const connected = await client.waitFor(/client-connected .*/, 20_000);
    console.log(connected);
    expect(connected).toContain(`server=[${HOST6}]:${port} `);
    const by = await sessionOverTunnel(pc, dest, 'v6');
    expect(by.xcp.daq).toHaveLength(5);

    expect(await client.stop()).toBe(0);
    await removeDeployment(name);
    expect(await leftovers(name)).toEqual([]);
  });
});
