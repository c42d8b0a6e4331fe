/**
 * What a separate-mode session may send into the server's TAP, IPv6 frames included
 * (the IPv4 side is also driven end to end in relay.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { separateModeDrop } from './admission.js';

const ADMITTED = { destination: 'fd00:5::2', server: '192.168.100.1', server6: 'fd63:7475:6e00::c0a8:6401' };

/** Ethernet + IPv6 header toward `dst` (next header `next`), then `payload`. */
function ipv6Frame(dst: string, next: number, payload: number[] = []): Buffer {
  const f = Buffer.alloc(54 + Math.max(payload.length, 8));
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f[20] = next;
  f[21] = 255;
  // dst as 16 bytes, from a fully written-out address.
  const groups = dst.includes('::') ? expand(dst) : dst.split(':');
  groups.forEach((g, i) => f.writeUInt16BE(parseInt(g, 16), 38 + i * 2));
  Buffer.from(payload).copy(f, 54);
  return f;
}

function expand(a: string): string[] {
  const [h, t] = a.split('::') as [string, string];
  const head = h === '' ? [] : h.split(':');
  const tail = t === '' ? [] : t.split(':');
  return [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
}

const HOP_BY_HOP = 0;
const TCP = 6;
const UDP = 17;
const ICMPV6 = 58;

describe('separate mode: IPv6 frames from a session', () => {
  it('pass to the admitted destination and to the server, with neighbour discovery to link-local multicast', () => {
    expect(separateModeDrop(ipv6Frame('fd00:5::2', TCP), ADMITTED)).toBeUndefined();
    expect(separateModeDrop(ipv6Frame('fd63:7475:6e00::c0a8:6401', ICMPV6, [128]), ADMITTED)).toBeUndefined();
    // Neighbour solicitation for the server's address (its solicited-node group), and an advertisement to all nodes.
    expect(separateModeDrop(ipv6Frame('ff02::1:ffa8:6401', ICMPV6, [135]), ADMITTED)).toBeUndefined();
    expect(separateModeDrop(ipv6Frame('ff02::1', ICMPV6, [136]), ADMITTED)).toBeUndefined();
    // The listener report a new address brings (MLDv2, behind a hop-by-hop header of 8 bytes).
    expect(separateModeDrop(ipv6Frame('ff02::16', HOP_BY_HOP, [ICMPV6, 0, 5, 2, 0, 0, 1, 0, 143]), ADMITTED)).toBeUndefined();
  });

  it('are dropped toward anyone else, other multicast, or before the server set IPv6 up', () => {
    expect(separateModeDrop(ipv6Frame('fd00:5::3', TCP), ADMITTED)).toBe("fd00:5::3 is not this session's destination fd00:5::2");
    expect(separateModeDrop(ipv6Frame('fd63:7475:6e00::c0a8:6465', TCP), ADMITTED)).toBe("fd63:7475:6e00::c0a8:6465 is not this session's destination fd00:5::2");
    expect(separateModeDrop(ipv6Frame('ff02::fb', UDP), ADMITTED)).toBe('IPv6 multicast other than neighbour discovery is not forwarded in separate mode');
    expect(separateModeDrop(ipv6Frame('ff02::1:ffa8:6401', TCP), ADMITTED)).toBe('IPv6 multicast other than neighbour discovery is not forwarded in separate mode');
    expect(separateModeDrop(ipv6Frame('fd00:5::2', TCP), { ...ADMITTED, server6: undefined })).toBe('IPv6 is not set up on this server (no session asked for an IPv6 --dest)');
    expect(separateModeDrop(ipv6Frame('fd00:5::2', TCP).subarray(0, 40), ADMITTED)).toBe('truncated IPv6 header');
  });
});
