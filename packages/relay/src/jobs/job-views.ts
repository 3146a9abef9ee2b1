// How jobs look in API answers and on the stream.

import { lowerIsBetter, type JobSummary } from '@outpost/shared';
import type { JobOutputRecord, JobRecord, JobTarget } from '../store/records.js';
import type { Store } from '../store/store.js';

export type MetricSummaryRow = Awaited<ReturnType<Store['jobs']['metricSummary']>>[number];

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function describeTarget(t: JobTarget): string {
  if (t.kind === 'local') return 'local';
  if (t.kind === 'device') return t.deviceId;
  return Object.entries(t.selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The store's per-name aggregates as latest and best (the store does the work in SQL). */
export function summarizeMetrics(rows: MetricSummaryRow[]): JobSummary['metrics'] {
  const out: JobSummary['metrics'] = {};
  for (const r of rows) out[r.name] = { latest: r.latest, best: lowerIsBetter(r.name) ? r.lowest : r.highest, step: r.step };
  return out;
}

export function jobView(j: JobRecord, metrics: MetricSummaryRow[], outputs: JobOutputRecord[]): JobSummary {
  return {
    id: j.id,
    state: j.state,
    target: describeTarget(j.spec.target),
    command: j.spec.command,
    nodes: j.spec.nodes,
    createdAt: iso(j.createdAt),
    startedAt: iso(j.startedAt),
    finishedAt: iso(j.finishedAt),
    error: j.error,
    runs: j.runs.map((r) => ({ rank: r.rank, target: r.target, state: r.state, exitCode: r.exitCode, error: r.error })),
    metrics: summarizeMetrics(metrics),
    outputs,
    model: j.model,
  };
}
