/**
 * A client's session on the server. It outlives its link: when the link drops, the
 * session stays (its switch port and learned MACs too) for a grace period, so a
 * client that reconnects with the same session id resumes where it was.
 */
import type { SwitchPort } from './switch.js';
import type { PeerLink } from './transport.js';
import { createStats, type TunnelStats } from './stats.js';
import { TickBatch } from './batch.js';

export class Session implements SwitchPort {
  link: PeerLink | undefined;
  lastSeen: number;
  detachedAt: number | undefined;
  readonly stats: TunnelStats = createStats();
  private readonly toLink = new TickBatch((frames) => this.flush(frames));

  constructor(
    readonly id: string,
    link: PeerLink,
    readonly destination: string | undefined,
    now: number,
  ) {
    this.link = link;
    this.lastSeen = now;
  }

  /** Queues a frame toward the client; sent as one batch at the end of this tick. */
  deliver(frame: Buffer): boolean {
    if (this.link === undefined) {
      this.stats.dropsQueue++;
      return false;
    }
    this.toLink.push(frame);
    return true;
  }

  private flush(frames: Buffer[]): void {
    if (this.link === undefined) {
      this.stats.dropsQueue += frames.length;
      return;
    }
    const sent = this.link.sendFrames(frames);
    this.stats.dropsQueue += frames.length - sent;
    this.stats.framesOut += sent;
    for (let i = 0; i < sent; i++) this.stats.bytesOut += frames[i]!.length;
  }

  attach(link: PeerLink, now: number): void {
    this.link = link;
    this.lastSeen = now;
    this.detachedAt = undefined;
  }

  detach(now: number): void {
    this.link = undefined;
    this.detachedAt ??= now;
  }
}
