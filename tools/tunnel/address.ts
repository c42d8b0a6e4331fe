import { isIPv4 } from 'node:net';
import { CtunError, ExitCode, SERVER_CIDR } from '../common/index.js';

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
