// POST /v1/tokens/enroll: a one-time enrollment token with a time to live and optional labels.

import type { FastifyInstance } from 'fastify';
import type { Labels } from '@outpost/shared';
import { createEnrollToken } from '../fleet/enrollment.js';
import { requireApiToken } from './auth.js';
import { checkLabels, labelsSchema } from './schemas.js';
import type { ApiDeps } from './server.js';

const DAY_S = 86_400;

export async function tokenRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.post<{ Body: { ttlSeconds?: number; labels?: Labels; allowDeviceLabels?: boolean } }>(
    '/v1/tokens/enroll',
    {
      preHandler: requireApiToken(deps.ctx),
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { ttlSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 30 * DAY_S }, labels: labelsSchema, allowDeviceLabels: { type: 'boolean' } },
        },
      },
    },
    async (request, reply) => {
      const labels = checkLabels(request.body?.labels);
      const token = createEnrollToken(deps.ctx, { ttlMs: (request.body?.ttlSeconds ?? 900) * 1000, labels, allowDeviceLabels: request.body?.allowDeviceLabels });
      reply.status(201);
      return { token: token.token, ...(token.caFingerprint ? { caFingerprint: token.caFingerprint } : {}), expiresAt: new Date(token.expiresAt).toISOString(), labels: token.labels, allowDeviceLabels: token.allowDeviceLabels };
    },
  );
}
