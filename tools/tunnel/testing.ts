/**
 * What the tunnel's unit tests share (not part of the public API).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../lab/testing.js';
import { NetConfig, type CommandRunner } from './netconfig.js';

/** A NetConfig on a recording twin of ip/iptables, and the calls it made. */
export interface RecordingNet {
  net: NetConfig;
  /** Every command run, as `file arg arg …`. */
  calls: string[];
  /** The twin of /proc/sys/net/ipv4/ip_forward (a temporary file, starts at 0). */
  forwarding: string;
  /** The twin of /proc/sys/net/ipv6/conf/all/forwarding (starts at 0). */
  forwarding6: string;
  /** The twin of /proc/sys/net/ipv6/conf/ctun0/disable_ipv6 (starts at 0: IPv6 on). */
  disableIpv6: string;
}

/**
 * ip/iptables twin: `ip route get` answers with `routes` (destination → device, else
 * unreachable), `iptables -S` prints `leftovers` for the filter table, `iptables -C`
 * (and ip6tables') finds no rule, `ip -j …` prints an empty JSON list, except
 * `ip -d -j addr show dev X` for a link of `more.links` (its IPv4 addresses); a
 * program in `more.missing` is not installed.
 */
export function recordingNet(routes: Record<string, string> = {}, leftovers = '', more: { links?: Record<string, string[]>; missing?: string[] } = {}): RecordingNet {
  const calls: string[] = [];
  const sysctl = tempDir('sysctl');
  const forwarding = join(sysctl, 'ip_forward');
  const ipv6 = join(sysctl, 'ipv6');
  for (const dev of ['all', 'ctun0', 'dstap0']) mkdirSync(join(ipv6, 'conf', dev), { recursive: true });
  const forwarding6 = join(ipv6, 'conf', 'all', 'forwarding');
  const disableIpv6 = join(ipv6, 'conf', 'ctun0', 'disable_ipv6');
  // The server's TAP (ctun0) and the client's (dstap0) have IPv6 on.
  for (const file of [forwarding, forwarding6, disableIpv6, join(ipv6, 'conf', 'dstap0', 'disable_ipv6')]) writeFileSync(file, '0\n');
  const runner: CommandRunner = async (file, args) => {
    calls.push(`${file} ${args.join(' ')}`);
    if (more.missing?.includes(file)) return { exitCode: 127, stdout: '', stderr: `spawn ${file} ENOENT` };
    const dev = args[args.length - 1]!;
    if (args.join(' ') === `-d -j addr show dev ${dev}` && more.links?.[dev] !== undefined) {
      const addr_info = more.links[dev]!.map((a) => ({ family: 'inet', local: a.split('/')[0], prefixlen: Number(a.split('/')[1]) }));
      return { exitCode: 0, stdout: JSON.stringify([{ ifname: dev, ifindex: 7, flags: ['UP'], mtu: 1400, addr_info }]), stderr: '' };
    }
    if (args.includes('route') && args.includes('get')) {
      const dest = args[args.length - 1]!;
      return routes[dest] ? { exitCode: 0, stdout: JSON.stringify([{ dev: routes[dest] }]), stderr: '' } : { exitCode: 2, stdout: '', stderr: 'Network is unreachable' };
    }
    if (args.includes('-S')) return { exitCode: 0, stdout: file === 'iptables' && args.includes('filter') ? leftovers : '', stderr: '' };
    if (args.includes('-C')) return { exitCode: 1, stdout: '', stderr: 'Bad rule (does a matching rule exist in that chain?)' };
    return { exitCode: 0, stdout: args.includes('-j') && file === 'ip' ? '[]' : '', stderr: '' };
  };
  return { net: new NetConfig(runner, { ipv4Forwarding: forwarding, ipv6 }), calls, forwarding, forwarding6, disableIpv6 };
}
