// /v1/deployments: deploy a model version to devices, list, show.

import type { FastifyInstance } from 'fastify';
import type { RolloutStrategy } from '../store/records.js';
import { cancelDeployment, createDeployment, requireDeployment, rollbackDeployment } from '../fleet/deployments.js';
import { explainRollout } from '../fleet/rollout-explain.js';
import { auditTarget } from './audit.js';
import { DEVICE_REF, MODEL_NAME_PATTERN, checkLabels, idParams, labelsSchema } from './schemas.js';
import { deploymentView } from '../fleet/views.js';
import type { ApiDeps } from './server.js';
import { ServingConfig } from '@outpost/shared';

export interface StrategyBody {
  kind?: 'all' | 'rolling';
  batch?: number | string;
  canary?: number;
  failureThreshold?: number | string;
  healthWindowSeconds?: number;
}

/** Defaults: `all` releases every device at once; a staged rollout stops at its first failure. */
export function toStrategy(b: StrategyBody): RolloutStrategy {
  const kind = b.kind ?? 'all';
  const staged = kind === 'rolling' || (b.canary ?? 0) > 0;
  return {
    kind,
    batch: kind === 'rolling' ? (b.batch ?? 1) : '100%',
    canary: b.canary ?? 0,
    failureThreshold: b.failureThreshold ?? (staged ? 0 : null),
    healthWindowMs: Math.round((b.healthWindowSeconds ?? 0) * 1000),
  };
}

/** A rollout's strategy in a request body (deploy, and a federated job's rollout of its result). */
export const strategySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    kind: { type: 'string', enum: ['all', 'rolling'] },
    batch: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^([1-9][0-9]?|100)%$' }] },
    canary: { type: 'integer', minimum: 0 },
    failureThreshold: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^([0-9][0-9]?|100)%$' }] },
    healthWindowSeconds: { type: 'number', minimum: 0, maximum: 86400 },
  },
} as const;

export async function deploymentRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx } = deps;

  app.post<{ Body: { model: string; version?: number; devices?: string[]; selector?: Record<string, string>; strategy?: StrategyBody; serving?: ServingConfig; allowEmpty?: boolean; force?: boolean } }>(
    '/v1/deployments',
    {
      config: { access: 'deployer', audit: 'deploy' },
      schema: {
        body: {
          type: 'object',
          required: ['model'],
          additionalProperties: false,
          properties: {
            model: { type: 'string', pattern: MODEL_NAME_PATTERN },
            version: { type: 'integer', minimum: 1 },
            devices: { type: 'array', items: DEVICE_REF, minItems: 1, maxItems: 10000 },
            selector: labelsSchema,
            strategy: strategySchema,
            // Strict here (a typo is a 400); agents accept fields they do not know yet.
            serving: { ...ServingConfig, additionalProperties: false },
            allowEmpty: { type: 'boolean' },
            force: { type: 'boolean' },
          },
        },
      },
    },
    async (request, reply) => {
      if (request.body.selector) checkLabels(request.body.selector);
      const { strategy, ...rest } = request.body;
      auditTarget(request, request.body.version ? `${request.body.model}:${request.body.version}` : request.body.model);
      const { deployment, notice } = await createDeployment(ctx, { ...rest, ...(strategy ? { strategy: toStrategy(strategy) } : {}) });
      auditTarget(request, deployment.id, { model: `${deployment.model}:${deployment.version}`, ...(deployment.selector ? { selector: deployment.selector } : { devices: deployment.devices.length }), ...(strategy ? { strategy: strategy.kind ?? 'all' } : {}) });
      reply.status(201);
      return { ...deploymentView(deployment), ...(notice ? { notice } : {}) };
    },
  );

  // Query values are strings (types are not coerced, so bodies stay strict).
  app.get<{ Querystring: { limit?: string } }>(
    '/v1/deployments',
    { config: { access: 'viewer' }, schema: { querystring: { type: 'object', properties: { limit: { type: 'string', pattern: '^([1-9][0-9]{0,2}|1000)$' } } } } },
    async (request) => ({ deployments: (await ctx.store.deployments.list(Number(request.query.limit ?? 100))).map(deploymentView) }),
  );

  // One deployment, with what a person asks of a staged rollout: stage, canary, windows, why.
  app.get<{ Params: { id: string } }>('/v1/deployments/:id', { config: { access: 'viewer' }, schema: { params: idParams } }, async (request) => {
    const d = await requireDeployment(ctx, request.params.id);
    const view = deploymentView(d);
    const explained = explainRollout(d, (deviceId) => deps.rollouts.windowLeftMs(d.id, deviceId, d.strategy?.healthWindowMs ?? 0));
    // Names from one read of the registry, not one query per device of a big rollout.
    const all = await ctx.store.devices.list();
    const names = new Map(all.map((dev) => [dev.id, dev.name]));
    // The execution provider each device runs this version on, as it reported (it may have skipped some of the deployment's).
    const providers = new Map(all.flatMap((dev) => {
      const m = dev.reported?.models.find((r) => r.name === d.model && r.sha256 === d.sha256 && r.state === 'serving' && r.executionProvider);
      return m ? [[dev.id, { executionProvider: m.executionProvider!, ...(m.providersSkipped?.length ? { providersSkipped: m.providersSkipped } : {}) }] as const] : [];
    }));
    return {
      ...view,
      ...(explained ? { stage: explained.stage, canary: explained.canary } : {}),
      devices: view.devices.map((x) => ({ ...x, name: names.get(x.deviceId) ?? null, ...(providers.get(x.deviceId) ?? {}), ...(explained?.devices[x.deviceId] ?? {}) })),
    };
  });

  app.post<{ Params: { id: string } }>('/v1/deployments/:id/cancel', { config: { access: 'deployer', audit: 'deployment.cancel' }, schema: { params: idParams } }, async (request) =>
    deploymentView(await cancelDeployment(ctx, request.params.id)),
  );

  app.post<{ Params: { id: string } }>('/v1/deployments/:id/rollback', { config: { access: 'deployer', audit: 'deployment.rollback' }, schema: { params: idParams } }, async (request) =>
    deploymentView(await rollbackDeployment(ctx, request.params.id)),
  );
}
