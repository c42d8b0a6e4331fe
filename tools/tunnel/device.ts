import type { FastPathTap } from './fast-path.js';

/**
 * A TAP device as the tunnel sees it: frames in batches, nothing else. The real one
 * (tap.ts) sits on the native addon; the in-memory pair below is its twin for unit
 * tests, as wireguard-go's tun/tuntest does.
 */
export interface FrameDevice {
  readonly name: string;
  /** Called with every batch of frames read from the device. Buffers are the caller's to keep. */
  onFrames(handler: (frames: Buffer[]) => void): void;
  /** Writes a batch; returns how many were accepted (the rest are dropped, as a full NIC queue does). */
  writeFrames(frames: Buffer[]): number;
  close(): void;
  /** The real TAP: its end of the native data fast path (fast-path.ts); twins have none. */
  readonly fastPath?: FastPathTap;
}

/** Two connected in-memory devices: frames written to one are read from the other. */
export function createMemoryDevicePair(names: [string, string] = ['mem0', 'mem1']): [MemoryDevice, MemoryDevice] {
  const a = new MemoryDevice(names[0]);
  const b = new MemoryDevice(names[1]);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export class MemoryDevice implements FrameDevice {
  peer: MemoryDevice | undefined;
  closed = false;
  /** Frames this device would have put on the wire, when it has no peer. */
  readonly written: Buffer[] = [];
  private handler: ((frames: Buffer[]) => void) | undefined;

  constructor(readonly name: string) {}

  onFrames(handler: (frames: Buffer[]) => void): void {
    this.handler = handler;
  }

  /** Injects frames as if the kernel had sent them out of this TAP. */
  inject(frames: Buffer[]): void {
    if (!this.closed) this.handler?.(frames.map((f) => Buffer.from(f)));
  }

  writeFrames(frames: Buffer[]): number {
    if (this.closed) return 0;
    if (this.peer !== undefined) this.peer.inject(frames);
    else this.written.push(...frames.map((f) => Buffer.from(f)));
    return frames.length;
  }

  close(): void {
    this.closed = true;
  }
}
