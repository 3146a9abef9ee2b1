// /v1/devices: list, show, label, remove, and the agent's recent log lines. `{id}` is a device id or name (fleet/devices.ts).

import type { FastifyInstance } from 'fastify';
import { MAX_LOGS_REQUEST_LINES, OutpostError, parseDuration } from '@outpost/shared';
import { labelDevice, removeDevice, requireDevice, viewDevice } from '../fleet/devices.js';
import { auditTarget } from './audit.js';
import { checkDeviceLabels, deviceParams } from './schemas.js';
import { syncSelectorMembership } from '../fleet/deployments.js';
import { explainDevice } from '../fleet/desired-state.js';
import type { ApiDeps } from './server.js';

export async function deviceRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx } = deps;

  app.get('/v1/devices', { config: { access: 'viewer' } }, async () => ({ devices: (await ctx.store.devices.list()).map((d) => viewDevice(ctx, d)) }));

  app.get<{ Params: { id: string } }>('/v1/devices/:id', { config: { access: 'viewer' }, schema: { params: deviceParams } }, async (request) => {
    const device = await requireDevice(ctx, request.params.id);
    return { ...viewDevice(ctx, device), follows: await explainDevice(ctx, device.id) };
  });

  app.get<{ Params: { id: string }; Querystring: { range?: string } }>(
    '/v1/devices/:id/health',
    { config: { access: 'viewer' }, schema: { params: deviceParams, querystring: { type: 'object', properties: { range: { type: 'string', maxLength: 16 } } } } },
    async (request) => {
      const { id } = await requireDevice(ctx, request.params.id);
      let rangeMs = 60 * 60_000;
      if (request.query.range) {
        try {
          rangeMs = parseDuration(request.query.range);
        } catch (err) {
          throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `range: ${(err as Error).message}`);
        }
      }
      return ctx.history.series(id, rangeMs);
    },
  );

  // Asked of the device over MQTT while the caller waits; the answer is not kept.
  app.get<{ Params: { id: string }; Querystring: { after?: string; limit?: string } }>(
    '/v1/devices/:id/logs',
    { config: { access: 'viewer' }, schema: { params: deviceParams, querystring: { type: 'object', additionalProperties: false, properties: { after: { type: 'string', pattern: '^[0-9]{1,16}$' }, limit: { type: 'string', pattern: '^[0-9]{1,4}$' } } } } },
    async (request) => {
      const { id } = await requireDevice(ctx, request.params.id);
      const after = request.query.after === undefined ? undefined : Number(request.query.after);
      const limit = Number(request.query.limit ?? 100);
      if (after !== undefined && after > Number.MAX_SAFE_INTEGER) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `after: at most ${Number.MAX_SAFE_INTEGER}`);
      if (limit < 1 || limit > MAX_LOGS_REQUEST_LINES) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `limit: 1 to ${MAX_LOGS_REQUEST_LINES} lines`);
      const lines = await ctx.deviceLogs.fetch(id, { after, limit });
      return { deviceId: id, lines };
    },
  );

  app.patch<{ Params: { id: string }; Body: { labels: Record<string, string | null> } }>(
    '/v1/devices/:id/labels',
    {
      config: { access: 'admin', audit: 'device.label' },
      schema: {
        params: deviceParams,
        body: {
          type: 'object',
          required: ['labels'],
          additionalProperties: false,
          properties: { labels: { type: 'object', additionalProperties: { type: ['string', 'null'] }, maxProperties: 64 } },
        },
      },
    },
    async (request) => {
      const set = Object.fromEntries(Object.entries(request.body.labels).filter((e): e is [string, string] => e[1] !== null));
      checkDeviceLabels(set);
      const device = await labelDevice(ctx, request.params.id, request.body.labels);
      auditTarget(request, device.id, { changes: request.body.labels });
      await syncSelectorMembership(ctx, device.id);
      return viewDevice(ctx, device);
    },
  );

  app.delete<{ Params: { id: string } }>('/v1/devices/:id', { config: { access: 'admin', audit: 'device.remove' }, schema: { params: deviceParams } }, async (request, reply) => {
    const device = await requireDevice(ctx, request.params.id);
    auditTarget(request, device.id, { name: device.name });
    await removeDevice(ctx, device.id);
    reply.status(204);
  });
}
