// How jobs look in API answers and on the stream.

import { lowerIsBetter, type FederatedSummary, type JobSummary, type RoundSummary } from '@outpost/shared';
import type { FederatedRoundRecord, JobOutputRecord, JobRecord, JobTarget } from '../store/records.js';
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

export function roundView(r: FederatedRoundRecord): RoundSummary {
  return {
    round: r.round,
    attempt: r.attempt,
    state: r.state,
    clients: r.clients,
    participants: r.participants,
    dropped: r.dropped,
    metrics: r.metrics,
    globalSha256: r.globalSha256,
    resultSha256: r.resultSha256,
    startedAt: iso(r.startedAt),
    deadlineAt: iso(r.deadlineAt),
    finishedAt: iso(r.finishedAt),
    error: r.error,
  };
}

/** A federated job's settings, and how far it got: rounds aggregated, why none runs now. */
export function federatedView(j: JobRecord, rounds: readonly FederatedRoundRecord[], waiting: string | null): FederatedSummary | null {
  const f = j.spec.federated;
  if (!f) return null;
  return {
    rounds: f.rounds,
    minClients: f.minClients,
    fraction: f.fraction,
    strategy: f.strategy,
    proximalMu: f.proximalMu,
    roundDeadlineMs: f.roundDeadlineMs,
    initialModel: { name: f.initialModel.name, version: f.initialModel.version },
    completed: rounds.filter((r) => r.state === 'aggregated').length,
    waiting,
  };
}

export function jobView(j: JobRecord, metrics: MetricSummaryRow[], outputs: JobOutputRecord[], federated: FederatedSummary | null = federatedView(j, [], null)): JobSummary {
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
    federated,
    score: j.spec.score ? { model: j.spec.score.model.name, version: j.spec.score.model.version, format: j.spec.score.format } : null,
    require: j.spec.require ?? [],
    waiting: null,
  };
}
