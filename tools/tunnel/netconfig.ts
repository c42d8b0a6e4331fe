/**
 * The kernel's network configuration, through iproute2 and iptables: the standard
 * tools an administrator would use, so every step can be reproduced by hand. A
 * `CommandRunner` sits in front of them; unit tests pass a recording twin.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
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

export class NetConfig {
  /**
   * @param run runs iproute2/iptables; default: the real commands.
   * @param forwardingFile the IPv4 forwarding sysctl; a temp file in unit tests.
   */
  constructor(
    private readonly run: CommandRunner = runCommand,
    private readonly forwardingFile = '/proc/sys/net/ipv4/ip_forward',
  ) {}

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
        hint: file === 'ip' ? 'install iproute2' : `install ${file}`,
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

  /** Routes one host through the tunnel: `ip route replace HOST/32 via NEXTHOP dev TAP`. */
  async addHostRoute(host: string, via: string, dev: string): Promise<void> {
    await this.must('ip', ['route', 'replace', `${host}/32`, 'via', via, 'dev', dev], `routing ${host} through ${dev}`);
  }

  async deleteHostRoute(host: string, dev: string): Promise<void> {
    await this.run('ip', ['route', 'del', `${host}/32`, 'dev', dev]);
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
   * Turns IPv4 forwarding on. In a container /proc/sys is read-only: there it must
   * already have been set as a namespaced sysctl when the container was created.
   */
  async enableForwarding(): Promise<boolean> {
    const path = this.forwardingFile;
    const current = (await readFile(path, 'utf8').catch(() => '0')).trim();
    if (current === '1') return false;
    try {
      await writeFile(path, '1\n');
    } catch (e) {
      throw new CtunError('FORWARDING_OFF', 'IPv4 forwarding is off and cannot be turned on here (/proc/sys is read-only)', {
        hint: 'start the container with --sysctl net.ipv4.ip_forward=1 (Kubernetes: securityContext.sysctls, allowed by the kubelet)',
        exitCode: ExitCode.Privileges,
        cause: e,
      });
    }
    return true;
  }

  /** Turns IPv4 forwarding back off (what enableForwarding changed, undone at exit). */
  async disableForwarding(): Promise<void> {
    await writeFile(this.forwardingFile, '0\n').catch(() => {});
  }

  /** Adds an iptables rule unless an identical one exists; returns whether it added it. */
  async ensureRule(table: string, chain: string, rule: string[]): Promise<boolean> {
    const check = await this.run('iptables', ['-w', '-t', table, '-C', chain, ...rule]);
    if (check.exitCode === 0) return false;
    await this.must('iptables', ['-w', '-t', table, '-A', chain, ...rule], `adding the ${table}/${chain} rule ${rule.join(' ')}`);
    return true;
  }

  /** Inserts a rule at the top of the chain unless an identical one exists; returns whether it added it. */
  async insertRule(table: string, chain: string, rule: string[]): Promise<boolean> {
    const check = await this.run('iptables', ['-w', '-t', table, '-C', chain, ...rule]);
    if (check.exitCode === 0) return false;
    await this.must('iptables', ['-w', '-t', table, '-I', chain, '1', ...rule], `adding the ${table}/${chain} rule ${rule.join(' ')}`);
    return true;
  }

  async deleteRule(table: string, chain: string, rule: string[]): Promise<void> {
    await this.run('iptables', ['-w', '-t', table, '-D', chain, ...rule]);
  }

  /**
   * Rules of `table` carrying the comment `tag` (what a crashed server left behind), as
   * chain and arguments ready for deleteRule. None when iptables is missing.
   */
  async taggedRules(table: string, tag: string): Promise<Array<{ chain: string; rule: string[] }>> {
    const r = await this.run('iptables', ['-w', '-t', table, '-S']);
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

/** Splits an `iptables -S` line into words; double quotes group (iptables quotes comments with spaces). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return words;
}
