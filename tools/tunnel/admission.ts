/**
 * What a separate-mode session may send into the server's TAP: the server sees every
 * frame of every session, so this is where "only toward the destination it was
 * admitted for" is enforced for each session (the kernel's FORWARD rules admit only
 * admitted destinations too, but cannot tell one client from another).
 */

import { bytesToIpv6 } from './protocol.js';

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV6 = 0x86dd;
/** Ethernet header (14) + IPv6 header (40): where an ICMPv6 message starts. */
const IPV6_PAYLOAD_AT = 54;
const NEXT_HEADER_ICMPV6 = 58;
const NEXT_HEADER_HOP_BY_HOP = 0;
/**
 * What a host's kernel says on a link by itself: multicast listener queries and
 * reports (130-132, 143; they follow a hop-by-hop header) and neighbour discovery
 * (router and neighbour solicitation and advertisement, 133-136).
 */
const LINK_ICMPV6_TYPES = new Set([130, 131, 132, 133, 134, 135, 136, 143]);

function ipv4At(frame: Buffer, offset: number): string {
  return `${frame[offset]}.${frame[offset + 1]}.${frame[offset + 2]}.${frame[offset + 3]}`;
}

export interface SeparateAdmission {
  /** The destination the session was admitted for (`--dest`); undefined: none. */
  destination: string | undefined;
  /** The server's tunnel address: the next hop, always reachable (ARP, ping). */
  server: string;
  /** The server's IPv6 tunnel address, once an IPv6 --dest set IPv6 up; undefined before. */
  server6?: string | undefined;
}

/**
 * Why a frame from a separate-mode session is dropped, or undefined when it may pass:
 * ARP (to find the next hop) and IPv4 to the admitted destination or to the server's
 * tunnel address; the same in IPv6 once the server has IPv6 up, with neighbour
 * discovery to link-local multicast in place of ARP. Everything else (other hosts,
 * other clients, VLAN tags) is dropped.
 */
export function separateModeDrop(frame: Buffer, admitted: SeparateAdmission): string | undefined {
  if (frame.length < 14) return 'runt frame';
  const type = frame.readUInt16BE(12);
  if (type === ETHERTYPE_ARP) return undefined;
  if (type === ETHERTYPE_IPV6) return ipv6Drop(frame, admitted);
  if (type !== ETHERTYPE_IPV4) return `ethertype 0x${type.toString(16).padStart(4, '0')} is not forwarded in separate mode`;
  if (frame.length < 34) return 'truncated IPv4 header';
  const dst = ipv4At(frame, 30);
  if (dst === admitted.server || dst === admitted.destination) return undefined;
  return admitted.destination === undefined ? `${dst} is not the server and this session has no --dest` : `${dst} is not this session's destination ${admitted.destination}`;
}

function ipv6Drop(frame: Buffer, admitted: SeparateAdmission): string | undefined {
  if (admitted.server6 === undefined) return 'IPv6 is not set up on this server (no session asked for an IPv6 --dest)';
  if (frame.length < IPV6_PAYLOAD_AT) return 'truncated IPv6 header';
  // Neighbour discovery finds the next hop, as ARP does in IPv4; it and the listener reports an
  // address brings go to ff02::/16 (link-local multicast), which no router forwards.
  if (frame[38] === 0xff && frame[39] === 0x02) {
    const type = linkIcmpv6Type(frame);
    if (type !== undefined && LINK_ICMPV6_TYPES.has(type)) return undefined;
    return 'IPv6 multicast other than neighbour discovery is not forwarded in separate mode';
  }
  const dst = bytesToIpv6(frame.subarray(38, IPV6_PAYLOAD_AT));
  if (dst === admitted.server6 || dst === admitted.destination) return undefined;
  return admitted.destination === undefined ? `${dst} is not the server and this session has no --dest` : `${dst} is not this session's destination ${admitted.destination}`;
}

/** The ICMPv6 type of an IPv6 frame (after at most one hop-by-hop header), or undefined when it is not ICMPv6. */
function linkIcmpv6Type(frame: Buffer): number | undefined {
  let next = frame[20];
  let at = IPV6_PAYLOAD_AT;
  if (next === NEXT_HEADER_HOP_BY_HOP && frame.length >= at + 8) {
    next = frame[at];
    at += (frame[at + 1]! + 1) * 8;
  }
  return next === NEXT_HEADER_ICMPV6 && frame.length > at ? frame[at] : undefined;
}
