// The relay's HTTP server: fastify with one plugin per API area, one error shape for all.

import type { RolloutController } from '../fleet/rollout-controller.js';
import { serverContextOptions } from '../tls/relay-tls.js';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError } from 'fastify';
import { OutpostError, isDiskFull, type Logger } from '@outpost/shared';
import type { FleetContext } from '../fleet/context.js';
import type { ArtifactChecks } from '../artifacts/artifact-checks.js';
import type { DiskSpace } from '../disk-space.js';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { Slots } from '../fleet/slots.js';
import { healthRoutes } from './health.js';
import { openapiRoutes } from './openapi.js';
import { RELAY_VERSION } from '../version.js';
import { enrollRoutes } from './enroll.js';
import { tokenRoutes } from './tokens.js';
import { deviceRoutes } from './devices.js';
import { deviceCertificateRoutes } from './device-certificates.js';
import { deviceStateRoutes } from './device-state.js';
import { modelRoutes } from './models.js';
import { deploymentRoutes } from './deployments.js';
import { artifactRoutes } from './artifacts.js';
import { metricsRoutes } from './metrics.js';
import { dashboardRoutes } from './dashboard.js';
import { attachFleetStream } from './stream.js';
import type { RelayMetrics } from '../metrics/relay-metrics.js';
import type { FleetStream } from '../stream/fleet-stream.js';
import type { JobScheduler } from '../jobs/scheduler.js';
import { jobRoutes } from './jobs.js';
import { targetRoutes } from './targets.js';
import { whoamiRoutes } from './whoami.js';
import { auditRoutes, recordRequests } from './audit.js';
import { guardRoutes, type RouteAccess } from './access.js';
import type { ApiTokens } from '../auth/api-tokens.js';
import type { AuditLog } from '../auth/audit.js';

export interface ApiDeps {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  artifactChecks: ArtifactChecks;
  disk: DiskSpace;
  log: Logger;
  /** The MQTT URL devices should use, given the host name they reached the API on. */
  /** The MQTT URLs to hand an enrolling device, the first its own (agents fail over through the rest). */
  mqttUrlsFor(requestHost: string | undefined): string[];
  /** The CA of an external broker's certificate (--mqtt-ca), handed to devices at enrollment. */
  mqttCa?: string;
  maxModelBytes: number;
  /** Bound on concurrent artifact downloads, and how long one waits for a slot. */
  downloads: Slots;
  downloadWaitMs: number;
  metrics: RelayMetrics;
  stream: FleetStream;
  scheduler: JobScheduler;
  /** For the health windows' time left, in a deployment's explanation. */
  rollouts: Pick<RolloutController, 'windowLeftMs'>;
  localDatasets: Record<string, string>;
  tokens: ApiTokens;
  audit: AuditLog;
}

export interface Api {
  app: FastifyInstance;
  /** Every route and who may call it: the role table, as the routes registered it. */
  routes: readonly RouteAccess[];
}

export async function buildApi(deps: ApiDeps): Promise<Api> {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // A route param may be a device name: up to 128 characters of any kind, percent-encoded.
    routerOptions: { maxParamLength: 128 * 12 },
    // A connection that sends or takes nothing for two minutes is closed (an upgraded fleet
    // stream is not: Node drops its timeout handler on upgrade). Uploads may be long, so there
    // is no bound on a whole request, only on its silences.
    connectionTimeout: 120_000,
    requestTimeout: 0,
    // Timeouts are checked every second rather than Node's default 30. Over TLS a device may
    // show its certificate (asked for, not required: people and scripts use tokens).
    ...(deps.ctx.tls
      ? { https: { ...serverContextOptions(deps.ctx.tls.http, deps.ctx.tls.caPem), requestCert: true, rejectUnauthorized: false, handshakeTimeout: 10_000, connectionsCheckingInterval: 1000 } }
      : { http: { connectionsCheckingInterval: 1000 } }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });

  // nginx's client_header_timeout: a stranger has 10 s to send the request's headers.
  app.server.headersTimeout = 10_000;


  app.setErrorHandler((err: FastifyError | OutpostError, request, reply) => {
    if (err instanceof OutpostError) return reply.status(err.status).send(err.toJSON());
    // A write that found the disk full costs that request, never the relay.
    if (isDiskFull(err)) {
      const refused = deps.disk.refused();
      return reply.status(refused.status).send(refused.toJSON());
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      return reply.status(400).send({ error: { code: 'OUTPOST_ERR_BAD_REQUEST', message: `${fe.validationContext ?? 'request'} ${fe.message.replace(/^(body|params|querystring)\s*/, '')}` } });
    }
    if (fe.statusCode && fe.statusCode < 500) {
      return reply.status(fe.statusCode).send({ error: { code: fe.statusCode === 413 ? 'OUTPOST_ERR_PAYLOAD_TOO_LARGE' : 'OUTPOST_ERR_BAD_REQUEST', message: fe.message } });
    }
    request.log.error({ err, url: request.url }, 'request failed');
    return reply.status(500).send({ error: { code: 'OUTPOST_ERR_INTERNAL', message: 'internal error; the relay log has details' } });
  });
  // An upload (a model, a bundle, a job output) that cannot fit is refused before it is read.
  app.addHook('onRequest', async (request) => {
    const length = Number(request.headers['content-length'] ?? 0);
    if (request.method === 'POST' && length > 64 * 1024) await deps.disk.refuseIfNoRoomFor(length);
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ error: { code: 'OUTPOST_ERR_NOT_FOUND', message: `no route ${request.method} ${request.url}` } });
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    request.log.debug({ method: request.method, url: route, status: reply.statusCode, ms: reply.elapsedTime }, 'http');
  });

  // Before any route: a route that does not say who may call it is refused here.
  const routes = guardRoutes(app, { tokens: deps.tokens, store: deps.ctx.store });
  recordRequests(app, deps.audit);

  await openapiRoutes(app, { version: RELAY_VERSION });
  await app.register(healthRoutes);
  await app.register(whoamiRoutes);
  await app.register(auditRoutes, deps);
  await app.register(enrollRoutes, deps);
  await app.register(tokenRoutes, deps);
  await app.register(deviceRoutes, deps);
  await app.register(deviceCertificateRoutes, deps);
  await app.register(deviceStateRoutes, deps);
  await app.register(modelRoutes, deps);
  await app.register(deploymentRoutes, deps);
  await app.register(artifactRoutes, deps);
  await app.register(metricsRoutes, deps);
  await app.register(jobRoutes, deps);
  await app.register(targetRoutes, deps);
  await app.register(dashboardRoutes);
  attachFleetStream(app, { tokens: deps.tokens, stream: deps.stream });
  return { app, routes };
}
