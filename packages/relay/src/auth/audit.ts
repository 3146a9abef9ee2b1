// The audit log: who did what to what, when, from where, and how it ended. Kept in the store,
// append-only, bounded to the newest AUDIT_KEEP entries (the oldest go). Requests are recorded
// in one place, the API's audit hook (api/audit.ts); the relay's own actions (an automatic
// rollback) call record() with the `relay` actor.
//
// Refused attempts (403) are recorded too, but at most once a minute per token and action (the
// next one says how many were left out), so a token cannot push real entries out of the bound
// by being refused over and over; so are a device's failed calls (bad CSRs, say), for the same
// reason: a device is not trusted not to try.

import type { Store } from '../store/store.js';
import type { AuditActor, AuditEntry, AuditOutcome } from '../store/records.js';

export const AUDIT_KEEP = 100_000;
/** The most entries one read returns. */
export const AUDIT_MAX_LIMIT = 1000;
const REFUSED_EVERY_MS = 60_000;
const REFUSED_KEYS_MAX = 10_000;

/** The actions recorded. One name per thing a caller (or the relay) changes. */
export const AUDIT_ACTIONS = [
  'model.push',
  'model.delete',
  'model.prune',
  'sample.push',
  'bundle.push',
  'deploy',
  'deployment.cancel',
  'deployment.rollback',
  'job.submit',
  'job.score',
  'job.cancel',
  'token.create',
  'token.revoke',
  'enroll-token.create',
  'device.enroll',
  'device.remove',
  'device.label',
  'device.rotate',
  'device.renew-certificate',
  'target.attach',
  'target.detach',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditRecord {
  actor: AuditActor;
  action: AuditAction;
  target: string | null;
  outcome: AuditOutcome;
  status?: number | null;
  address?: string | null;
  detail?: Record<string, unknown> | null;
}

/** What `GET /v1/audit` answers per entry. */
export interface AuditView {
  seq: number;
  at: string;
  /** Who, as a person reads it: the token's name, `device dev_…`, or `relay`. */
  who: string;
  actor: AuditActor;
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  status: number | null;
  address: string | null;
  detail: Record<string, unknown> | null;
}

export function actorName(actor: AuditActor): string {
  return actor.kind === 'token' ? actor.name : actor.kind === 'device' ? `device ${actor.id}` : 'relay';
}

export function auditView(e: AuditEntry): AuditView {
  return { seq: e.seq, at: new Date(e.ts).toISOString(), who: actorName(e.actor), actor: e.actor, action: e.action, target: e.target, outcome: e.outcome, status: e.status, address: e.address, detail: e.detail };
}

export class AuditLog {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #keep: number;
  /** Per token and action: when a refusal was last recorded, and how many were left out since. */
  readonly #refused = new Map<string, { at: number; leftOut: number }>();

  constructor(store: Store, opts: { now?: () => number; keep?: number } = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.#keep = opts.keep ?? AUDIT_KEEP;
  }

  /** Records an entry; undefined when it was a refusal left out (see above). */
  async record(r: AuditRecord): Promise<AuditEntry | undefined> {
    const now = this.#now();
    let detail = r.detail ?? null;
    if (r.outcome === 'refused' || (r.outcome === 'failed' && r.actor.kind === 'device')) {
      const key = `${r.outcome}:${r.actor.kind}:${r.actor.kind === 'relay' ? '' : r.actor.id}:${r.action}`;
      const last = this.#refused.get(key);
      if (last && now - last.at < REFUSED_EVERY_MS) {
        last.leftOut++;
        return undefined;
      }
      if (this.#refused.size >= REFUSED_KEYS_MAX) this.#refused.clear();
      if (last?.leftOut) detail = { ...detail, leftOut: last.leftOut };
      this.#refused.set(key, { at: now, leftOut: 0 });
    }
    return await this.#store.audit.append({ ts: now, actor: r.actor, action: r.action, target: r.target, outcome: r.outcome, status: r.status ?? null, address: r.address ?? null, detail }, this.#keep);
  }

  /** Newest first. */
  async list(query: { since?: number; before?: number; limit?: number } = {}): Promise<AuditView[]> {
    return (await this.#store.audit.list({ since: query.since, before: query.before, limit: Math.min(query.limit ?? 100, AUDIT_MAX_LIMIT) })).map(auditView);
  }
}
