/**
 * Bounds TCP connections that have not yet said hello (or, for a UDP session's TLS
 * control connection, not yet sent a sealed datagram): each must get there within
 * `timeoutMs`, and at most `max` wait at once. When full, the oldest waiting one is
 * closed, not the newcomer: a flood of half-open connections then cannot lock a good
 * client out, it only shortens every waiter's patience.
 */
export interface PendingGateOptions {
  /** Default 5000 ms. */
  timeoutMs?: number;
  /** Default 128. */
  max?: number;
  /** Told when a waiter is closed, with why; for counters and (rate-limited) logs. */
  onDrop?: (key: string, reason: 'timeout' | 'evicted') => void;
}

export class PendingGate {
  private readonly waiting = new Map<string, { close: () => void; timer: NodeJS.Timeout }>();
  readonly timeoutMs: number;
  readonly max: number;
  dropped = 0;

  constructor(private readonly o: PendingGateOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.max = o.max ?? 128;
  }

  /** A new connection: `close` destroys it. */
  add(key: string, close: () => void): void {
    this.done(key);
    while (this.waiting.size >= this.max) {
      const [oldest] = this.waiting.keys();
      this.drop(oldest!, 'evicted');
    }
    const timer = setTimeout(() => this.drop(key, 'timeout'), this.timeoutMs);
    timer.unref();
    this.waiting.set(key, { close, timer });
  }

  /** The connection said hello (or closed): it no longer counts. */
  done(key: string): void {
    const w = this.waiting.get(key);
    if (w === undefined) return;
    clearTimeout(w.timer);
    this.waiting.delete(key);
  }

  has(key: string): boolean {
    return this.waiting.has(key);
  }

  get size(): number {
    return this.waiting.size;
  }

  /** Closes every waiter (server stop). */
  clear(): void {
    for (const [key, w] of [...this.waiting]) {
      clearTimeout(w.timer);
      this.waiting.delete(key);
      w.close();
    }
  }

  private drop(key: string, reason: 'timeout' | 'evicted'): void {
    const w = this.waiting.get(key);
    if (w === undefined) return;
    clearTimeout(w.timer);
    this.waiting.delete(key);
    this.dropped++;
    this.o.onDrop?.(key, reason);
    w.close();
  }
}
