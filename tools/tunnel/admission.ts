/**
 * What a separate-mode session may send into the server's TAP: the server sees every
 * frame of every session, so this is where "only toward the destination it was
 * admitted for" is enforced for each session (the kernel's FORWARD rules admit only
 * admitted destinations too, but cannot tell one client from another).
 */

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;

function ipv4At(frame: Buffer, offset: number): string {
  return `${frame[offset]}.${frame[offset + 1]}.${frame[offset + 2]}.${frame[offset + 3]}`;
}

export interface SeparateAdmission {
  /** The destination the session was admitted for (`--dest`); undefined: none. */
  destination: string | undefined;
  /** The server's tunnel address: the next hop, always reachable (ARP, ping). */
  server: string;
}

/**
 * Why a frame from a separate-mode session is dropped, or undefined when it may pass:
 * ARP (to find the next hop) and IPv4 to the admitted destination or to the server's
 * tunnel address. Everything else (other hosts, other clients, IPv6, VLAN tags) is
 * dropped.
 */
export function separateModeDrop(frame: Buffer, admitted: SeparateAdmission): string | undefined {
  if (frame.length < 14) return 'runt frame';
  const type = frame.readUInt16BE(12);
  if (type === ETHERTYPE_ARP) return undefined;
  if (type !== ETHERTYPE_IPV4) return `ethertype 0x${type.toString(16).padStart(4, '0')} is not forwarded in separate mode`;
  if (frame.length < 34) return 'truncated IPv4 header';
  const dst = ipv4At(frame, 30);
  if (dst === admitted.server || dst === admitted.destination) return undefined;
  return admitted.destination === undefined ? `${dst} is not the server and this session has no --dest` : `${dst} is not this session's destination ${admitted.destination}`;
}
