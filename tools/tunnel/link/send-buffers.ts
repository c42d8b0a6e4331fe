/**
 * Reused send buffers for one stream connection (TCP, TLS). Each wake-up's frames are
 * encoded into one buffer and written at once; a fresh buffer per write — up to 1 MiB
 * when a TAP with offloads hands over a wake-up's frames — left the ones a busy socket
 * still queued to the garbage collector, and the C heap kept their pages. A buffer
 * comes back here only when the socket's write callback says it has the bytes (the
 * kernel, or TLS's own record buffer), so a reused buffer never overwrites bytes that
 * are still waiting to be sent.
 */

/** Smallest buffer made: a wake-up without offloads (64 frames) fits. */
const MIN_BYTES = 128 * 1024;
/** Spare buffers kept; with the link's 1 MiB queue bound a few are in flight at a time. */
const SPARES = 4;

export class SendBuffers {
  private readonly spare: Buffer[] = [];

  /** A buffer of at least `bytes`: a spare one when one is large enough. */
  take(bytes: number): Buffer {
    for (let i = this.spare.length - 1; i >= 0; i--) {
      const b = this.spare[i]!;
      if (b.length >= bytes) {
        this.spare.splice(i, 1);
        return b;
      }
    }
    // allocUnsafeSlow: memory of its own (not the shared 8 KiB pool); untouched pages
    // of a large one are never resident.
    return Buffer.allocUnsafeSlow(Math.max(bytes, MIN_BYTES));
  }

  /** Hands `buffer` back once nothing refers to its bytes any more. */
  give(buffer: Buffer): void {
    if (this.spare.length < SPARES) {
      this.spare.push(buffer);
      return;
    }
    // Full: keep the larger ones, so a run of large wake-ups stops allocating.
    let smallest = 0;
    for (let i = 1; i < this.spare.length; i++) if (this.spare[i]!.length < this.spare[smallest]!.length) smallest = i;
    if (this.spare[smallest]!.length < buffer.length) this.spare[smallest] = buffer;
  }

  /** Spare buffers held (for tests). */
  get spares(): number {
    return this.spare.length;
  }
}
