/**
 * `ctun configure` against the real kernel: a persistent TAP owned by a user, so the
 * client runs without root; idempotence; removal; the seed's promiscuous helpers
 * (--promisc with --blackhole or --drop-ip).
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { CTUN, link, netnsUnavailable, NODE, Scope } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

describe.skipIf(skip)('ctun configure', () => {
  it('makes a TAP owned by the user, whose client then runs without root', async () => {
    const pc = await scope.ns('pc');
    const sim = await scope.ns('sim');
    await link(pc, '10.81.0.1/24', sim, '10.81.0.2/24');
    const first = await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--user', 'nobody', '--non-interactive']);
    expect(first.stdout).toContain('created TAP dstap0 owned by nobody');
    const again = await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--user', 'nobody', '--non-interactive']);
    expect(again.stdout).toContain('TAP dstap0 already exists');
    expect(again.stdout).toContain('dstap0 already has 192.168.100.100/24, MTU 1400, up');
    const ifindex = await pc.ifindex(TUNNEL_DEFAULTS.clientTap);

    const server = scope.track(sim.spawnCtun(['server']));
    await server.waitFor(/server-listening/, 15_000);
    // As user nobody (uid 65534), without any capability.
    const client = scope.track(pc.spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', NODE, CTUN, 'client', '10.81.0.2'], { label: 'client as nobody' }));
    await client.waitFor(/client-connected/, 15_000);
    expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
    expect(await pc.ifindex(TUNNEL_DEFAULTS.clientTap)).toBe(ifindex);

    // Another user's client cannot take the TAP.
    const other = await pc.exec('setpriv', ['--reuid=1234', '--regid=1234', '--clear-groups', NODE, CTUN, 'client', '10.81.0.2'], { reject: false });
    expect(other.exitCode).toBe(2);
    expect(other.stderr).toContain('ctun: error: not allowed to open TAP dstap0');
  });

  it('removes a TAP, and says so when it is already gone', async () => {
    const pc = await scope.ns('pc');
    await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
    expect((await pc.ctun(['configure', '--remove', TUNNEL_DEFAULTS.clientTap, '--non-interactive'])).stdout).toContain('removed TAP dstap0');
    expect(await pc.ip('-j', 'link', 'show')).not.toContain(TUNNEL_DEFAULTS.clientTap);
    expect((await pc.ctun(['configure', '--remove', TUNNEL_DEFAULTS.clientTap, '--non-interactive'])).stdout).toContain('TAP dstap0 was already absent');
    const notTap = await pc.ctun(['configure', '--remove', 'lo', '--non-interactive'], { reject: false });
    expect(notTap.exitCode).toBe(1);
    expect(notTap.stderr).toContain('lo is not a TAP device; refusing to remove it');
  });

  it('sets an interface promiscuous with a blackhole route (the seed\'s --promisc)', async () => {
    const pc = await scope.ns('pc');
    const other = await scope.ns('oth');
    await link(pc, '10.81.1.1/24', other, '10.81.1.2/24');
    const dev = JSON.parse(await pc.ip('-j', 'addr', 'show', 'to', '10.81.1.1/24'))[0].ifname as string;
    const r = await pc.ctun(['configure', '--promisc', dev, '--blackhole', '10.81.1.99', '--non-interactive']);
    expect(r.stdout).toContain(`${dev} is promiscuous`);
    expect(JSON.parse(await pc.ip('-d', '-j', 'link', 'show', 'dev', dev))[0].promiscuity).toBeGreaterThan(0);
    expect(await pc.ip('route', 'show', 'type', 'blackhole')).toContain('blackhole 10.81.1.99');
    const both = await pc.ctun(['configure', '--promisc', dev, '--drop-ip', dev, '--blackhole', '10.81.1.99', '--non-interactive'], { reject: false });
    expect(both.exitCode).toBe(1);
    expect(both.stderr).toContain('--drop-ip and --blackhole exclude each other');
  });

  it('sets an interface promiscuous and removes its IP addresses (--drop-ip), leaving other interfaces alone', async () => {
    const pc = await scope.ns('pc');
    const other = await scope.ns('oth');
    await link(pc, '10.81.2.1/24', other, '10.81.2.2/24');
    await pc.ip('addr', 'add', '127.0.0.2/8', 'dev', 'lo'); // another interface's address, which must stay
    const dev = JSON.parse(await pc.ip('-j', 'addr', 'show', 'to', '10.81.2.1/24'))[0].ifname as string;
    expect(await other.ping('10.81.2.1', 1)).toBe(true);
    const r = await pc.ctun(['configure', '--promisc', dev, '--drop-ip', dev, '--non-interactive']);
    expect(r.stdout).toContain(`${dev} is promiscuous`);
    expect(r.stdout).toContain(`removed the IP addresses of ${dev}`);
    const [after] = JSON.parse(await pc.ip('-d', '-j', 'addr', 'show', 'dev', dev)) as Array<{ promiscuity: number; addr_info: Array<{ family: string; local: string }> }>;
    expect(after!.promiscuity).toBeGreaterThan(0);
    expect(after!.addr_info.filter((a) => a.family === 'inet')).toEqual([]);
    expect(await pc.ip('-4', 'addr', 'show', 'dev', 'lo')).toContain('127.0.0.2/8');
    // The peer sees it too: the address no longer answers.
    expect(await other.ping('10.81.2.1', 1)).toBe(false);
  });
});
