/**
 * A client's session on the server. It outlives its link: when the link drops, the
 * session stays (its switch port and learned MACs too) for a grace period, so a
 * client that reconnects with the same session id resumes where it was.
 */
import { randomBytes } from 'node:crypto';
import type { SwitchPort } from './switch.js';
import type { PeerLink } from './link/index.js';
import { createStats, type TunnelStats } from './stats.js';
import { TickBatch } from './batch.js';

/** Who made a session: a resume must come from the same (PROTOCOL.md, "Resume"). */
export interface SessionOwner {
  /** The creator's IP address (plain mode binds a resume to it). */
  source: string;
  /** With --tls: the creator's certificate fingerprint (a resume must present the same certificate). */
  identityKey: string | undefined;
  /** The protocol version of the creating hello. */
  version: number;
}

/** A new session id: 16 random bytes, chosen by the client, kept across its reconnects. */
export function newSessionId(): Buffer {
  return randomBytes(16);
}

export class Session implements SwitchPort {
  link: PeerLink | undefined;
  lastSeen: number;
  detachedAt: number | undefined;
  /** Set once the client sent anything after its hello: a spoofed hello never gets here. */
  confirmed = false;
  /** Given in the v2 welcome; a plain-mode resume must present it. */
  readonly resumeToken = randomBytes(16);
  readonly stats: TunnelStats = createStats();
  /** When the link was last (re)attached, for status: "connected since". */
  attachedAt: number;
  private readonly toLink = new TickBatch((frames) => this.flush(frames));

  constructor(
    readonly id: string,
    link: PeerLink,
    readonly destination: string | undefined,
    now: number,
    readonly owner: SessionOwner,
  ) {
    this.link = link;
    this.lastSeen = now;
    this.attachedAt = now;
  }

  get attached(): boolean {
    return this.link !== undefined;
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
    if (this.link !== link) this.attachedAt = now;
    this.link = link;
    this.lastSeen = now;
    this.detachedAt = undefined;
  }

  detach(now: number): void {
    this.link = undefined;
    this.detachedAt ??= now;
  }
}
