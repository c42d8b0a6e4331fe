/**
 * `ctun configure`: prepares this host for the client, as the seed's configure.sh
 * does: a persistent TAP owned by the user (so the client runs without root), its
 * address, up. Also the seed's promiscuous-mode helpers. Idempotent: running it
 * twice changes nothing the second time, and says so.
 */
import { readFileSync } from 'node:fs';
import { chmod, readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { CtunError, ExitCode, type Logger } from '../common/index.js';
import { parseCidr, requireIPv4 } from './address.js';
import { NetConfig } from './netconfig.js';

export interface ConfigureRequest {
  /** Create or update this TAP with `address`. */
  tap?: { name: string; address: string; prefix: number; user: string | undefined; mtu: number };
  /** Remove this TAP. */
  remove?: string;
  /** Put this interface into promiscuous mode. */
  promisc?: string;
  /** With promisc: remove the IP addresses of this interface. */
  dropIp?: string;
  /** With promisc: a blackhole route for this address. */
  blackhole?: string;
}

export interface ConfigureResult {
  /** One line per step: what was done, or that it was already so. */
  actions: string[];
}

/** Asks the user to confirm; resolves false when they decline or there is no answer. */
export type Confirm = (question: string) => Promise<boolean>;

const CAP_NET_ADMIN = 12;

/** Reads the effective capabilities, so a missing NET_ADMIN is reported before any change. */
export async function hasNetAdmin(statusFile = '/proc/self/status'): Promise<boolean> {
  const status = await readFile(statusFile, 'utf8').catch(() => '');
  const line = status.split('\n').find((l) => l.startsWith('CapEff:'));
  if (line === undefined) return process.getuid?.() === 0;
  const caps = BigInt('0x' + line.split(/\s+/)[1]);
  return (caps & (1n << BigInt(CAP_NET_ADMIN))) !== 0n;
}

export function describeRequest(r: ConfigureRequest): string[] {
  const plan: string[] = [];
  if (r.tap) plan.push(`create TAP ${r.tap.name} owned by ${r.tap.user ?? 'root'} with ${r.tap.address}/${r.tap.prefix}, MTU ${r.tap.mtu}, up`);
  if (r.remove) plan.push(`remove TAP ${r.remove}`);
  if (r.promisc) plan.push(`set ${r.promisc} promiscuous`);
  if (r.dropIp) plan.push(`remove the IP addresses of ${r.dropIp}`);
  if (r.blackhole) plan.push(`add a blackhole route for ${r.blackhole}`);
  return plan;
}

export function validateRequest(r: ConfigureRequest): void {
  const usage = (message: string, hint?: string): never => {
    throw new CtunError('USAGE', message, { hint, exitCode: ExitCode.Usage });
  };
  if (!r.tap && !r.remove && !r.promisc) usage('nothing to do', 'give --tap NAME ADDRESS, --remove NAME or --promisc IF');
  if ((r.dropIp || r.blackhole) && !r.promisc) usage('--drop-ip and --blackhole go with --promisc IF');
  if (r.dropIp && r.blackhole) usage('--drop-ip and --blackhole exclude each other; choose one');
  if (r.tap) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(r.tap.name)) usage(`TAP name "${r.tap.name}" is not a valid interface name (1-15 letters, digits, _ . -)`);
    parseCidr(`${r.tap.address}/${r.tap.prefix}`, 24, 'TAP address');
  }
  if (r.blackhole) requireIPv4(r.blackhole, '--blackhole');
}

export async function configure(r: ConfigureRequest, deps: { net?: NetConfig; logger: Logger; confirm?: Confirm; tunDevice?: string }): Promise<ConfigureResult> {
  validateRequest(r);
  const net = deps.net ?? new NetConfig();
  if (!(await hasNetAdmin())) {
    throw new CtunError('NO_NET_ADMIN', 'ctun configure changes network interfaces and needs the NET_ADMIN capability', {
      hint: 'run it with sudo (once; the client itself then runs as your user)',
      exitCode: ExitCode.Privileges,
    });
  }
  if (deps.confirm !== undefined) {
    const ok = await deps.confirm(`This will:\n  ${describeRequest(r).join('\n  ')}\nContinue? [y/N] `);
    if (!ok) throw new CtunError('ABORTED', 'aborted: nothing was changed', { exitCode: ExitCode.Aborted });
  }
  const actions: string[] = [];
  if (r.remove) {
    const link = await net.link(r.remove);
    if (link === undefined) actions.push(`TAP ${r.remove} was already absent`);
    else if (link.kind !== 'tun') {
      throw new CtunError('TAP_INVALID', `${r.remove} is not a TAP device; refusing to remove it`, { hint: 'give the name of a TAP made by ctun configure', exitCode: ExitCode.Usage });
    } else {
      await net.deleteLink(r.remove);
      actions.push(`removed TAP ${r.remove}`);
    }
  }
  if (r.tap) {
    actions.push(...(await configureTap(net, r.tap)));
    if (r.tap.user !== undefined && resolveUid(r.tap.user) !== 0) actions.push(...(await openTunDevice(deps.tunDevice ?? '/dev/net/tun')));
  }
  if (r.promisc) {
    if ((await net.link(r.promisc)) === undefined) {
      throw new CtunError('NO_SUCH_INTERFACE', `interface ${r.promisc} does not exist`, { hint: 'list interfaces with: ip link', exitCode: ExitCode.Usage });
    }
    await net.setPromisc(r.promisc, true);
    actions.push(`${r.promisc} is promiscuous`);
    if (r.dropIp) {
      await net.flushAddresses(r.dropIp);
      actions.push(`removed the IP addresses of ${r.dropIp}`);
    }
    if (r.blackhole) {
      await net.addBlackhole(r.blackhole);
      actions.push(`blackhole route for ${r.blackhole}`);
    }
  }
  for (const a of actions) deps.logger.debug('configure', { done: a });
  return { actions };
}

async function configureTap(net: NetConfig, t: NonNullable<ConfigureRequest['tap']>): Promise<string[]> {
  const actions: string[] = [];
  const cidr = `${t.address}/${t.prefix}`;
  const uid = t.user === undefined ? undefined : resolveUid(t.user);
  let link = await net.link(t.name);
  if (link !== undefined && link.kind !== 'tun') {
    throw new CtunError('NAME_IN_USE', `${t.name} exists and is not a TAP device`, { hint: 'choose another name with --tap', exitCode: ExitCode.Usage });
  }
  const ownerUid = link?.owner === undefined ? undefined : resolveUid(link.owner);
  if (link !== undefined && uid !== undefined && ownerUid !== uid) {
    // The owner of a persistent TAP is fixed at creation: recreate it for the new user.
    await net.deleteLink(t.name);
    actions.push(`recreated TAP ${t.name} for user ${t.user} (was owned by ${link.owner ?? 'nobody'})`);
    link = undefined;
  }
  if (link === undefined) {
    await net.addPersistentTap(t.name, t.user);
    if (actions.length === 0) actions.push(`created TAP ${t.name} owned by ${t.user ?? 'root'}`);
  } else {
    actions.push(`TAP ${t.name} already exists (owner ${t.user ?? 'unchanged'})`);
  }
  const before = await net.link(t.name);
  const same = before?.addresses.length === 1 && before.addresses[0] === cidr && before.up && before.mtu === t.mtu;
  await net.setAddressAndUp(t.name, cidr, t.mtu);
  actions.push(same ? `${t.name} already has ${cidr}, MTU ${t.mtu}, up` : `${t.name} has ${cidr}, MTU ${t.mtu}, up`);
  return actions;
}

/**
 * The TAP's owner still has to open /dev/net/tun. Distributions ship it as 0666 (the
 * kernel checks ownership of each TAP, not the device node); some hardened hosts do
 * not, and then a user-owned TAP is useless. Restore the usual mode and say so.
 */
async function openTunDevice(path: string): Promise<string[]> {
  const st = await stat(path).catch(() => undefined);
  if (st === undefined) {
    throw new CtunError('NO_TUN_DEVICE', `${path} does not exist`, { hint: 'load the tun module: sudo modprobe tun', exitCode: ExitCode.Device });
  }
  if ((st.mode & 0o666) === 0o666) return [];
  await chmod(path, (st.mode & 0o7777) | 0o666);
  return [`made ${path} usable by every user (mode 0666, the distributions' default), so the TAP's owner can open it`];
}

function resolveUid(user: string): number {
  if (/^\d+$/.test(user)) return Number(user);
  if (user === userInfo().username) return userInfo().uid;
  // Other users: `ip tuntap add ... user NAME` resolves the name itself; we only
  // need the uid to compare with the current owner, which getent gives.
  const passwd = safeRead('/etc/passwd');
  const line = passwd.split('\n').find((l) => l.startsWith(`${user}:`));
  if (line === undefined) throw new CtunError('NO_SUCH_USER', `user ${user} does not exist`, { hint: 'give an existing user name or uid with --user', exitCode: ExitCode.Usage });
  return Number(line.split(':')[2]);
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The user the TAP should belong to: `--user`, else whoever ran sudo, else the caller. */
export function defaultTapUser(env: NodeJS.ProcessEnv = process.env): string {
  return env.SUDO_USER ?? userInfo().username;
}
