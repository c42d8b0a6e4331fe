/**
 * The IPv6 side of NetConfig against sysctl twins (temporary files): what the separate
 * server reads and sets before it adds an IPv6 address and ip6tables rules.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../lab/testing.js';
import { NetConfig } from './netconfig.js';

/** A /proc/sys/net twin: ctun0's disable_ipv6 as given, IPv6 forwarding off, IPv4's on. */
function sysctls(disableIpv6: string) {
  const root = tempDir('sysctl6');
  const ipv6 = join(root, 'ipv6');
  mkdirSync(join(ipv6, 'conf', 'all'), { recursive: true });
  mkdirSync(join(ipv6, 'conf', 'ctun0'), { recursive: true });
  writeFileSync(join(ipv6, 'conf', 'all', 'forwarding'), '0\n');
  writeFileSync(join(ipv6, 'conf', 'ctun0', 'disable_ipv6'), `${disableIpv6}\n`);
  writeFileSync(join(root, 'ip_forward'), '1\n');
  const net = new NetConfig(async () => ({ exitCode: 0, stdout: '', stderr: '' }), { ipv4Forwarding: join(root, 'ip_forward'), ipv6 });
  return { net, ipv6 };
}

describe('NetConfig, IPv6 sysctls', () => {
  it('turns IPv6 on for a TAP that has it disabled, and IPv6 forwarding on and back off', async () => {
    const { net, ipv6 } = sysctls('1');
    await net.requireIpv6('ctun0');
    expect(readFileSync(join(ipv6, 'conf', 'ctun0', 'disable_ipv6'), 'utf8').trim()).toBe('0');
    expect(await net.enableForwarding(6)).toBe(true);
    expect(readFileSync(join(ipv6, 'conf', 'all', 'forwarding'), 'utf8').trim()).toBe('1');
    expect(await net.enableForwarding(6)).toBe(false);
    // IPv4's switch is its own: it was on, so nothing to change.
    expect(await net.enableForwarding(4)).toBe(false);
    await net.disableForwarding(6);
    expect(readFileSync(join(ipv6, 'conf', 'all', 'forwarding'), 'utf8').trim()).toBe('0');
  });

  it('says what is wrong when the kernel has no IPv6 for the TAP, or forwarding cannot be set', async () => {
    const { net, ipv6 } = sysctls('0');
    rmSync(join(ipv6, 'conf', 'ctun0'), { recursive: true });
    await expect(net.requireIpv6('ctun0')).rejects.toMatchObject({ code: 'NET_CONFIG', message: expect.stringMatching(/^IPv6 is not available on ctun0 \(.*disable_ipv6 is missing/) });
    // A switch that cannot be written (here: a folder in its place; in a container: a read-only /proc/sys).
    rmSync(join(ipv6, 'conf', 'all', 'forwarding'));
    mkdirSync(join(ipv6, 'conf', 'all', 'forwarding'));
    await expect(net.enableForwarding(6)).rejects.toMatchObject({
      code: 'FORWARDING_OFF',
      exitCode: 2,
      message: 'IPv6 forwarding is off and cannot be turned on here (/proc/sys is read-only)',
      hint: 'start the container with --sysctl net.ipv6.conf.all.forwarding=1 (Kubernetes: securityContext.sysctls, allowed by the kubelet)',
    });
  });
});
