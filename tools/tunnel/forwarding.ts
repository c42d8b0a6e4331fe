/**
 * The kernel side of separate mode: forwarding, NAT (MASQUERADE), MSS clamping and a
 * FORWARD rule per admitted destination, for each IP family. IPv4 is set up when the
 * server starts. IPv6 only when the first client names an IPv6 --dest: turning IPv6
 * forwarding on makes a host stop accepting router advertisements, so a server that
 * is never asked for IPv6 leaves the host's IPv6 alone. Every rule carries the tag
 * `ctun:TAP`; stop() removes what was added and turns back off what was turned on.
 */
import { isIPv6 } from 'node:net';
import { CtunError, type Logger } from '../common/index.js';
import { tunnelIpv6Subnet, type Cidr } from './address.js';
import type { Family, NetConfig } from './netconfig.js';

interface Rule {
  family: Family;
  table: string;
  chain: string;
  rule: string[];
}

/** A destination admitted in separate mode: its kernel rule, and how many sessions use it. */
interface AdmittedDest {
  rule: Rule;
  users: number;
}

/** How long a failed IPv6 set-up is remembered: hellos asking for IPv6 meanwhile get its reason without new commands. */
const IPV6_RETRY_MS = 10_000;

export interface SeparateForwardingOptions {
  net: NetConfig;
  /** The server's TAP. */
  tap: string;
  /** The tunnel subnet (the server's --address). */
  cidr: Cidr;
  logger: Logger;
  /** What the start-up line says clients may reach. */
  admits: string;
  now?: () => number;
}

export class SeparateForwarding {
  private readonly admitted = new Map<string, AdmittedDest>();
  private rules: Rule[] = [];
  private readonly forwardingChanged = new Set<Family>();
  /** The server's IPv6 tunnel address, once IPv6 is set up (the next hop of IPv6 --dest routes). */
  private address6: string | undefined;
  private ipv6Setup: Promise<void> | undefined;
  private ipv6Failure: { message: string; at: number } | undefined;
  private stopped = false;

  constructor(private readonly o: SeparateForwardingOptions) {}

  private get tag(): string[] {
    return ['-m', 'comment', '--comment', `ctun:${this.o.tap}`];
  }

  /** Removes what a crashed server left for this TAP, then sets up IPv4. */
  async start(): Promise<void> {
    await this.adoptLeftoverRules();
    const subnet = `${this.o.cidr.network}/${this.o.cidr.prefix}`;
    await this.setUpFamily(4, subnet);
    this.o.logger.info('forwarding-enabled', { subnet, nat: 'MASQUERADE', tap: this.o.tap, forward: this.o.admits });
  }

  /**
   * NAT for the tunnel subnet, but the kernel forwards from the TAP only to
   * destinations a session was admitted for (admit() inserts each); the rest is dropped.
   */
  private async setUpFamily(family: Family, subnet: string): Promise<void> {
    const tap = this.o.tap;
    if (await this.o.net.enableForwarding(family)) this.forwardingChanged.add(family);
    const wanted: Rule[] = [
      { family, table: 'nat', chain: 'POSTROUTING', rule: ['-s', subnet, '!', '-o', tap, '-j', 'MASQUERADE', ...this.tag] },
      { family, table: 'filter', chain: 'FORWARD', rule: ['-o', tap, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT', ...this.tag] },
      // After the per-destination ACCEPTs (inserted at the top): nothing else leaves the TAP.
      { family, table: 'filter', chain: 'FORWARD', rule: ['-i', tap, '-j', 'DROP', ...this.tag] },
      // Inner TCP must never need fragments: clamp the MSS of every SYN crossing (both ways) to the path MTU.
      { family, table: 'mangle', chain: 'FORWARD', rule: ['-p', 'tcp', '--tcp-flags', 'SYN,RST', 'SYN', '-j', 'TCPMSS', '--clamp-mss-to-pmtu', ...this.tag] },
    ];
    for (const r of wanted) {
      if (await this.o.net.ensureRule(r.table, r.chain, r.rule, r.family)) this.rules.push(r);
    }
  }

  /** Removes iptables and ip6tables rules tagged for this TAP that no running server owns (a crash left them). */
  private async adoptLeftoverRules(): Promise<void> {
    const tag = `ctun:${this.o.tap}`;
    let removed = 0;
    for (const family of [4, 6] as const) {
      for (const table of ['filter', 'nat', 'mangle']) {
        for (const r of await this.o.net.taggedRules(table, tag, family)) {
          await this.o.net.deleteRule(table, r.chain, r.rule, family);
          removed++;
        }
      }
    }
    if (removed > 0) this.o.logger.warn('leftover-rules-removed', { tap: this.o.tap, rules: removed, reason: 'a previous server for this TAP did not clean up (crash?)' });
  }

  /**
   * IPv6 on first use: the TAP's IPv6 tunnel address, IPv6 forwarding, the ip6tables
   * rules. Runs once; a failure is undone, and its reason answers IPv6 hellos for a while.
   */
  private async ensureIpv6(): Promise<void> {
    if (this.address6 !== undefined) return;
    const now = (this.o.now ?? Date.now)();
    if (this.ipv6Failure !== undefined && now - this.ipv6Failure.at < IPV6_RETRY_MS) throw new Error(this.ipv6Failure.message);
    this.ipv6Setup ??= this.setUpIpv6().finally(() => (this.ipv6Setup = undefined));
    await this.ipv6Setup;
  }

  private async setUpIpv6(): Promise<void> {
    const six = tunnelIpv6Subnet(this.o.cidr);
    const before = this.rules.length;
    const cidr = `${six.address}/${six.prefix}`;
    try {
      await this.o.net.requireIpv6(this.o.tap);
      await this.o.net.addAddress6(this.o.tap, cidr);
      await this.setUpFamily(6, six.text);
      if (this.stopped) throw new Error('the server is stopping');
      this.address6 = six.address;
      this.o.logger.info('forwarding-enabled', { family: 6, subnet: six.text, address: six.address, nat: 'MASQUERADE', tap: this.o.tap, forward: this.o.admits });
    } catch (e) {
      const undo = this.rules.splice(before);
      for (const r of undo.reverse()) await this.o.net.deleteRule(r.table, r.chain, r.rule, r.family).catch(() => {});
      if (this.forwardingChanged.delete(6)) await this.o.net.disableForwarding(6);
      await this.o.net.deleteAddress(this.o.tap, cidr).catch(() => {});
      const message = `no IPv6 on this server: ${clientReason(e)}`;
      this.ipv6Failure = { message, at: (this.o.now ?? Date.now)() };
      this.o.logger.warn('ipv6-unavailable', { reason: (e as Error).message, ...(e instanceof CtunError && e.hint !== undefined ? { hint: e.hint } : {}) });
      throw new Error(message);
    }
  }

  /** The server's IPv6 tunnel address, once an IPv6 --dest set IPv6 up. */
  get ipv6Address(): string | undefined {
    return this.address6;
  }

  /** The server's tunnel address for a destination's family: the next hop the client routes through. */
  nextHopFor(dest: string | undefined): string | undefined {
    return dest !== undefined && isIPv6(dest) ? this.address6 : undefined;
  }

  /** Lets the kernel forward from the TAP to `dest` while a session uses it (IPv6 set up first if need be). */
  async admit(dest: string): Promise<void> {
    const known = this.admitted.get(dest);
    if (known !== undefined) {
      known.users++;
      return;
    }
    const family: Family = isIPv6(dest) ? 6 : 4;
    if (family === 6) await this.ensureIpv6();
    const again = this.admitted.get(dest);
    if (again !== undefined) {
      again.users++;
      return;
    }
    const rule: Rule = { family, table: 'filter', chain: 'FORWARD', rule: ['-i', this.o.tap, '-d', `${dest}/${family === 6 ? 128 : 32}`, '-j', 'ACCEPT', ...this.tag] };
    const entry: AdmittedDest = { rule, users: 1 };
    this.admitted.set(dest, entry);
    try {
      await this.o.net.insertRule(rule.table, rule.chain, rule.rule, rule.family);
    } catch (e) {
      this.admitted.delete(dest);
      throw e;
    }
  }

  release(dest: string): void {
    const entry = this.admitted.get(dest);
    if (entry === undefined || --entry.users > 0) return;
    this.admitted.delete(dest);
    void this.o.net.deleteRule(entry.rule.table, entry.rule.chain, entry.rule.rule, entry.rule.family).catch(() => {});
  }

  /** Removes every rule it added, in reverse, and turns forwarding back off where it turned it on. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.ipv6Setup?.catch(() => {});
    for (const d of this.admitted.values()) await this.o.net.deleteRule(d.rule.table, d.rule.chain, d.rule.rule, d.rule.family).catch(() => {});
    this.admitted.clear();
    for (const r of this.rules.reverse()) await this.o.net.deleteRule(r.table, r.chain, r.rule, r.family).catch(() => {});
    this.rules = [];
    for (const family of this.forwardingChanged) await this.o.net.disableForwarding(family);
    this.forwardingChanged.clear();
    if (this.address6 !== undefined) {
      await this.o.net.deleteAddress(this.o.tap, `${this.address6}/${tunnelIpv6Subnet(this.o.cidr).prefix}`).catch(() => {});
      this.address6 = undefined;
    }
  }
}

/**
 * Why IPv6 failed, as the client is told it: short enough that the whole of it fits
 * the error answering a padded hello on plain UDP (PROTOCOL.md, "No reflection"), and
 * naming the setting that fixes the usual case, a container's read-only /proc/sys.
 */
function clientReason(e: unknown): string {
  if (e instanceof CtunError && e.code === 'FORWARDING_OFF') return 'forwarding is off, /proc/sys read-only (start it with --sysctl net.ipv6.conf.all.forwarding=1)';
  return (e as Error).message;
}
