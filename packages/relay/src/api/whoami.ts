// GET /v1/whoami: who the token names and its role (the dashboard shows it; so does
// `outpost-relay whoami`, as `kubectl auth whoami` does).

import type { FastifyInstance } from 'fastify';
import type { TokenCaller } from '../auth/api-tokens.js';

export async function whoamiRoutes(app: FastifyInstance): Promise<void> {
  app.get('/v1/whoami', { config: { access: 'viewer' } }, async (request) => {
    // Its access takes API tokens only.
    const caller = request.caller as TokenCaller;
    return { kind: 'token', id: caller.id, name: caller.name, role: caller.role, expiresAt: caller.expiresAt === null ? null : new Date(caller.expiresAt).toISOString() };
  });
}
