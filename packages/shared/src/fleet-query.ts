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

/**
 * The devices that match, in the query's order (ties by name, then id). Keys are read once per
 * device, so sorting 10,000 devices does not re-read them per comparison.
 */
export function queryFleet(devices: Iterable<DeviceSummary>, q: FleetQuery): DeviceSummary[] {
  const key = KEYS[q.sort];
  const rows: Array<{ d: DeviceSummary; k: string | number | null; n: string }> = [];
  for (const d of devices) if (matchesQuery(d, q)) rows.push({ d, k: key(d), n: d.name.toLowerCase() });
  const dir = q.descending ? -1 : 1;
  rows.sort((a, b) => {
    if (a.k !== b.k) {
      if (a.k === null) return 1;
      if (b.k === null) return -1;
      return (a.k < b.k ? -1 : 1) * dir;
    }
    if (a.n !== b.n) return a.n < b.n ? -1 : 1;
    return a.d.id < b.d.id ? -1 : a.d.id > b.d.id ? 1 : 0;
  });
  return rows.map((r) => r.d);
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
  let total = 0;
  let online = 0;
  let failing = 0;
  const models = new Map<string, number>();
  const labels = new Set<string>();
  for (const d of devices) {
    total++;
    if (d.online) online++;
    if (isFailing(d)) failing++;
    for (const m of d.models) {
      const k = `${m.name}:${m.version}`;
      models.set(k, (models.get(k) ?? 0) + 1);
    }
    for (const [k, v] of Object.entries(d.labels)) labels.add(`${k}=${v}`);
  }
  return {
    total,
    online,
    offline: total - online,
    failing,
    models: [...models].map(([model, n]) => ({ model, devices: n })).sort((a, b) => b.devices - a.devices || (a.model < b.model ? -1 : 1)),
    labels: [...labels].sort(),
  };
}
