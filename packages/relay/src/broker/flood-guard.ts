// A token bucket per client: a device may publish `ratePerSec` messages a second on average,
// with bursts up to `burst`. A device past it is disconnected: aedes overflows its stack under
// message floods (moscajs/aedes#193, mcollina/mqemitter#204), so a flood must never reach it.

export interface FloodLimits {
  ratePerSec: number;
  burst: number;
}

export const DEFAULT_FLOOD_LIMITS: FloodLimits = { ratePerSec: 20, burst: 200 };

interface Bucket {
  tokens: number;
  at: number;
}

export class FloodGuard {
  readonly #limits: FloodLimits;
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(limits: FloodLimits = DEFAULT_FLOOD_LIMITS, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /** Takes one token for the client; false when it has none left. */
  allow(clientId: string): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(clientId);
    if (!bucket) {
      bucket = { tokens: this.#limits.burst, at: now };
      this.#buckets.set(clientId, bucket);
    }
    bucket.tokens = Math.min(this.#limits.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#limits.ratePerSec);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  forget(clientId: string): void {
    this.#buckets.delete(clientId);
  }
}
