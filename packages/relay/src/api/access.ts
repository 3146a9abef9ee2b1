// Every route says who may call it (`config: { access }` in its options, auth/roles.ts): one
// that does not is refused when it is registered, so the relay cannot start with a route that
// forgot. One preParsing hook checks the caller against it, after the route's own header checks
// and before a byte of the body is read or validated.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { OutpostError } from '@outpost/shared';
import { ACCESS_VALUES, forbiddenMessage, isAccess, roleAllows, roleNeeded, type Access } from '../auth/roles.js';
import type { ApiTokens } from '../auth/api-tokens.js';
import type { AuditAction } from '../auth/audit.js';
import type { Store } from '../store/store.js';
import { identifyRequest, type Caller } from './auth.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (required: see api/access.ts). */
    access?: Access;
    /** The action the audit log records for a call of it (api/audit.ts). */
    audit?: AuditAction;
  }
  interface FastifyRequest {
    /** Who the credential names, once api/access.ts has checked it; null on public routes. */
    caller: Caller | null;
  }
}

/** One route of the role table. */
export interface RouteAccess {
  method: string;
  url: string;
  access: Access;
  audit: AuditAction | null;
}

function unauthorized(message: string): OutpostError {
  return new OutpostError('OUTPOST_ERR_UNAUTHORIZED', message);
}

const NO_TOKEN = 'missing or wrong token: pass --token or set OUTPOST_TOKEN (the relay printed its admin token on first start)';
const NO_CREDENTIAL = 'missing or wrong credential: use an API token or the device secret';

/** Throws the 401 or 403 the caller gets for a route of this access; returns when it may. */
export function authorize(access: Access, caller: Caller | undefined, route: string): void {
  if (access === 'public') return;
  const role = roleNeeded(access);
  if (!caller) throw unauthorized(access === 'device' ? "missing or wrong credential: use the device's certificate or secret" : role && access !== 'viewer+device' ? NO_TOKEN : NO_CREDENTIAL);
  if (caller.kind === 'device') {
    if (access === 'device' || access === 'viewer+device') return;
    throw new OutpostError('OUTPOST_ERR_FORBIDDEN', `a device credential works only for its artifacts and the device routes, not ${route}: that needs an API token with the ${role} role`);
  }
  if (role === null) throw new OutpostError('OUTPOST_ERR_FORBIDDEN', `${route} is for devices, with their own secret: an API token cannot use it`);
  if (!roleAllows(caller.role, role)) throw new OutpostError('OUTPOST_ERR_FORBIDDEN', forbiddenMessage(role, caller));
}

/**
 * Installs the guard on the root instance, before any route: returns the role table, filled in
 * as routes register.
 */
export function guardRoutes(app: FastifyInstance, deps: { tokens: ApiTokens; store: Store }): RouteAccess[] {
  const table: RouteAccess[] = [];
  app.decorateRequest('caller', null);
  app.addHook('onRoute', (route) => {
    const access = route.config?.access;
    const methods = [route.method].flat();
    if (!isAccess(access)) {
      throw new Error(`route ${methods.join(',')} ${route.url} says nothing about who may call it: give it config: { access } (one of ${ACCESS_VALUES.join(', ')}; auth/roles.ts)`);
    }
    for (const method of methods) table.push({ method, url: route.url, access, audit: route.config?.audit ?? null });
  });
  app.addHook('preParsing', async (request: FastifyRequest) => {
    if (request.is404) return;
    const access = request.routeOptions.config.access!;
    if (access === 'public') return;
    const caller = await identifyRequest(deps.tokens, deps.store, request);
    request.caller = caller ?? null;
    authorize(access, caller, `${request.method} ${request.routeOptions.url}`);
  });
  return table;
}
