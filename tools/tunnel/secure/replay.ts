/**
 * Sliding anti-replay window over a 64-bit datagram counter, as in IPsec (RFC 6479)
 * and WireGuard: the highest counter seen plus a bitmap of the `size` counters below
 * it. A counter is accepted once; older than the window means rejected. Only
 * authenticated datagrams may be marked, so a forger cannot move the window.
 */
export class ReplayWindow {
  private readonly bits: Uint32Array;
  private readonly size: number;
  private highest = -1n;

  /** `size` in bits, a multiple of 32; default 2048. */
  constructor(size = 2048) {
    if (size % 32 !== 0 || size <= 0) throw new RangeError(`window size must be a positive multiple of 32, got ${size}`);
    this.size = size;
    this.bits = new Uint32Array(size / 32);
  }

  /** Whether `counter` would be accepted (not seen, not too old). Does not mark. */
  check(counter: bigint): 'fresh' | 'replayed' | 'too-old' {
    if (counter > this.highest) return 'fresh';
    if (this.highest - counter >= BigInt(this.size)) return 'too-old';
    const i = Number(counter % BigInt(this.size));
    return (this.bits[i >>> 5]! & (1 << (i & 31))) !== 0 ? 'replayed' : 'fresh';
  }

  /** Marks `counter` as seen; call only after check() said fresh and the datagram authenticated. */
  mark(counter: bigint): void {
    const size = BigInt(this.size);
    if (counter > this.highest) {
      const advance = counter - this.highest;
      if (advance >= size) {
        this.bits.fill(0);
      } else {
        // Clear the slots the window slides over: they now stand for new counters.
        for (let c = this.highest + 1n; c <= counter; c++) {
          const i = Number(c % size);
          this.bits[i >>> 5]! &= ~(1 << (i & 31));
        }
      }
      this.highest = counter;
    }
    const i = Number(counter % size);
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }
}
