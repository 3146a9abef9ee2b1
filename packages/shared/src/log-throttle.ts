// One log line per key per interval: a device that repeats a bad act thousands of times a
// second costs one line a minute, which says how many were left out.

export class LogThrottle {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #keys = new Map<string, { at: number; suppressed: number }>();
  /** Keys are forgotten once quiet for an interval, so the map stays as small as the noisy set. */
  #sweptAt: number;

  constructor(intervalMs = 60_000, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
    this.#sweptAt = now();
  }

  /** Whether this key may log now, with how many of its lines were left out since the last. */
  take(key: string): { suppressed: number } | null {
    const now = this.#now();
    if (now - this.#sweptAt >= this.#intervalMs) this.#sweep(now);
    const entry = this.#keys.get(key);
    if (entry && now - entry.at < this.#intervalMs) {
      entry.suppressed++;
      return null;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#keys.set(key, { at: now, suppressed: 0 });
    return { suppressed };
  }

  #sweep(now: number): void {
    this.#sweptAt = now;
    // A key quiet for two intervals goes, with any count it still held.
    for (const [key, entry] of this.#keys) if (now - entry.at >= (entry.suppressed === 0 ? 1 : 2) * this.#intervalMs) this.#keys.delete(key);
  }
}
