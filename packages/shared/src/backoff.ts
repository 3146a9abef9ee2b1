// Retry delays for everything a device retries against the relay (downloads, uploads, the MQTT
// connection): doubling from `baseMs` up to `maxMs`, with "equal jitter" (half fixed, half
// random), so that a fleet cut off together does not come back in the same millisecond and
// hit a restarting relay all at once, again and again.

export interface Backoff {
  baseMs: number;
  maxMs: number;
}

/** The delay before retry number `failures` (1 for the first retry). */
export function backoffMs(failures: number, { baseMs, maxMs }: Backoff, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling * (0.5 + random() / 2));
}
