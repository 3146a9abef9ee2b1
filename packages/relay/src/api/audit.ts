// The audit log over HTTP: one onSend hook records every call of a route that names an action
// (`config: { audit }`), with who, from where and how it ended, before the answer leaves; and
// GET /v1/audit reads it (admin), newest first.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { OutpostError, parseDuration } from '@outpost/shared';
import { AUDIT_KEEP, AUDIT_MAX_LIMIT, type AuditLog } from '../auth/audit.js';
import type { AuditActor, AuditOutcome } from '../store/records.js';
import type { Caller } from './auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** What the handler knows of the action that the route's parameters do not say. */
    auditNote: AuditNote | null;
  }
}

interface AuditNote {
  target?: string;
  detail?: Record<string, unknown>;
  /** Who, when it is not the caller's credential (an enrolling device: the one just made). */
  actor?: AuditActor;
}

/** Called by a handler: what the action was done to (a new deployment's id), and more about it. */
export function auditTarget(request: FastifyRequest, target: string, detail?: Record<string, unknown>, actor?: AuditActor): void {
  request.auditNote = { target, detail, actor };
}

function actorOf(caller: Caller): AuditActor {
  return caller.kind === 'token' ? { kind: 'token', id: caller.id, name: caller.name } : { kind: 'device', id: caller.deviceId };
}

/** The target a route's parameters name: `{id}`, `{ref}`, `{sha256}`, or `{name}[:version]`. */
function targetFromParams(params: unknown): string | null {
  const p = (params ?? {}) as Record<string, string | undefined>;
  if (p.id !== undefined) return p.id;
  if (p.ref !== undefined) return p.ref;
  if (p.sha256 !== undefined) return p.sha256;
  if (p.name !== undefined) return p.version !== undefined ? `${p.name}:${p.version}` : p.name;
  return null;
}

/** The error a refused or failed call answered, cut short: the log is bounded in entries, and each in size. */
function errorOf(payload: unknown): Record<string, unknown> | undefined {
  if (typeof payload !== 'string' || payload.length > 64 * 1024) return undefined;
  try {
    const error = (JSON.parse(payload) as { error?: { code?: unknown; message?: unknown } }).error;
    if (!error || typeof error.code !== 'string') return undefined;
    return { error: error.code, message: typeof error.message === 'string' ? error.message.slice(0, 300) : undefined };
  } catch {
    return undefined;
  }
}

export function recordRequests(app: FastifyInstance, audit: AuditLog): void {
  app.decorateRequest('auditNote', null);
  app.addHook('onSend', async (request, reply, payload) => {
    const action = request.routeOptions.config.audit;
    if (!action || request.is404) return payload;
    const note = request.auditNote;
    const actor = note?.actor ?? (request.caller ? actorOf(request.caller) : undefined);
    // A 401 names nobody: strangers are not given a way to fill the log.
    if (!actor) return payload;
    const status = reply.statusCode;
    const outcome: AuditOutcome = status < 400 ? 'ok' : status === 403 ? 'refused' : 'failed';
    const detail = outcome === 'ok' ? note?.detail : { ...note?.detail, ...errorOf(payload) };
    try {
      await audit.record({ actor, action, target: note?.target ?? targetFromParams(request.params), outcome, status, address: request.ip, detail: detail && Object.keys(detail).length ? detail : null });
    } catch (err) {
      // The action is done (or refused) whatever the log says; a full disk must not hide that.
      request.log.error({ err, action }, 'could not write the audit log entry');
    }
    return payload;
  });
}

/** `since`: a duration back from now (1h, 30m, 7d) or an ISO time. */
export function parseSince(text: string, now: number): number {
  if (/^\d/.test(text) && !/^\d{4}-/.test(text)) {
    try {
      return now - parseDuration(text);
    } catch (err) {
      throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `since: ${(err as Error).message}, or an ISO time like 2025-01-31T12:00:00Z`);
    }
  }
  const at = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?$/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(at)) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `since ${JSON.stringify(text)}: give a duration back from now (1h, 30m, 7d) or an ISO time like 2025-01-31T12:00:00Z`);
  return at;
}

export async function auditRoutes(app: FastifyInstance, deps: { audit: AuditLog }): Promise<void> {
  app.get<{ Querystring: { since?: string; limit?: string; before?: string } }>(
    '/v1/audit',
    {
      config: { access: 'admin' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { since: { type: 'string', minLength: 1, maxLength: 40 }, limit: { type: 'string', pattern: '^[0-9]{1,5}$' }, before: { type: 'string', pattern: '^[0-9]{1,15}$' } },
        },
      },
    },
    async (request) => {
      const limit = Number(request.query.limit ?? 100);
      if (limit < 1 || limit > AUDIT_MAX_LIMIT) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `limit: 1 to ${AUDIT_MAX_LIMIT} entries (page on with before=)`);
      const since = request.query.since === undefined ? undefined : parseSince(request.query.since, Date.now());
      const before = request.query.before === undefined ? undefined : Number(request.query.before);
      const entries = await deps.audit.list({ since, before, limit });
      // A full page may have more behind it: the next one is before its last seq.
      return { entries, kept: AUDIT_KEEP, next: entries.length === limit ? entries.at(-1)!.seq : null };
    },
  );
}
