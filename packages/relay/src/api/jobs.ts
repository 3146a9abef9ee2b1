// /v1/bundles and /v1/jobs: upload a job bundle, submit, list, show, logs, cancel, outputs.

import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { ACCELERATOR_PATTERN, OutpostError, checkBundle } from '@outpost/shared';
import type { DeviceCaller } from './auth.js';
import { auditTarget } from './audit.js';
import { MODEL_NAME_PATTERN, checkLabels, idParams, labelsSchema } from './schemas.js';
import type { ApiDeps } from './server.js';
import { strategySchema, toStrategy, type StrategyBody } from './deployments.js';
import type { FederatedRequest } from '../jobs/job-request.js';

interface FederatedBody {
  rounds: number;
  minClients: number;
  fraction?: number;
  roundDeadlineSeconds?: number;
  strategy?: 'fedavg' | 'fedprox';
  proximalMu?: number;
  maxAttempts?: number;
  initialModel: { name: string; version?: number };
  deploy?: { selector: Record<string, string>; strategy?: StrategyBody };
}

function toFederatedRequest({ roundDeadlineSeconds, deploy, ...rest }: FederatedBody): FederatedRequest {
  return {
    ...rest,
    ...(roundDeadlineSeconds !== undefined ? { roundDeadlineMs: Math.round(roundDeadlineSeconds * 1000) } : {}),
    ...(deploy ? { deploy: { selector: deploy.selector, ...(deploy.strategy ? { strategy: toStrategy(deploy.strategy) } : {}) } } : {}),
  };
}

/** `require`: accelerators a device must report (names as agents report them), at most 8. */
const REQUIRE_SCHEMA = { type: 'array', maxItems: 8, uniqueItems: true, items: { type: 'string', pattern: ACCELERATOR_PATTERN } } as const;

export async function jobRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx, artifacts, scheduler } = deps;
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  app.post<{ Body: Readable }>('/v1/bundles', { config: { access: 'deployer', audit: 'bundle.push' } }, async (request, reply) => {
    if (typeof request.body?.pipe !== 'function') throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'send the bundle (tar.gz) as the body with Content-Type: application/octet-stream');
    const staged = await artifacts.stage(request.body, { maxBytes: deps.maxModelBytes });
    try {
      const { files, bytes } = await checkBundle(staged.path);
      await staged.commit();
      auditTarget(request, staged.sha256, { size: staged.size, files });
      reply.status(201);
      return { sha256: staged.sha256, size: staged.size, files, bytes };
    } catch (err) {
      await staged.discard();
      throw err;
    }
  });

  app.post<{ Body: { bundleSha256: string; target: string; nodes?: number; command: string; env?: Record<string, string>; dataset?: string; require?: string[]; timeoutSeconds?: number; rendezvousTimeoutSeconds?: number; registerModel?: { name: string; output: string }; federated?: FederatedBody } }>(
    '/v1/jobs',
    {
      config: { access: 'deployer', audit: 'job.submit' },
      schema: {
        body: {
          type: 'object',
          required: ['bundleSha256', 'target', 'command'],
          additionalProperties: false,
          properties: {
            bundleSha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            target: { type: 'string', minLength: 1, maxLength: 512 },
            nodes: { type: 'integer', minimum: 1, maximum: 1000 },
            command: { type: 'string', minLength: 1, maxLength: 8192 },
            env: { type: 'object', additionalProperties: { type: 'string', maxLength: 8192 }, maxProperties: 128 },
            dataset: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
            require: REQUIRE_SCHEMA,
            // A timer's longest wait (2^31 ms, about 24 days) bounds a job's.
            timeoutSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 2_000_000 },
            rendezvousTimeoutSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 86400 },
            registerModel: {
              type: 'object',
              required: ['name', 'output'],
              additionalProperties: false,
              properties: { name: { type: 'string', pattern: MODEL_NAME_PATTERN }, output: { type: 'string', minLength: 1, maxLength: 512 } },
            },
            federated: {
              type: 'object',
              required: ['rounds', 'minClients', 'initialModel'],
              additionalProperties: false,
              properties: {
                rounds: { type: 'integer', minimum: 1, maximum: 10_000 },
                minClients: { type: 'integer', minimum: 1, maximum: 10_000 },
                fraction: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
                roundDeadlineSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 7 * 86400 },
                strategy: { type: 'string', enum: ['fedavg', 'fedprox'] },
                proximalMu: { type: 'number', minimum: 0, maximum: 1e6 },
                maxAttempts: { type: 'integer', minimum: 1, maximum: 100 },
                initialModel: {
                  type: 'object',
                  required: ['name'],
                  additionalProperties: false,
                  properties: { name: { type: 'string', pattern: MODEL_NAME_PATTERN }, version: { type: 'integer', minimum: 1 } },
                },
                deploy: { type: 'object', required: ['selector'], additionalProperties: false, properties: { selector: labelsSchema, strategy: strategySchema } },
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const { timeoutSeconds, rendezvousTimeoutSeconds, federated, ...rest } = request.body;
      if (federated?.deploy) checkLabels(federated.deploy.selector);
      for (const key of Object.keys(rest.env ?? {})) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || key.startsWith('OUTPOST_')) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--env ${key}: use a variable name that does not start with OUTPOST_`);
      }
      auditTarget(request, rest.target, { bundleSha256: rest.bundleSha256 });
      const job = await scheduler.submit({ ...rest, ...(timeoutSeconds ? { timeoutMs: Math.round(timeoutSeconds * 1000) } : {}), ...(rendezvousTimeoutSeconds ? { rendezvousTimeoutMs: Math.round(rendezvousTimeoutSeconds * 1000) } : {}), ...(federated ? { federated: toFederatedRequest(federated) } : {}) });
      // The command, not its env: env values may be secrets.
      auditTarget(request, job.id, { target: rest.target, nodes: rest.nodes ?? 1, ...(rest.require?.length ? { require: rest.require } : {}), command: rest.command.slice(0, 300), ...(rest.registerModel ? { registerModel: rest.registerModel.name } : {}), ...(federated ? { federated: { rounds: federated.rounds, minClients: federated.minClients, initialModel: federated.initialModel.name } } : {}) });
      reply.status(201);
      return scheduler.summary(job.id);
    },
  );

  // Batch scoring where the data lives: the agents' own runtime over their local dataset.
  app.post<{ Body: { model: string; version?: number; target: string; dataset: string; require?: string[]; outputFormat?: 'jsonl' | 'csv'; timeoutSeconds?: number } }>(
    '/v1/jobs/score',
    {
      config: { access: 'deployer', audit: 'job.score' },
      schema: {
        body: {
          type: 'object',
          required: ['model', 'target', 'dataset'],
          additionalProperties: false,
          properties: {
            model: { type: 'string', pattern: MODEL_NAME_PATTERN },
            version: { type: 'integer', minimum: 1 },
            target: { type: 'string', minLength: 1, maxLength: 512 },
            dataset: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
            require: REQUIRE_SCHEMA,
            outputFormat: { type: 'string', enum: ['jsonl', 'csv'] },
            timeoutSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 2_000_000 },
          },
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      auditTarget(request, b.target, { model: `${b.model}${b.version ? `:${b.version}` : ''}`, dataset: b.dataset });
      const job = await scheduler.submit({
        bundleSha256: '',
        command: '',
        target: b.target,
        dataset: b.dataset,
        ...(b.require ? { require: b.require } : {}),
        ...(b.timeoutSeconds ? { timeoutMs: Math.round(b.timeoutSeconds * 1000) } : {}),
        score: { model: { name: b.model, ...(b.version ? { version: b.version } : {}) }, ...(b.outputFormat ? { format: b.outputFormat } : {}) },
      });
      auditTarget(request, job.id, { target: b.target, model: `${job.spec.score!.model.name}:${job.spec.score!.model.version}`, dataset: b.dataset, nodes: job.spec.nodes });
      reply.status(201);
      return scheduler.summary(job.id);
    },
  );

  app.get('/v1/jobs', { config: { access: 'viewer' } }, async () => ({ jobs: await Promise.all((await ctx.store.jobs.list(200)).map((j) => scheduler.summary(j.id, false))) }));

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', { config: { access: 'viewer' }, schema: { params: idParams } }, async (request) => scheduler.summary(request.params.id));

  app.get<{ Params: { id: string }; Querystring: { after?: string; limit?: string } }>(
    '/v1/jobs/:id/logs',
    {
      config: { access: 'viewer' },
      schema: { params: idParams, querystring: { type: 'object', properties: { after: { type: 'string', pattern: '^[0-9]{1,9}$' }, limit: { type: 'string', pattern: '^[0-9]{1,5}$' } } } },
    },
    async (request) => {
      const job = await scheduler.require(request.params.id);
      const lines = await ctx.store.jobs.logs(job.id, Number(request.query.after ?? 0), Math.min(10_000, Number(request.query.limit ?? 1000)));
      return { jobId: job.id, state: job.state, lines };
    },
  );

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/metrics', { config: { access: 'viewer' }, schema: { params: idParams } }, async (request) => {
    const job = await scheduler.require(request.params.id);
    return { jobId: job.id, points: await ctx.store.jobs.metrics(job.id) };
  });

  app.post<{ Params: { id: string } }>('/v1/jobs/:id/cancel', { config: { access: 'deployer', audit: 'job.cancel' }, schema: { params: idParams } }, async (request) => {
    await scheduler.cancel(request.params.id);
    return scheduler.summary(request.params.id);
  });

  // A device uploads what its run wrote to OUTPOST_OUTPUT_DIR, one file per request.
  app.post<{ Params: { id: string }; Querystring: { rank: string; path: string }; Body: Readable }>(
    '/v1/jobs/:id/outputs',
    { config: { access: 'device' }, schema: { params: idParams, querystring: { type: 'object', required: ['rank', 'path'], properties: { rank: { type: 'string', pattern: '^[0-9]{1,10}$' }, path: { type: 'string', minLength: 1, maxLength: 512 } } } } },
    async (request, reply) => {
      const caller = request.caller as DeviceCaller;
      try {
        await scheduler.addOutput(caller.deviceId, request.params.id, Number(request.query.rank), request.query.path, request.body);
      } catch (err) {
        // A refused upload is not read to its end: the connection closes after the answer.
        reply.header('connection', 'close');
        throw err;
      }
      reply.status(201);
      return { ok: true };
    },
  );
}
