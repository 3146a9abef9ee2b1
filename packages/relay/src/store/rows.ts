// Row → record mappers that read the same on every engine. JSON and boolean columns differ
// (SQLite keeps JSON as text and flags as 0/1): a mapper with JSON reads it through `json`.

import type { ApiTokenRecord, AuditActor, FederatedRoundRecord } from './records.js';

export interface ApiTokenRow {
  id: string;
  name: string;
  hash: string;
  role: ApiTokenRecord['role'];
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

export const toApiToken = (r: ApiTokenRow): ApiTokenRecord => ({
  id: r.id,
  name: r.name,
  hash: r.hash,
  role: r.role,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
});

/** The audit log's actor columns. */
export interface AuditActorColumns {
  actor_kind: AuditActor['kind'];
  actor_id: string | null;
  actor_name: string;
}

export const toActor = (r: AuditActorColumns): AuditActor =>
  r.actor_kind === 'token' ? { kind: 'token', id: r.actor_id ?? '', name: r.actor_name } : r.actor_kind === 'device' ? { kind: 'device', id: r.actor_id ?? '' } : { kind: 'relay' };

/** A `federated_rounds` row; its JSON columns as the engine gives them (text on SQLite). */
export interface RoundRow {
  job_id: string;
  round: number;
  attempt: number;
  state: FederatedRoundRecord['state'];
  global_sha256: string;
  result_sha256: string | null;
  clients: unknown;
  participants: unknown;
  dropped: unknown;
  metrics: unknown;
  started_at: number;
  deadline_at: number;
  finished_at: number | null;
  error: string | null;
}

/** The columns of `federated_rounds` in the order roundValues gives them. */
export const ROUND_COLUMNS = 'job_id, round, attempt, state, global_sha256, result_sha256, clients, participants, dropped, metrics, started_at, deadline_at, finished_at, error';

export const roundValues = (r: FederatedRoundRecord): unknown[] => [
  r.jobId,
  r.round,
  r.attempt,
  r.state,
  r.globalSha256,
  r.resultSha256,
  JSON.stringify(r.clients),
  JSON.stringify(r.participants),
  JSON.stringify(r.dropped),
  JSON.stringify(r.metrics),
  r.startedAt,
  r.deadlineAt,
  r.finishedAt,
  r.error,
];

/** `json` reads a JSON column: JSON.parse on SQLite, as it is on PostgreSQL. */
export const toRound = (r: RoundRow, json: (v: unknown) => unknown = (v) => (typeof v === 'string' ? JSON.parse(v) : v)): FederatedRoundRecord => ({
  jobId: r.job_id,
  round: r.round,
  attempt: r.attempt,
  state: r.state,
  globalSha256: r.global_sha256,
  resultSha256: r.result_sha256,
  clients: json(r.clients) as FederatedRoundRecord['clients'],
  participants: json(r.participants) as FederatedRoundRecord['participants'],
  dropped: json(r.dropped) as FederatedRoundRecord['dropped'],
  metrics: json(r.metrics) as FederatedRoundRecord['metrics'],
  startedAt: r.started_at,
  deadlineAt: r.deadline_at,
  finishedAt: r.finished_at,
  error: r.error,
});
