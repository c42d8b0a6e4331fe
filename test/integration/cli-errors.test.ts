/**
 * Every error a user can hit from the `ctun` CLI prints a one-line cause and a hint,
 * and exits with its own code (1 usage, 2 privileges, 3 address in use, 4 aborted,
 * 5 rejected, 6 device). Each case runs the real CLI in a fresh namespace.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { CTUN, link, netnsUnavailable, NODE, Scope } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

function expectOneLineCause(stderr: string, cause: string, hint: string): void {
  const lines = stderr.trim().split('\n').filter((l) => l.startsWith('ctun: '));
  expect(lines[0]).toContain(`ctun: error: ${cause}`);
  expect(lines[1]).toMatch(/^ctun: hint: /);
  expect(lines[1]).toContain(hint);
}

describe.skipIf(skip)('ctun CLI errors', () => {
  it('client on a TAP that does not exist names `ctun configure` (exit 6)', async () => {
    const pc = await scope.ns('pc');
    const r = await pc.ctun(['client', '127.0.0.1', '--tap', 'nope0'], { reject: false });
    expect(r.exitCode).toBe(6);
    expectOneLineCause(r.stderr, 'TAP device nope0 does not exist on this host', 'sudo ctun configure --tap nope0');
  });

  it('configure without NET_ADMIN changes nothing (exit 2)', async () => {
    const pc = await scope.ns('pc');
    const r = await pc.exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', NODE, CTUN, 'configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive'], { reject: false });
    expect(r.exitCode).toBe(2);
    expectOneLineCause(r.stderr, 'ctun configure changes network interfaces and needs the NET_ADMIN capability', 'run it with sudo');
    expect(await pc.ip('-j', 'link', 'show')).not.toContain(TUNNEL_DEFAULTS.clientTap);
  });

  it('server without NET_ADMIN cannot create its TAP (exit 2)', async () => {
    const sim = await scope.ns('sim');
    const r = await sim.exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', NODE, CTUN, 'server', '--port', '11723'], { reject: false });
    expect(r.exitCode).toBe(2);
    expectOneLineCause(r.stderr, 'not allowed to create TAP ctun0', '--cap-add NET_ADMIN --device /dev/net/tun');
  });

  it('configure answered "no" is aborted and changes nothing (exit 4)', async () => {
    const pc = await scope.ns('pc');
    const r = await execa('ip', ['netns', 'exec', pc.name, NODE, CTUN, 'configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress], { input: 'n\n', reject: false });
    expect(r.exitCode).toBe(4);
    expect(r.stderr).toContain('create TAP dstap0');
    expect(r.stderr).toContain('ctun: error: aborted: nothing was changed');
    expect(await pc.ip('-j', 'link', 'show')).not.toContain(TUNNEL_DEFAULTS.clientTap);
  });

  it('server on a port in use says so and leaves no TAP behind (exit 3)', async () => {
    const sim = await scope.ns('sim');
    const squatter = await sim.startProbe('udp-listen', String(TUNNEL_DEFAULTS.port), '20000');
    scope.track(squatter.daemon);
    const r = await sim.ctun(['server'], { reject: false });
    expect(r.exitCode).toBe(3);
    expectOneLineCause(r.stderr, 'UDP port 1723 on 0.0.0.0 is already in use', 'choose another with --port');
    expect(await sim.ip('-j', 'link', 'show')).not.toContain('ctun0');
  });

  it('bad addresses, ports and flags are usage errors (exit 1)', async () => {
    const sim = await scope.ns('sim');
    const badAddress = await sim.ctun(['server', '--address', '300.1.1.1/24'], { reject: false });
    expect(badAddress.exitCode).toBe(1);
    expectOneLineCause(badAddress.stderr, '--address "300.1.1.1/24" is not an IPv4 address', 'write it like 192.168.100.1/24');
    const badPort = await sim.ctun(['client', '10.0.0.1', '--port', '70000'], { reject: false });
    expect(badPort.exitCode).toBe(1);
    expect(badPort.stderr).toContain('--port must be 1-65535');
    const badDeadAfter = await sim.ctun(['client', '10.0.0.1', '--dead-after-ms', '500'], { reject: false });
    expect(badDeadAfter.exitCode).toBe(1);
    expectOneLineCause(badDeadAfter.stderr, '--dead-after-ms must be a whole number of milliseconds, at least 2000, got "500"', 'e.g. --dead-after-ms 2000');
    const badBusyPoll = await sim.ctun(['server', '--busy-poll', '5000'], { reject: false });
    expect(badBusyPoll.exitCode).toBe(1);
    expectOneLineCause(badBusyPoll.stderr, '--busy-poll must be a whole number of microseconds from 0 to 1000, got "5000"', '0 turns busy polling off');
    expect(await sim.ip('-j', 'link', 'show')).not.toContain('ctun0');
    const badDest = await sim.ctun(['client', '10.0.0.1', '--dest', 'target'], { reject: false });
    expect(badDest.exitCode).toBe(1);
    expect(badDest.stderr).toContain('--dest "target" is not an IPv4 or IPv6 address');
    const unknownFlag = await sim.ctun(['server', '--bogus'], { reject: false });
    expect(unknownFlag.exitCode).toBe(1);
    expect(unknownFlag.stderr).toContain('Unknown argument: bogus');
    const noTapAddress = await sim.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap], { reject: false });
    expect(noTapAddress.exitCode).toBe(1);
    expectOneLineCause(noTapAddress.stderr, '--tap NAME needs an ADDRESS', 'ctun configure --tap dstap0 192.168.100.100');
  });

  it('client with --dest against a local-mode server is rejected by the peer (exit 5)', async () => {
    const pc = await scope.ns('pc');
    const sim = await scope.ns('sim');
    await link(pc, '10.80.0.1/24', sim, '10.80.0.2/24');
    await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
    const server = scope.track(sim.spawnCtun(['server']));
    await server.waitFor(/server-listening/, 15_000);
    const r = await pc.ctun(['client', '10.80.0.2', '--dest', '10.80.0.2'], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(5);
    expectOneLineCause(r.stderr, 'the server rejected this client (ModeMismatch)', 'drop --dest for a local-mode server');
  });
});
