/**
 * The TAP offloads' native code (native/offload.cc), the code the TAP runs: a TCP
 * super-segment read from a TAP is cut into the segments the kernel's own TSO would
 * have sent (headers, flags and checksums checked here by an independent checksum),
 * a frame with a partial checksum gets it completed, and a batch of one flow's
 * segments is coalesced into one super-segment that cuts back into the same bytes.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadAddon } from './native.js';

const { offload } = loadAddon();
const VNET = offload.vnetHeaderSize;
const NEEDS_CSUM = 1;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const CWR = 0x80;

// The Internet checksum, written here independently of the addon's.
function sum(b: Buffer, acc = 0): number {
  for (let i = 0; i + 1 < b.length; i += 2) acc += b.readUInt16BE(i);
  if (b.length % 2 === 1) acc += b[b.length - 1]! << 8;
  return acc;
}
function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

interface Parsed { v6: boolean; ip: Buffer; tcp: Buffer; payload: Buffer; l4: Buffer }

function parse(frame: Buffer): Parsed {
  const v6 = frame.readUInt16BE(12) === 0x86dd;
  const ipLen = v6 ? 40 : (frame[14]! & 0x0f) * 4;
  const ip = frame.subarray(14, 14 + ipLen);
  const l4 = frame.subarray(14 + ipLen);
  const tcpLen = (l4[12]! >> 4) * 4;
  return { v6, ip, tcp: l4.subarray(0, tcpLen), payload: l4.subarray(tcpLen), l4 };
}

function pseudo(p: Parsed, proto: number, length: number): number {
  const addrs = p.v6 ? p.ip.subarray(8, 40) : p.ip.subarray(12, 20);
  return sum(addrs) + proto + length;
}

/** True when the frame's IPv4 header checksum and its TCP or UDP checksum are right. */
function checksumsValid(frame: Buffer, proto = 6): boolean {
  const p = parse(frame);
  if (!p.v6 && fold(sum(p.ip)) !== 0xffff) return false;
  return fold(sum(p.l4, pseudo(p, proto, p.l4.length))) === 0xffff;
}

const MAC = Buffer.from('02000000000a02000000000b', 'hex');

/** A TCP frame as a sender's stack builds it: 32-byte TCP header (timestamps), checksum left partial (the pseudo-header's sum), as the kernel hands it to a TAP with offloads. */
function tcpFrame(v6: boolean, payload: Buffer, seq: number, flags: number, partial = true): Buffer {
  const tcp = Buffer.alloc(32);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(0x11223344, 8);
  tcp[12] = 8 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(502, 14);
  Buffer.from('0101080a0000aaaa0000bbbb', 'hex').copy(tcp, 20);
  let ip: Buffer;
  if (v6) {
    ip = Buffer.alloc(40);
    ip.writeUInt32BE(0x60012345, 0);
    ip.writeUInt16BE(32 + payload.length, 4);
    ip[6] = 6;
    ip[7] = 64;
    Buffer.from('fd000000000000000000000000000001', 'hex').copy(ip, 8);
    Buffer.from('fd000000000000000000000000000002', 'hex').copy(ip, 24);
  } else {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 32 + payload.length, 2);
    ip.writeUInt16BE(0x1234, 4);
    ip.writeUInt16BE(0x4000, 6); // DF
    ip[8] = 64;
    ip[9] = 6;
    Buffer.from([192, 168, 100, 1, 192, 168, 100, 2]).copy(ip, 12);
    ip.writeUInt16BE((~fold(sum(ip))) & 0xffff, 10);
  }
  const frame = Buffer.concat([MAC, Buffer.from(v6 ? [0x86, 0xdd] : [0x08, 0x00]), ip, tcp, payload]);
  const p = parse(frame);
  const ps = fold(pseudo(p, 6, p.l4.length));
  if (partial) p.tcp.writeUInt16BE(ps, 16);
  else p.tcp.writeUInt16BE((~fold(sum(p.l4, pseudo(p, 6, p.l4.length)))) & 0xffff, 16);
  return frame;
}

function vnet(flags: number, gsoType: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): Buffer {
  const h = Buffer.alloc(VNET);
  h[0] = flags;
  h[1] = gsoType;
  h.writeUInt16LE(hdrLen, 2);
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(csumStart, 6);
  h.writeUInt16LE(csumOffset, 8);
  return h;
}

const MSS = 1448;

for (const v6 of [false, true]) {
  const family = v6 ? 'TCPv6' : 'TCPv4';
  const l4Start = 14 + (v6 ? 40 : 20);
  const superFrame = (payload: Buffer, flags: number): Buffer =>
    Buffer.concat([vnet(NEEDS_CSUM, v6 ? GSO_TCPV6 : GSO_TCPV4, l4Start + 32, MSS, l4Start, 16), tcpFrame(v6, payload, 0xfffff000, flags)]);

  describe(`a GSO ${family} super-segment read from the TAP`, () => {
    const payload = randomBytes(10 * MSS + 500);
    const segments = offload.segment(superFrame(payload, ACK | PSH | CWR | FIN));

    it('is cut into gso_size segments carrying the payload in order', () => {
      expect(segments).toHaveLength(11);
      expect(segments.map((s) => parse(s).payload.length)).toEqual([...Array(10).fill(MSS), 500]);
      expect(Buffer.concat(segments.map((s) => parse(s).payload)).equals(payload)).toBe(true);
    });

    it('gives every segment its own lengths, sequence number, IPv4 ID and checksums', () => {
      segments.forEach((s, i) => {
        const p = parse(s);
        expect(s.subarray(0, 14).equals(superFrame(payload, 0).subarray(VNET, VNET + 14))).toBe(true);
        if (v6) expect(p.ip.readUInt16BE(4)).toBe(p.l4.length);
        else {
          expect(p.ip.readUInt16BE(2)).toBe(s.length - 14);
          expect(p.ip.readUInt16BE(4)).toBe(0x1234 + i);
        }
        expect(p.tcp.readUInt32BE(4)).toBe((0xfffff000 + i * MSS) >>> 0); // wraps past 2^32
        expect(checksumsValid(s)).toBe(true);
      });
    });

    it('puts CWR on the first segment only and FIN and PSH on the last only', () => {
      const flags = segments.map((s) => parse(s).tcp[13]!);
      expect(flags[0]).toBe(ACK | CWR);
      expect(flags.slice(1, -1).every((f) => f === ACK)).toBe(true);
      expect(flags.at(-1)).toBe(ACK | PSH | FIN);
    });

    it('coalesces back into one super-segment that cuts into the same bytes', () => {
      const plain = offload.segment(superFrame(randomBytes(20 * MSS + 7), ACK | PSH));
      const writes = offload.coalesce(plain);
      expect(writes.map((w) => w.frames)).toEqual([plain.length]);
      const h = writes[0]!.packet;
      expect([h[0], h[1], h.readUInt16LE(4), h.readUInt16LE(6), h.readUInt16LE(8)]).toEqual([NEEDS_CSUM, v6 ? GSO_TCPV6 : GSO_TCPV4, MSS, l4Start, 16]);
      const again = offload.segment(writes[0]!.packet);
      expect(again.length).toBe(plain.length);
      again.forEach((s, i) => expect(s.equals(plain[i]!)).toBe(true));
    });
  });
}

describe('a frame read with only a partial checksum', () => {
  it('TCP: gets its checksum completed', () => {
    const frame = tcpFrame(false, randomBytes(300), 1, ACK | PSH);
    expect(checksumsValid(frame)).toBe(false);
    const [out] = offload.segment(Buffer.concat([vnet(NEEDS_CSUM, 0, 0, 0, 34, 16), frame]));
    expect(out!.length).toBe(frame.length);
    expect(checksumsValid(out!)).toBe(true);
  });

  it('UDP: gets its checksum completed', () => {
    const payload = randomBytes(999);
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(5353, 0);
    udp.writeUInt16BE(9999, 2);
    udp.writeUInt16BE(8 + payload.length, 4);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 8 + payload.length, 2);
    ip[8] = 64;
    ip[9] = 17;
    Buffer.from([192, 168, 100, 1, 192, 168, 100, 2]).copy(ip, 12);
    ip.writeUInt16BE((~fold(sum(ip))) & 0xffff, 10);
    const frame = Buffer.concat([MAC, Buffer.from([8, 0]), ip, udp, payload]);
    frame.writeUInt16BE(fold(pseudo(parse(frame), 17, 8 + payload.length)), 34 + 6);
    const [out] = offload.segment(Buffer.concat([vnet(NEEDS_CSUM, 0, 0, 0, 34, 6), frame]));
    expect(checksumsValid(out!, 17)).toBe(true);
  });

  it('an ordinary frame (empty header) passes unchanged; a truncated one is dropped', () => {
    const arp = Buffer.concat([Buffer.alloc(12, 0xff), Buffer.from([8, 6]), randomBytes(28)]);
    expect(offload.segment(Buffer.concat([vnet(0, 0, 0, 0, 0, 0), arp]))).toEqual([arp]);
    expect(offload.segment(Buffer.alloc(VNET + 6))).toEqual([]);
  });
});

describe('coalescing a batch toward the TAP', () => {
  const seg = (seq: number, flags = ACK, size = MSS, v6 = false): Buffer => tcpFrame(v6, randomBytes(size), seq, flags, false);

  it('merges only consecutive full segments of one flow, up to a PSH or a short one', () => {
    const batch = [seg(0), seg(MSS), seg(2 * MSS, ACK | PSH), seg(3 * MSS), seg(4 * MSS, ACK, 100), seg(4 * MSS + 100)];
    expect(offload.coalesce(batch).map((w) => w.frames)).toEqual([3, 2, 1]);
  });

  it('keeps apart a sequence gap, another flow, a SYN/FIN and a segment with a wrong checksum', () => {
    const other = seg(MSS);
    other.writeUInt16BE(40001, 14 + 20); // another source port
    const bad = seg(MSS);
    bad[bad.length - 1]! ^= 0xff;
    const fin = seg(MSS, ACK | FIN);
    for (const second of [seg(MSS + 1), other, bad, fin]) {
      expect(offload.coalesce([seg(0), second]).map((w) => w.frames)).toEqual([1, 1]);
    }
  });

  it('writes every frame it does not merge behind an empty header, unchanged', () => {
    const arp = Buffer.concat([Buffer.alloc(12, 0xff), Buffer.from([8, 6]), randomBytes(28)]);
    const lone = seg(0);
    const writes = offload.coalesce([arp, lone]);
    expect(writes.map((w) => w.packet)).toEqual([Buffer.concat([Buffer.alloc(VNET), arp]), Buffer.concat([Buffer.alloc(VNET), lone])]);
  });

  it('merges interleaved flows each into its own run, each flow in its order', () => {
    const flowB = (seq: number): Buffer => {
      const f = seg(seq);
      f.writeUInt16BE(40001, 14 + 20); // another source port: another flow
      f.writeUInt16BE(0, 14 + 20 + 16);
      f.writeUInt16BE((~fold(sum(f.subarray(34), pseudo(parse(f), 6, f.length - 34)))) & 0xffff, 14 + 20 + 16);
      return f;
    };
    const a = [seg(0), seg(MSS), seg(2 * MSS)];
    const b = [flowB(5000), flowB(5000 + MSS), flowB(5000 + 2 * MSS)];
    const writes = offload.coalesce([a[0]!, b[0]!, a[1]!, b[1]!, a[2]!, b[2]!]);
    expect(writes.map((w) => w.frames)).toEqual([3, 3]);
    // The same segments back (the IPv4 IDs aside: cutting numbers them afresh).
    const key = (f: Buffer): string => `${parse(f).tcp.subarray(0, 8).toString('hex')} ${parse(f).payload.toString('hex')}`;
    expect(offload.segment(writes[0]!.packet).map(key)).toEqual(a.map(key));
    expect(offload.segment(writes[1]!.packet).map(key)).toEqual(b.map(key));
  });

  it('lets no segment pass a frame of its own flow that could not join (a pure ACK between two)', () => {
    const ack = tcpFrame(false, Buffer.alloc(0), MSS, ACK, false);
    expect(offload.coalesce([seg(0), ack, seg(MSS)]).map((w) => w.frames)).toEqual([1, 1, 1]);
  });

  it('never makes an IP packet larger than 64 KiB', () => {
    const batch = Array.from({ length: 60 }, (_, i) => seg(i * MSS));
    const writes = offload.coalesce(batch);
    expect(writes.reduce((n, w) => n + w.frames, 0)).toBe(60);
    for (const w of writes) expect(w.packet.length - VNET - 14).toBeLessThanOrEqual(65535);
    expect(writes[0]!.frames).toBe(Math.floor((65535 - 52) / MSS));
  });
});
