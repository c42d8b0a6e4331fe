/**
 * Bounds for what strangers can make the server do: token buckets per source (in a
 * map of bounded size, so a flood from many addresses cannot grow memory), and a log
 * limiter so that a flood of refusals becomes a few lines and a count, not a flood
 * of lines.
 */

/** A token bucket: `burst` at once, refilled at `perSecond`. */
export class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface SourceLimiterOptions {
  /** Sustained rate per source; default 5 a second. */
  perSecond?: number;
  /** Burst per source; default 10. */
  burst?: number;
  /** Sources tracked at once; beyond, the oldest is forgotten. Default 4096. */
  maxSources?: number;
  /** Rate over all sources together; default 500 a second (burst the same). */
  globalPerSecond?: number;
}

/**
 * Per-source and global token buckets. A forgotten source starts again with a full
 * burst, so the bound on what a flood from many sources gets is the global bucket.
 */
export class SourceLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly global: TokenBucket;
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly maxSources: number;
  /** Requests refused, for statistics. */
  limited = 0;

  constructor(options: SourceLimiterOptions = {}, now = Date.now()) {
    this.perSecond = options.perSecond ?? 5;
    this.burst = options.burst ?? 10;
    this.maxSources = options.maxSources ?? 4096;
    const g = options.globalPerSecond ?? 500;
    this.global = new TokenBucket(g, g, now);
  }

  /** Whether `source` may have one more (reply, lookup, ...) now. */
  allow(source: string, now: number): boolean {
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
      bucket = new TokenBucket(this.perSecond, this.burst, now);
      this.buckets.set(source, bucket);
    }
    if (bucket.take(now) && this.global.take(now)) return true;
    this.limited++;
    return false;
  }

  get size(): number {
    return this.buckets.size;
  }
}

/**
 * Lets `burst` lines of one event through, then one a `intervalMs`; what it held back
 * is reported with the next line that passes (`suppressed=N`).
 */
export class LogLimiter {
  private readonly buckets = new Map<string, { bucket: TokenBucket; suppressed: number }>();
  constructor(
    private readonly burst = 20,
    private readonly intervalMs = 1000,
  ) {}

  /** Undefined when the line must be dropped; else the fields to add (the count held back, if any). */
  pass(event: string, now: number): { suppressed?: number } | undefined {
    let b = this.buckets.get(event);
    if (b === undefined) {
      b = { bucket: new TokenBucket(1000 / this.intervalMs, this.burst, now), suppressed: 0 };
      this.buckets.set(event, b);
    }
    if (!b.bucket.take(now)) {
      b.suppressed++;
      return undefined;
    }
    const suppressed = b.suppressed;
    b.suppressed = 0;
    return suppressed > 0 ? { suppressed } : {};
  }
}

/** A small cache with expiry and a size bound (oldest out first). */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; at: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}

  get(key: string, now: number): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (now - e.at > this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V, now: number): void {
    this.entries.delete(key);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, at: now });
  }

  get size(): number {
    return this.entries.size;
  }
}
