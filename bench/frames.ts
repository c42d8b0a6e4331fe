/**
 * Ethernet frames the active load generator (bench/traffic.ts) puts into its sessions:
 * IPv4/UDP packets as a client's kernel would write them to its TAP, so the server's
 * kernel forwards, masquerades and delivers them like any client's traffic, and ARP
 * replies for the clients' tunnel addresses (the server's kernel asks before it sends
 * anything back). Built by hand: a few fixed header fields, no library needed.
 */

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const IP_PROTO_UDP = 17;
const ETH_HEADER = 14;
const IPV4_HEADER = 20;
const UDP_HEADER = 8;

function macBytes(mac: string): Buffer {
  const b = Buffer.from(mac.replace(/:/g, ''), 'hex');
  if (b.length !== 6) throw new Error(`not a MAC address: ${mac}`);
  return b;
}

function ipv4Bytes(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return Buffer.from(parts);
}

/** The Internet checksum (RFC 1071) of an even-length header. */
function checksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface UdpFrameSpec {
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  /** Size of the IP packet (headers included): the tunnel MTU for full-sized frames. */
  ipBytes: number;
}

/**
 * One Ethernet frame carrying an IPv4/UDP packet of `ipBytes`, header checksum set,
 * UDP checksum 0 (none: allowed for IPv4, and NAT leaves it so), DF set (a tunnel
 * frame is never fragmented), TTL 64.
 */
export function udpFrame(s: UdpFrameSpec): Buffer {
  if (!Number.isInteger(s.ipBytes) || s.ipBytes < IPV4_HEADER + UDP_HEADER || s.ipBytes > 9000) throw new Error(`ipBytes must be 28-9000, got ${s.ipBytes}`);
  const frame = Buffer.alloc(ETH_HEADER + s.ipBytes);
  macBytes(s.dstMac).copy(frame, 0);
  macBytes(s.srcMac).copy(frame, 6);
  frame.writeUInt16BE(ETHERTYPE_IPV4, 12);
  const ip = frame.subarray(ETH_HEADER, ETH_HEADER + IPV4_HEADER);
  ip[0] = 0x45; // version 4, 5 words of header
  ip.writeUInt16BE(s.ipBytes, 2);
  ip.writeUInt16BE(0x4000, 6); // DF
  ip[8] = 64;
  ip[9] = IP_PROTO_UDP;
  ipv4Bytes(s.srcIp).copy(ip, 12);
  ipv4Bytes(s.dstIp).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  const udp = ETH_HEADER + IPV4_HEADER;
  frame.writeUInt16BE(s.srcPort, udp);
  frame.writeUInt16BE(s.dstPort, udp + 2);
  frame.writeUInt16BE(s.ipBytes - IPV4_HEADER, udp + 4);
  return frame;
}

/** The target address of an ARP request in `frame`, or undefined when it is not one. */
export function arpRequestFor(frame: Buffer): string | undefined {
  if (frame.length < ETH_HEADER + 28 || frame.readUInt16BE(12) !== ETHERTYPE_ARP) return undefined;
  if (frame.readUInt16BE(ETH_HEADER + 6) !== 1) return undefined; // not a request
  const t = ETH_HEADER + 24;
  return `${frame[t]}.${frame[t + 1]}.${frame[t + 2]}.${frame[t + 3]}`;
}

/** The reply to the ARP request `request`: `ip` is at `mac`. */
export function arpReply(request: Buffer, mac: string, ip: string): Buffer {
  const reply = Buffer.alloc(ETH_HEADER + 28);
  const asker = request.subarray(ETH_HEADER + 8, ETH_HEADER + 18); // sender MAC and IP
  asker.copy(reply, 0, 0, 6);
  macBytes(mac).copy(reply, 6);
  reply.writeUInt16BE(ETHERTYPE_ARP, 12);
  request.copy(reply, ETH_HEADER, ETH_HEADER, ETH_HEADER + 6); // hardware and protocol types and sizes
  reply.writeUInt16BE(2, ETH_HEADER + 6);
  macBytes(mac).copy(reply, ETH_HEADER + 8);
  ipv4Bytes(ip).copy(reply, ETH_HEADER + 14);
  asker.copy(reply, ETH_HEADER + 18);
  return reply;
}
