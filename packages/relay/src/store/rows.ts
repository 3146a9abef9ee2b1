// Row → record mappers that read the same on every engine (no JSON or boolean columns, whose
// encodings differ: SQLite keeps JSON as text and flags as 0/1).

import type { ApiTokenRecord, AuditActor } from './records.js';

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
