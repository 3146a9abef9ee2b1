// /v1/deployments: deploy a model version to devices, list, show.

import type { FastifyInstance } from 'fastify';
import { cancelDeployment, createDeployment, requireDeployment, rollbackDeployment } from '../fleet/deployments.js';
import { requireApiToken } from './auth.js';
import { MODEL_NAME_PATTERN, checkLabels, idParams, labelsSchema } from './schemas.js';
import { deploymentView } from '../fleet/views.js';
import type { ApiDeps } from './server.js';

export async function deploymentRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx } = deps;
  app.addHook('preHandler', requireApiToken(ctx));

  app.post<{ Body: { model: string; version?: number; devices?: string[]; selector?: Record<string, string> } }>(
    '/v1/deployments',
    {
      schema: {
        body: {
          type: 'object',
          required: ['model'],
          additionalProperties: false,
          properties: {
            model: { type: 'string', pattern: MODEL_NAME_PATTERN },
            version: { type: 'integer', minimum: 1 },
            devices: { type: 'array', items: { type: 'string', maxLength: 64 }, minItems: 1, maxItems: 10000 },
            selector: labelsSchema,
          },
        },
      },
    },
    async (request, reply) => {
      if (request.body.selector) checkLabels(request.body.selector);
      const deployment = await createDeployment(ctx, request.body);
      reply.status(201);
      return deploymentView(deployment);
    },
  );

  // Query values are strings (types are not coerced, so bodies stay strict).
  app.get<{ Querystring: { limit?: string } }>(
    '/v1/deployments',
    { schema: { querystring: { type: 'object', properties: { limit: { type: 'string', pattern: '^([1-9][0-9]{0,2}|1000)$' } } } } },
    async (request) => ({ deployments: ctx.store.listDeployments(Number(request.query.limit ?? 100)).map(deploymentView) }),
  );

  app.get<{ Params: { id: string } }>('/v1/deployments/:id', { schema: { params: idParams } }, async (request) =>
    deploymentView(requireDeployment(ctx, request.params.id)),
  );

  app.post<{ Params: { id: string } }>('/v1/deployments/:id/cancel', { schema: { params: idParams } }, async (request) =>
    deploymentView(await cancelDeployment(ctx, request.params.id)),
  );

  app.post<{ Params: { id: string } }>('/v1/deployments/:id/rollback', { schema: { params: idParams } }, async (request) =>
    deploymentView(await rollbackDeployment(ctx, request.params.id)),
  );
}
