// GET /metrics: Prometheus text format (any API token: viewers read it).

import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from './server.js';

export async function metricsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { metrics } = deps;
  app.get('/metrics', { config: { access: 'viewer' } }, async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
