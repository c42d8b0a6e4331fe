/**
 * Capped exponential back-off with full jitter: the n-th retry waits a random time
 * in [base·2ⁿ/2, base·2ⁿ], never more than `maxMs`, so many clients that lost the
 * same server do not come back in lock-step.
 */
export interface BackoffOptions {
  /** First delay; default 200 ms. */
  initialMs?: number;
  /** Cap; default 5000 ms. */
  maxMs?: number;
  /** Random source in [0, 1), for tests. */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 200;
    this.maxMs = options.maxMs ?? 5000;
    this.random = options.random ?? Math.random;
  }

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
