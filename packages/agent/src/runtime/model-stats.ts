// Request count, error count and a latency histogram per model. Recording is a few integer
// operations and no allocation, so it stays off the cost of the inference path.

import type { ModelHealth } from '@outpost/shared';

/** Bucket upper bounds in ms, roughly logarithmic from 50 µs to 10 s. */
export const LATENCY_BUCKETS_MS = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 25, 50, 75, 100, 250, 500, 1000, 2500, 5000, 10000];

/** How a request ended: answered, failed on the device's side, or refused before the model ran. */
export type InferenceOutcome = 'ok' | 'error' | 'rejected';

export class ModelStats {
  requests = 0;
  errors = 0;
  rejected = 0;
  /** The latest failure on the device's side, for the heartbeat. */
  lastError: { at: number; message: string } | undefined;
  /** Interval histogram, reset by each heartbeat. */
  readonly #interval = new Uint32Array(LATENCY_BUCKETS_MS.length + 1);
  #intervalCount = 0;

  record(ms: number, outcome: InferenceOutcome, error?: unknown): void {
    if (outcome === 'error') this.lastError = { at: Date.now(), message: String((error as Error | undefined)?.message ?? error ?? 'unknown error').slice(0, 500) };
    // A refused request never reached the model: it neither fails it nor dilutes its error rate.
    if (outcome === 'rejected') {
      this.rejected++;
      return;
    }
    this.requests++;
    if (outcome === 'error') this.errors++;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    this.#interval[i]!++;
    this.#intervalCount++;
  }

  #quantile(q: number): number | null {
    if (this.#intervalCount === 0) return null;
    const rank = Math.ceil(q * this.#intervalCount);
    let seen = 0;
    for (let i = 0; i < this.#interval.length; i++) {
      seen += this.#interval[i]!;
      if (seen >= rank) return LATENCY_BUCKETS_MS[Math.min(i, LATENCY_BUCKETS_MS.length - 1)]!;
    }
    return null;
  }

  /** Totals since start, and latency quantiles (bucket upper bounds) since the last snapshot. */
  snapshot(): ModelHealth {
    const health = { requests: this.requests, errors: this.errors, rejected: this.rejected, p50Ms: this.#quantile(0.5), p99Ms: this.#quantile(0.99), ...(this.lastError ? { lastError: this.lastError } : {}) };
    this.#interval.fill(0);
    this.#intervalCount = 0;
    return health;
  }
}
