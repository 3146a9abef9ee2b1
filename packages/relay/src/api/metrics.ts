// GET /metrics: Prometheus text format (API token, like every other admin route).

import type { FastifyInstance } from 'fastify';
import { requireApiToken } from './auth.js';
import type { ApiDeps } from './server.js';

export async function metricsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { metrics } = deps;
  app.get('/metrics', { preHandler: requireApiToken(deps.ctx) }, async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
