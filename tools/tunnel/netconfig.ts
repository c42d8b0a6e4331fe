/**
 * The kernel's network configuration, through iproute2 and iptables: the standard
 * tools an administrator would use, so every step can be reproduced by hand. A
 * `CommandRunner` sits in front of them; unit tests pass a recording twin.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { CtunError, ExitCode } from '../common/index.js';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export type CommandRunner = (file: string, args: string[]) => Promise<CommandResult>;

/**
 * Runs `ip`, `iptables` or `sysctl` and never throws. Node's execFile, not execa: this
 * runs inside every tunnel end, where execa and its dependencies would be a tenth
 * of the resident memory, for the sake of a few short commands.
 */
export const runCommand: CommandRunner = (file, args) =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: 10_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code;
      if (error !== null && typeof code !== 'number') resolve({ exitCode: 127, stdout: '', stderr: stderr || error.message });
      else resolve({ exitCode: typeof code === 'number' ? code : 0, stdout: stdout.trimEnd(), stderr: stderr.trimEnd() });
    });
  });

export interface LinkInfo {
  name: string;
  ifindex: number;
  /** `tun` for TUN/TAP devices, undefined for physical ones. */
  kind: string | undefined;
  /** For TUN/TAP: `tap` or `tun`. */
  tunType: string | undefined;
  /** For persistent TUN/TAP: the owner as iproute2 prints it (a user name, or a uid without a name). */
  owner: string | undefined;
  up: boolean;
  mtu: number;
  addresses: string[];
}

function permissionDenied(stderr: string): boolean {
  return /Operation not permitted|Permission denied|must be root|you must be root/i.test(stderr);
}

/** An IP family: which iptables (`iptables`, `ip6tables`) and which forwarding sysctl. */
export type Family = 4 | 6;

/** The sysctls the separate server reads and sets; temp files in unit tests. */
export interface SysctlPaths {
  /** IPv4 forwarding: /proc/sys/net/ipv4/ip_forward. */
  ipv4Forwarding: string;
  /** The IPv6 tree, /proc/sys/net/ipv6: conf/all/forwarding, conf/DEV/disable_ipv6. */
  ipv6: string;
}

export const PROC_SYSCTLS: SysctlPaths = { ipv4Forwarding: '/proc/sys/net/ipv4/ip_forward', ipv6: '/proc/sys/net/ipv6' };

/** What to set on a container so that forwarding is on inside it (/proc/sys is read-only there). */
const FORWARDING_SYSCTL: Record<Family, string> = { 4: 'net.ipv4.ip_forward=1', 6: 'net.ipv6.conf.all.forwarding=1' };

/** The iptables program of a family. */
export function iptablesOf(family: Family): string {
  return family === 6 ? 'ip6tables' : 'iptables';
}

export class NetConfig {
  /**
   * @param run runs iproute2/iptables; default: the real commands.
   * @param sysctl the forwarding and IPv6 sysctls; temp files in unit tests.
   */
  constructor(
    private readonly run: CommandRunner = runCommand,
    private readonly sysctl: SysctlPaths = PROC_SYSCTLS,
  ) {}

  private forwardingFile(family: Family): string {
    return family === 6 ? `${this.sysctl.ipv6}/conf/all/forwarding` : this.sysctl.ipv4Forwarding;
  }

  private async must(file: string, args: string[], what: string): Promise<string> {
    const r = await this.run(file, args);
    if (r.exitCode === 0) return r.stdout;
    if (permissionDenied(r.stderr)) {
      throw new CtunError('NO_NET_ADMIN', `${what} needs the NET_ADMIN capability (${file} ${args.join(' ')}: ${r.stderr.trim()})`, {
        hint: 'run it as root (sudo) or in a container started with --cap-add NET_ADMIN',
        exitCode: ExitCode.Privileges,
      });
    }
    if (r.exitCode === 127 && /ENOENT|not found/i.test(r.stderr)) {
      throw new CtunError('TOOL_MISSING', `${file} is not installed; ${what} needs it`, {
        hint: file === 'ip' ? 'install iproute2' : file === 'ip6tables' ? 'install iptables (it brings ip6tables)' : `install ${file}`,
        exitCode: ExitCode.Failure,
      });
    }
    throw new CtunError('NET_CONFIG', `${what} failed: ${file} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.exitCode}`}`, { exitCode: ExitCode.Failure });
  }

  async link(name: string): Promise<LinkInfo | undefined> {
    const r = await this.run('ip', ['-d', '-j', 'addr', 'show', 'dev', name]);
    if (r.exitCode !== 0) return undefined;
    const [raw] = JSON.parse(r.stdout) as Array<Record<string, any>>;
    if (raw === undefined) return undefined;
    const info = raw.linkinfo as { info_kind?: string; info_data?: { type?: string; user?: string | number } } | undefined;
    const owner = info?.info_data?.user;
    return {
      name: raw.ifname,
      ifindex: raw.ifindex,
      kind: info?.info_kind,
      tunType: info?.info_data?.type,
      owner: owner === undefined ? undefined : String(owner),
      up: Array.isArray(raw.flags) && raw.flags.includes('UP'),
      mtu: raw.mtu,
      addresses: ((raw.addr_info ?? []) as Array<{ family: string; local: string; prefixlen: number }>)
        .filter((a) => a.family === 'inet')
        .map((a) => `${a.local}/${a.prefixlen}`),
    };
  }

  /** Creates a persistent TAP owned by `user` (name or uid); the client then needs no root. */
  async addPersistentTap(name: string, user: string | undefined): Promise<void> {
    const args = ['tuntap', 'add', 'dev', name, 'mode', 'tap'];
    if (user !== undefined) args.push('user', user);
    await this.must('ip', args, `creating TAP ${name}`);
  }

  async deleteLink(name: string): Promise<void> {
    await this.must('ip', ['link', 'del', 'dev', name], `removing ${name}`);
  }

  /** Sets exactly one IPv4 address on the link (replacing others), brings it up with `mtu`. */
  async setAddressAndUp(name: string, cidr: string, mtu: number | undefined, mac?: string): Promise<void> {
    const current = await this.link(name);
    if (mac !== undefined) await this.must('ip', ['link', 'set', 'dev', name, 'address', mac], `setting the MAC address of ${name}`);
    for (const a of current?.addresses ?? []) if (a !== cidr) await this.must('ip', ['addr', 'del', a, 'dev', name], `removing old address ${a} from ${name}`);
    await this.must('ip', ['addr', 'replace', cidr, 'dev', name], `setting ${cidr} on ${name}`);
    const up = ['link', 'set', 'dev', name, 'up'];
    if (mtu !== undefined) up.push('mtu', String(mtu));
    await this.must('ip', up, `bringing ${name} up`);
  }

  async setPromisc(name: string, on: boolean): Promise<void> {
    await this.must('ip', ['link', 'set', 'dev', name, 'promisc', on ? 'on' : 'off'], `setting promiscuous mode on ${name}`);
  }

  async flushAddresses(name: string): Promise<void> {
    await this.must('ip', ['addr', 'flush', 'dev', name], `removing the IP addresses of ${name}`);
  }

  async addBlackhole(address: string): Promise<void> {
    await this.must('ip', ['route', 'replace', 'blackhole', `${address}/32`], `adding a blackhole route for ${address}`);
  }

  /** Routes one host (IPv4 or IPv6) through the tunnel: `ip route replace HOST/32 via NEXTHOP dev TAP` (/128 for IPv6). */
  async addHostRoute(host: string, via: string, dev: string): Promise<void> {
    await this.must('ip', ['route', 'replace', hostPrefix(host), 'via', via, 'dev', dev], `routing ${host} through ${dev}`);
  }

  async deleteHostRoute(host: string, dev: string): Promise<void> {
    await this.run('ip', ['route', 'del', hostPrefix(host), 'dev', dev]);
  }

  /**
   * Adds an IPv6 address to a link, usable at once (`nodad`: the tunnel subnet's
   * addresses are derived from unique IPv4 ones, so duplicate detection would only
   * delay the first packets by a second or two).
   */
  async addAddress6(dev: string, cidr: string): Promise<void> {
    await this.must('ip', ['-6', 'addr', 'replace', cidr, 'dev', dev, 'nodad'], `setting ${cidr} on ${dev}`);
  }

  async deleteAddress(dev: string, cidr: string): Promise<void> {
    await this.run('ip', ['addr', 'del', cidr, 'dev', dev]);
  }

  /**
   * Makes sure IPv6 is on for `dev` (a host or container may have it disabled:
   * net.ipv6.conf.DEV.disable_ipv6). Throws NET_CONFIG saying what to set when it is
   * off and cannot be turned on, or when the kernel has no IPv6 at all.
   */
  async requireIpv6(dev: string): Promise<void> {
    const file = `${this.sysctl.ipv6}/conf/${dev}/disable_ipv6`;
    const current = await readFile(file, 'utf8').catch(() => undefined);
    if (current === undefined) {
      throw new CtunError('NET_CONFIG', `IPv6 is not available on ${dev} (${file} is missing: a kernel without IPv6, or booted with ipv6.disable=1)`, { exitCode: ExitCode.Failure });
    }
    if (current.trim() === '0') return;
    try {
      await writeFile(file, '0\n');
    } catch (e) {
      throw new CtunError('NET_CONFIG', `IPv6 is disabled on ${dev} and cannot be turned on here (/proc/sys is read-only)`, {
        hint: 'start the container with --sysctl net.ipv6.conf.all.disable_ipv6=0 --sysctl net.ipv6.conf.default.disable_ipv6=0',
        exitCode: ExitCode.Failure,
        cause: e,
      });
    }
  }

  /** The interface the kernel would use to reach `address`, or undefined if none. */
  async routeTo(address: string): Promise<{ dev: string; gateway: string | undefined } | undefined> {
    const r = await this.run('ip', ['-j', 'route', 'get', address]);
    if (r.exitCode !== 0) return undefined;
    const [route] = JSON.parse(r.stdout) as Array<{ dev?: string; gateway?: string; type?: string }>;
    if (route?.dev === undefined) return undefined;
    return { dev: route.dev, gateway: route.gateway };
  }

  /**
   * Turns forwarding of `family` on; returns whether it changed it. In a container
   * /proc/sys is read-only: there it must already have been set as a namespaced sysctl
   * when the container was created.
   */
  async enableForwarding(family: Family = 4): Promise<boolean> {
    const path = this.forwardingFile(family);
    const current = (await readFile(path, 'utf8').catch(() => '0')).trim();
    if (current === '1') return false;
    try {
      await writeFile(path, '1\n');
    } catch (e) {
      throw new CtunError('FORWARDING_OFF', `IPv${family} forwarding is off and cannot be turned on here (/proc/sys is read-only)`, {
        hint: `start the container with --sysctl ${FORWARDING_SYSCTL[family]} (Kubernetes: securityContext.sysctls, allowed by the kubelet)`,
        exitCode: ExitCode.Privileges,
        cause: e,
      });
    }
    return true;
  }

  /** Turns forwarding of `family` back off (what enableForwarding changed, undone at exit). */
  async disableForwarding(family: Family = 4): Promise<void> {
    await writeFile(this.forwardingFile(family), '0\n').catch(() => {});
  }

  /** Adds an iptables (or, for `family` 6, ip6tables) rule unless an identical one exists; returns whether it added it. */
  async ensureRule(table: string, chain: string, rule: string[], family: Family = 4): Promise<boolean> {
    const iptables = iptablesOf(family);
    const check = await this.run(iptables, ['-w', '-t', table, '-C', chain, ...rule]);
    if (check.exitCode === 0) return false;
    await this.must(iptables, ['-w', '-t', table, '-A', chain, ...rule], `adding the ${table}/${chain} rule ${rule.join(' ')}`);
    return true;
  }

  /** Inserts a rule at the top of the chain unless an identical one exists; returns whether it added it. */
  async insertRule(table: string, chain: string, rule: string[], family: Family = 4): Promise<boolean> {
    const iptables = iptablesOf(family);
    const check = await this.run(iptables, ['-w', '-t', table, '-C', chain, ...rule]);
    if (check.exitCode === 0) return false;
    await this.must(iptables, ['-w', '-t', table, '-I', chain, '1', ...rule], `adding the ${table}/${chain} rule ${rule.join(' ')}`);
    return true;
  }

  async deleteRule(table: string, chain: string, rule: string[], family: Family = 4): Promise<void> {
    await this.run(iptablesOf(family), ['-w', '-t', table, '-D', chain, ...rule]);
  }

  /**
   * Rules of `table` carrying the comment `tag` (what a crashed server left behind), as
   * chain and arguments ready for deleteRule. None when that iptables is missing.
   */
  async taggedRules(table: string, tag: string, family: Family = 4): Promise<Array<{ chain: string; rule: string[] }>> {
    const r = await this.run(iptablesOf(family), ['-w', '-t', table, '-S']);
    if (r.exitCode !== 0) return [];
    const found: Array<{ chain: string; rule: string[] }> = [];
    for (const line of r.stdout.split('\n')) {
      const words = shellWords(line);
      if (words[0] !== '-A' || words.length < 2) continue;
      const at = words.indexOf('--comment');
      if (at < 0 || words[at + 1] !== tag) continue;
      found.push({ chain: words[1]!, rule: words.slice(2) });
    }
    return found;
  }
}

/** `HOST/32`, or `HOST/128` for an IPv6 host. */
function hostPrefix(host: string): string {
  return `${host}/${isIPv6(host) ? 128 : 32}`;
}

/** Splits an `iptables -S` line into words; double quotes group (iptables quotes comments with spaces). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return words;
}
