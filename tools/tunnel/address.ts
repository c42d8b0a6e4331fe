import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { CtunError, ExitCode, SERVER_CIDR, unbracket } from '../common/index.js';

export interface Cidr {
  address: string;
  prefix: number;
  /** `address/prefix` */
  text: string;
  /** The network address, e.g. 192.168.100.0 for 192.168.100.1/24. */
  network: string;
}

function toInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

function fromInt(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** Parses `A.B.C.D/P` (or a bare address with `defaultPrefix`); a clear usage error otherwise. */
export function parseCidr(text: string, defaultPrefix = 24, what = 'address'): Cidr {
  const [address, prefixText] = text.split('/');
  const prefix = prefixText === undefined ? defaultPrefix : Number(prefixText);
  if (address === undefined || !isIPv4(address) || !Number.isInteger(prefix) || prefix < 1 || prefix > 32) {
    throw new CtunError('BAD_ADDRESS', `${what} "${text}" is not an IPv4 address with an optional /prefix (1-32)`, {
      hint: `write it like ${SERVER_CIDR}`,
      exitCode: ExitCode.Usage,
    });
  }
  const mask = prefix === 32 ? 0xffffffff : (~0 << (32 - prefix)) >>> 0;
  return { address, prefix, text: `${address}/${prefix}`, network: fromInt(toInt(address) & mask) };
}

export function inSubnet(address: string, cidr: Cidr): boolean {
  const mask = cidr.prefix === 32 ? 0xffffffff : (~0 << (32 - cidr.prefix)) >>> 0;
  return ((toInt(address) & mask) >>> 0) === ((toInt(cidr.network) & mask) >>> 0);
}

export function requireIPv4(text: string, what: string): string {
  if (!isIPv4(text)) {
    throw new CtunError('BAD_ADDRESS', `${what} "${text}" is not an IPv4 address`, { hint: 'write it like 172.17.0.2', exitCode: ExitCode.Usage });
  }
  return text;
}

/** An address of either family (a bracketed IPv6 one unbracketed), e.g. `--dest`; a clear usage error otherwise. */
export function requireIp(text: string, what: string): string {
  const address = unbracket(text);
  if (!isIPv4(address) && !isIPv6(address)) {
    throw new CtunError('BAD_ADDRESS', `${what} "${text}" is not an IPv4 or IPv6 address`, { hint: 'write it like 172.17.0.2 or fd00:17::2', exitCode: ExitCode.Usage });
  }
  return address;
}

/** A range of destinations (`--allow-dest`) of either family. */
export interface DestRange {
  /** `address/prefix` as given (prefix filled in). */
  text: string;
  contains(address: string): boolean;
}

/** Parses an IPv4 or IPv6 CIDR (a bare address is one host); a clear usage error otherwise. */
export function parseDestRange(text: string, what: string): DestRange {
  if (!text.includes(':')) {
    const cidr = parseCidr(text, 32, what);
    return { text: cidr.text, contains: (a) => isIPv4(a) && inSubnet(a, cidr) };
  }
  const [address, prefixText] = text.split('/');
  const prefix = prefixText === undefined ? 128 : Number(prefixText);
  if (address === undefined || !isIPv6(address) || !Number.isInteger(prefix) || prefix < 1 || prefix > 128) {
    throw new CtunError('BAD_ADDRESS', `${what} "${text}" is not an IPv6 address with an optional /prefix (1-128)`, { hint: 'write it like fd00:17::/64', exitCode: ExitCode.Usage });
  }
  const list = new BlockList();
  list.addSubnet(address, prefix, 'ipv6');
  return { text: `${address}/${prefix}`, contains: (a) => isIPv6(a) && list.check(a, 'ipv6') };
}

/**
 * The tunnel's IPv6 subnet, for IPv6 `--dest`: every IPv4 tunnel address a.b.c.d is
 * also fd63:7475:6e00::a.b.c.d (a unique-local prefix whose global ID spells "ctun"),
 * its prefix 96 + the IPv4 one. Derived, not configured: the server's --address and
 * the client's TAP address (unique on the segment already) fix both ends, so neither
 * a flag nor the protocol has to carry it.
 */
export const TUNNEL_IPV6_PREFIX = 'fd63:7475:6e00::';
export const TUNNEL_IPV6_PREFIX_LENGTH = 96;

/** The tunnel IPv6 address that stands for an IPv4 tunnel address (see TUNNEL_IPV6_PREFIX). */
export function tunnelIpv6(ipv4: string): string {
  const n = toInt(ipv4);
  return `${TUNNEL_IPV6_PREFIX}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
}

/** The tunnel subnet's IPv6 twin: `fd63:7475:6e00::c0a8:6400/120` for 192.168.100.0/24. */
export function tunnelIpv6Subnet(cidr: Cidr): { address: string; network: string; prefix: number; text: string } {
  const prefix = TUNNEL_IPV6_PREFIX_LENGTH + cidr.prefix;
  const network = tunnelIpv6(cidr.network);
  return { address: tunnelIpv6(cidr.address), network, prefix, text: `${network}/${prefix}` };
}

/** Whether an IPv6 address lies in the tunnel's IPv6 prefix (it can never be a --dest). */
export function inTunnelIpv6(address: string): boolean {
  const list = new BlockList();
  list.addSubnet(TUNNEL_IPV6_PREFIX, TUNNEL_IPV6_PREFIX_LENGTH, 'ipv6');
  return list.check(address, 'ipv6');
}
