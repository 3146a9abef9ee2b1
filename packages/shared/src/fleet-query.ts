// Finding devices in the fleet: search, filters, sorting and the summary counts the dashboard
// shows above its table. Pure and browser-safe, so it is unit-tested here.

import type { DeviceSummary } from './stream.js';

export const SORT_COLUMNS = ['name', 'state', 'models', 'cpu', 'memory', 'p50', 'lastSeen'] as const;
export type SortColumn = (typeof SORT_COLUMNS)[number];

export type StatusFilter = 'all' | 'online' | 'offline' | 'failing';

export interface FleetQuery {
  /** Matches a device's name, id, or a label (`key=value`, or either side), case-insensitive. */
  text: string;
  status: StatusFilter;
  /** `key=value`, or null for any. */
  label: string | null;
  /** `name` or `name:version`, or null for any. */
  model: string | null;
  /** A model state (serving, failed, …): devices with a model in it. Null for any. */
  modelState: string | null;
  sort: SortColumn;
  descending: boolean;
}

export const DEFAULT_QUERY: FleetQuery = { text: '', status: 'all', label: null, model: null, modelState: null, sort: 'state', descending: false };

/** Failing: something only a person can fix, or a model that failed on it. */
export function isFailing(d: DeviceSummary): boolean {
  return Boolean(d.problem) || d.models.some((m) => m.state === 'failed');
}

export function matchesQuery(d: DeviceSummary, q: FleetQuery): boolean {
  if (q.status === 'online' && !d.online) return false;
  if (q.status === 'offline' && d.online) return false;
  if (q.status === 'failing' && !isFailing(d)) return false;
  if (q.label !== null) {
    const eq = q.label.indexOf('=');
    if (d.labels[q.label.slice(0, eq)] !== q.label.slice(eq + 1)) return false;
  }
  if (q.model !== null && !d.models.some((m) => m.name === q.model || `${m.name}:${m.version}` === q.model)) return false;
  if (q.modelState !== null && !d.models.some((m) => m.state === q.modelState)) return false;
  const text = q.text.trim().toLowerCase();
  if (text === '') return true;
  if (d.name.toLowerCase().includes(text) || d.id.toLowerCase().includes(text)) return true;
  return Object.entries(d.labels).some(([k, v]) => `${k}=${v}`.toLowerCase().includes(text));
}

/** The largest p50 of the device's models, or null before any request. */
export function deviceP50(d: DeviceSummary): number | null {
  if (!d.health) return null;
  let max: number | null = null;
  for (const m of Object.values(d.health.models)) if (m.p50Ms !== null && (max === null || m.p50Ms > max)) max = m.p50Ms;
  return max;
}

// What each column sorts by; devices without a value (no heartbeat yet) go last either way.
const KEYS: Record<SortColumn, (d: DeviceSummary) => string | number | null> = {
  name: (d) => d.name.toLowerCase(),
  state: (d) => (d.online ? (isFailing(d) ? 1 : 0) : 2),
  models: (d) => d.models.map((m) => `${m.name}:${m.version}`).join(',') || null,
  cpu: (d) => d.health?.cpuPercent ?? null,
  memory: (d) => d.health?.memory.usedBytes ?? null,
  p50: deviceP50,
  lastSeen: (d) => (d.lastSeen ? -Date.parse(d.lastSeen) : null),
};

interface SortKey {
  d: DeviceSummary;
  k: string | number | null;
  n: string;
}

const sortKey = (d: DeviceSummary, q: FleetQuery): SortKey => ({ d, k: KEYS[q.sort](d), n: d.name.toLowerCase() });

/** The query's order on keys: by the column (no value last, either way), then name, then id. */
function compareKeys(a: SortKey, b: SortKey, descending: boolean): number {
  if (a.k !== b.k) {
    if (a.k === null) return 1;
    if (b.k === null) return -1;
    return (a.k < b.k ? -1 : 1) * (descending ? -1 : 1);
  }
  if (a.n !== b.n) return a.n < b.n ? -1 : 1;
  return a.d.id < b.d.id ? -1 : a.d.id > b.d.id ? 1 : 0;
}

/**
 * The devices that match, in the query's order (ties by name, then id). Keys are read once per
 * device, so sorting 10,000 devices does not re-read them per comparison.
 */
export function queryFleet(devices: Iterable<DeviceSummary>, q: FleetQuery): DeviceSummary[] {
  const rows: SortKey[] = [];
  for (const d of devices) if (matchesQuery(d, q)) rows.push(sortKey(d, q));
  rows.sort((a, b) => compareKeys(a, b, q.descending));
  return rows.map((r) => r.d);
}

/**
 * `order` (a queryFleet result for `q`) after the devices in `changed` changed (undefined:
 * removed): they are taken out, and each one that matches is put back where it belongs by binary
 * search, so a few changes cost a pass over the list, not a sort of the fleet. The rest of
 * `order` must be unchanged since it was sorted.
 */
export function reorderDevices(order: DeviceSummary[], changed: ReadonlyMap<string, DeviceSummary | undefined>, q: FleetQuery): DeviceSummary[] {
  const next = order.filter((x) => !changed.has(x.id));
  for (const d of changed.values()) {
    if (!d || !matchesQuery(d, q)) continue;
    const key = sortKey(d, q);
    let lo = 0;
    let hi = next.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(sortKey(next[mid]!, q), key, q.descending) < 0) lo = mid + 1;
      else hi = mid;
    }
    next.splice(lo, 0, d);
  }
  return next;
}

/** Whether a change to health alone (a heartbeat) can move a device in this order. */
export function sortUsesHealth(column: SortColumn): boolean {
  return column === 'cpu' || column === 'memory' || column === 'p50' || column === 'lastSeen';
}

export interface FleetCounts {
  total: number;
  online: number;
  offline: number;
  failing: number;
  /** Devices per `name:version` they have (in any state), most first. */
  models: Array<{ model: string; devices: number }>;
  /** Every `key=value` seen, sorted. */
  labels: string[];
}

export function fleetCounts(devices: Iterable<DeviceSummary>): FleetCounts {
  const tally = new FleetTally();
  for (const d of devices) tally.set(d.id, d);
  return tally.counts();
}

interface Share {
  online: boolean;
  failing: boolean;
  models: string[];
  labels: string[];
}

/**
 * The summary counts kept current one device at a time: each device's share is remembered, so
 * a change costs that device, not a pass over the fleet.
 */
export class FleetTally {
  readonly #shares = new Map<string, Share>();
  #online = 0;
  #failing = 0;
  readonly #models = new Map<string, number>();
  readonly #labels = new Map<string, number>();

  /** The device as it is now, or undefined when it is gone. */
  set(id: string, d: DeviceSummary | undefined): void {
    const old = this.#shares.get(id);
    if (old) this.#count(old, -1);
    if (!d) {
      this.#shares.delete(id);
      return;
    }
    const share: Share = {
      online: d.online,
      failing: isFailing(d),
      models: d.models.map((m) => `${m.name}:${m.version}`),
      labels: Object.entries(d.labels).map(([k, v]) => `${k}=${v}`),
    };
    this.#shares.set(id, share);
    this.#count(share, 1);
  }

  clear(): void {
    this.#shares.clear();
    this.#models.clear();
    this.#labels.clear();
    this.#online = 0;
    this.#failing = 0;
  }

  counts(): FleetCounts {
    const total = this.#shares.size;
    return {
      total,
      online: this.#online,
      offline: total - this.#online,
      failing: this.#failing,
      models: [...this.#models].map(([model, n]) => ({ model, devices: n })).sort((a, b) => b.devices - a.devices || (a.model < b.model ? -1 : 1)),
      labels: [...this.#labels.keys()].sort(),
    };
  }

  #count(s: Share, by: 1 | -1): void {
    if (s.online) this.#online += by;
    if (s.failing) this.#failing += by;
    for (const m of s.models) bump(this.#models, m, by);
    for (const l of s.labels) bump(this.#labels, l, by);
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}
