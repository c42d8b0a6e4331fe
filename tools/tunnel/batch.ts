/**
 * Collects the frames of one turn of the event loop and hands them on in one call
 * at its end (a microtask), so a device or socket is written once per batch (one
 * writev/sendmmsg), not once per frame. The readers' frame views stay valid until
 * then: microtasks run before the next read refills their buffers.
 */
export class TickBatch {
  private frames: Buffer[] = [];
  private scheduled = false;

  constructor(private readonly flushTo: (frames: Buffer[]) => void) {}

  push(frame: Buffer): void {
    this.frames.push(frame);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const frames = this.frames;
    this.frames = [];
    this.flushTo(frames);
  };
}
