/**
 * What the tunnel's unit tests share (not part of the public API).
 */
import { writeFileSync } from 'node:fs';
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
}

/**
 * ip/iptables twin: `ip route get` answers with `routes` (destination → device, else
 * unreachable), `iptables -S` prints `leftovers` for the filter table, `iptables -C`
 * finds no rule, `ip -j …` prints an empty JSON list.
 */
export function recordingNet(routes: Record<string, string> = {}, leftovers = ''): RecordingNet {
  const calls: string[] = [];
  const forwarding = join(tempDir('sysctl'), 'ip_forward');
  writeFileSync(forwarding, '0\n');
  const runner: CommandRunner = async (file, args) => {
    calls.push(`${file} ${args.join(' ')}`);
    if (args.includes('route') && args.includes('get')) {
      const dest = args[args.length - 1]!;
      return routes[dest] ? { exitCode: 0, stdout: JSON.stringify([{ dev: routes[dest] }]), stderr: '' } : { exitCode: 2, stdout: '', stderr: 'Network is unreachable' };
    }
    if (args.includes('-S')) return { exitCode: 0, stdout: args.includes('filter') ? leftovers : '', stderr: '' };
    if (args.includes('-C')) return { exitCode: 1, stdout: '', stderr: 'Bad rule (does a matching rule exist in that chain?)' };
    return { exitCode: 0, stdout: args.includes('-j') && file === 'ip' ? '[]' : '', stderr: '' };
  };
  return { net: new NetConfig(runner, forwarding), calls, forwarding };
}
