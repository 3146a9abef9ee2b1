// A bounded time series per device: every heartbeat for the last hour, 5-minute averages for
// the last 7 days. Heartbeats are buffered and written in one transaction a second, so 1,000
// devices cost SQLite one commit a second, not a thousand.

import { background, guardedInterval, type HealthMessage, type Logger } from '@outpost/shared';
import type { Store } from '../store/store.js';
import type { HealthSample } from '../store/records.js';

export const RAW_WINDOW_MS = 60 * 60_000;
export const ROLLUP_BUCKET_MS = 5 * 60_000;
export const ROLLUP_WINDOW_MS = 7 * 24 * 60 * 60_000;

export interface HealthSeries {
  deviceId: string;
  from: string;
  /** Oldest first; recent points are heartbeats, older ones 5-minute averages. */
  points: Array<Omit<HealthSample, 'deviceId'>>;
}

/**
 * The schemas bound every input, so this is the second line: SQLite refuses a non-finite REAL,
 * and a figure derived from outside values (a rate) is checked before it is stored.
 */
function finite(value: number): number {
  return Number.isFinite(value) ? value : 0;
}

export class HealthHistory {
  readonly #store: Store;
  readonly #now: () => number;
  #pending: HealthSample[] = [];
  /** Each device's newest heartbeat since the last flush. */
  #latest = new Map<string, { deviceId: string; health: HealthMessage; at: number }>();
  /** Last cumulative counters per device, to turn totals into rates. */
  readonly #last = new Map<string, { ts: number; requests: number; errors: number }>();
  readonly #flushTimer: NodeJS.Timeout;
  readonly #pruneTimer: NodeJS.Timeout;

  constructor(store: Store, log: Logger, now: () => number = Date.now, flushMs = 1000) {
    this.#store = store;
    this.#now = now;
    // A failed write (a full disk) loses that second's samples, never the relay.
    this.#flushTimer = guardedInterval(log, 'writing health samples', flushMs, () => this.flush());
    this.#pruneTimer = guardedInterval(log, 'pruning health history', 5 * 60_000, () => this.prune());
    background(log, 'pruning health history', this.prune());
  }

  record(deviceId: string, h: HealthMessage, at: number): void {
    let requests = 0;
    let errors = 0;
    let p50: number | null = null;
    let p99: number | null = null;
    for (const m of Object.values(h.models)) {
      requests += m.requests;
      errors += m.errors;
      // The device's latency is its slowest model's.
      if (m.p50Ms !== null) p50 = Math.max(p50 ?? 0, m.p50Ms);
      if (m.p99Ms !== null) p99 = Math.max(p99 ?? 0, m.p99Ms);
    }
    this.#latest.set(deviceId, { deviceId, health: h, at });
    const last = this.#last.get(deviceId);
    const dt = last ? (at - last.ts) / 1000 : 0;
    // Counters restart with the agent; a negative delta is a restart, not negative traffic.
    const rate = (now: number, before: number | undefined) => (dt > 0 && before !== undefined ? finite(Math.max(0, now - before) / dt) : 0);
    this.#last.set(deviceId, { ts: at, requests, errors });
    this.#pending.push({
      deviceId,
      ts: at,
      cpu: finite(h.cpuPercent),
      memUsed: finite(h.memory.usedBytes),
      memTotal: finite(h.memory.totalBytes),
      rss: finite(h.memory.rssBytes),
      reqRate: rate(requests, last?.requests),
      errRate: rate(errors, last?.errors),
      p50: p50 === null ? null : finite(p50),
      p99: p99 === null ? null : finite(p99),
    });
  }

  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    const latest = [...this.#latest.values()];
    this.#pending = [];
    this.#latest = new Map();
    await this.#store.health.add(batch, ROLLUP_BUCKET_MS, latest);
  }

  async prune(): Promise<void> {
    const now = this.#now();
    await this.#store.health.prune(now - RAW_WINDOW_MS, now - ROLLUP_WINDOW_MS);
  }

  async forget(deviceId: string): Promise<void> {
    this.#last.delete(deviceId);
    this.#latest.delete(deviceId);
    this.#pending = this.#pending.filter((s) => s.deviceId !== deviceId);
    await this.#store.health.deleteDevice(deviceId);
  }

  async series(deviceId: string, rangeMs: number): Promise<HealthSeries> {
    await this.flush();
    const now = this.#now();
    const from = now - Math.min(rangeMs, ROLLUP_WINDOW_MS);
    const rawFrom = Math.max(from, now - RAW_WINDOW_MS);
    const older = from < rawFrom ? await this.#store.health.rollups(deviceId, from - (from % ROLLUP_BUCKET_MS), rawFrom - (rawFrom % ROLLUP_BUCKET_MS), ROLLUP_BUCKET_MS) : [];
    const recent = await this.#store.health.samples(deviceId, rawFrom);
    const points = [...older, ...recent].map(({ deviceId: _, ...p }) => p);
    return { deviceId, from: new Date(from).toISOString(), points };
  }

  /** Stops the timers and writes what is still buffered. */
  async close(): Promise<void> {
    clearInterval(this.#flushTimer);
    clearInterval(this.#pruneTimer);
    await this.flush();
  }
}
