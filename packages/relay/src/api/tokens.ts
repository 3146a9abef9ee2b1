// /v1/tokens: API tokens (make one with a name and a role, list, revoke), and
// POST /v1/tokens/enroll: a one-time enrollment token with a time to live and optional labels.

import type { FastifyInstance } from 'fastify';
import type { Labels } from '@outpost/shared';
import { createEnrollToken } from '../fleet/enrollment.js';
import { MAX_TOKEN_TTL_MS } from '../auth/api-tokens.js';
import { ROLES, type Role } from '../auth/roles.js';
import { auditTarget } from './audit.js';
import { checkDeviceLabels, labelsSchema } from './schemas.js';
import type { ApiDeps } from './server.js';

const DAY_S = 86_400;

export async function tokenRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { tokens } = deps;

  app.post<{ Body: { ttlSeconds?: number; labels?: Labels; allowDeviceLabels?: boolean } }>(
    '/v1/tokens/enroll',
    {
      config: { access: 'admin', audit: 'enroll-token.create' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { ttlSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 30 * DAY_S }, labels: labelsSchema, allowDeviceLabels: { type: 'boolean' } },
        },
      },
    },
    async (request, reply) => {
      const labels = checkDeviceLabels(request.body?.labels);
      const token = await createEnrollToken(deps.ctx, { ttlMs: (request.body?.ttlSeconds ?? 900) * 1000, labels, allowDeviceLabels: request.body?.allowDeviceLabels });
      auditTarget(request, token.token.split('_')[1]!, { labels: token.labels, expiresAt: new Date(token.expiresAt).toISOString(), allowDeviceLabels: token.allowDeviceLabels });
      reply.status(201);
      return { token: token.token, ...(token.caFingerprint ? { caFingerprint: token.caFingerprint } : {}), expiresAt: new Date(token.expiresAt).toISOString(), labels: token.labels, allowDeviceLabels: token.allowDeviceLabels };
    },
  );

  app.post<{ Body: { name: string; role: Role; ttlSeconds?: number } }>(
    '/v1/tokens',
    {
      config: { access: 'admin', audit: 'token.create' },
      schema: {
        body: {
          type: 'object',
          required: ['name', 'role'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            role: { type: 'string', enum: [...ROLES] },
            ttlSeconds: { type: 'number', exclusiveMinimum: 0, maximum: MAX_TOKEN_TTL_MS / 1000 },
          },
        },
      },
    },
    async (request, reply) => {
      const { name, role, ttlSeconds } = request.body;
      auditTarget(request, name, { role });
      const made = await tokens.create({ name, role, ttlMs: ttlSeconds === undefined ? undefined : Math.round(ttlSeconds * 1000) });
      auditTarget(request, `${made.view.name} (${made.view.id})`, { role, expiresAt: made.view.expiresAt });
      request.log.info({ tokenId: made.view.id, name, role, expiresAt: made.view.expiresAt }, 'API token created');
      reply.status(201);
      return { token: made.token, ...made.view };
    },
  );

  app.get('/v1/tokens', { config: { access: 'admin' } }, async () => ({ tokens: await tokens.list() }));

  app.delete<{ Params: { ref: string } }>(
    '/v1/tokens/:ref',
    { config: { access: 'admin', audit: 'token.revoke' }, schema: { params: { type: 'object', required: ['ref'], properties: { ref: { type: 'string', minLength: 1, maxLength: 64 } } } } },
    async (request) => {
      const view = await tokens.revoke(request.params.ref);
      auditTarget(request, `${view.name} (${view.id})`, { role: view.role });
      request.log.info({ tokenId: view.id, name: view.name }, 'API token revoked');
      return view;
    },
  );
}
