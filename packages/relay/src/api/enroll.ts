// POST /v1/enroll: a device trades a one-time enrollment token for its id and secret, and its
// CSR for a certificate. GET /v1/ca: the relay's CA, for a device to check against its token's
// fingerprint before it trusts (and sends its token to) this relay.

import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { OutpostError, type Labels } from '@outpost/shared';
import { enrollDevice } from '../fleet/enrollment.js';
import { syncSelectorMembership } from '../fleet/deployments.js';
import { bearerToken } from './auth.js';
import { auditTarget } from './audit.js';
import { checkDeviceLabels, labelsSchema } from './schemas.js';
import type { ApiDeps } from './server.js';

/**
 * A cluster's nodes in an order of the device's own (a rotation picked by its id), so a fleet
 * spreads over the nodes instead of every device trying the first one first.
 */
export function spreadNodes(urls: string[], deviceId: string): string[] {
  if (urls.length < 2) return urls;
  const k = createHash('sha256').update(deviceId).digest().readUInt32BE(0) % urls.length;
  return [...urls.slice(k), ...urls.slice(0, k)];
}

export async function enrollRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/v1/ca', { config: { access: 'public' } }, async () => {
    const tls = deps.ctx.tls;
    if (!tls) throw new OutpostError('OUTPOST_ERR_NOT_FOUND', 'this relay runs with --insecure: it has no CA');
    return { certificate: tls.caPem, fingerprint: tls.caFingerprint };
  });

  app.post<{ Body: { name?: string; labels?: Labels; csr?: string } }>(
    '/v1/enroll',
    {
      // The enrollment token is checked by enrollDevice, not as a role.
      config: { access: 'public', audit: 'device.enroll' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { name: { type: 'string', maxLength: 128 }, labels: labelsSchema, csr: { type: 'string', maxLength: 4096 } },
        },
      },
    },
    async (request, reply) => {
      const token = bearerToken(request);
      if (!token) throw new OutpostError('OUTPOST_ERR_ENROLL_TOKEN_INVALID', 'missing enrollment token: pass --token (from outpost-relay tokens enroll)');
      const labels = checkDeviceLabels(request.body?.labels);
      const enrollment = await enrollDevice(deps.ctx, token, { name: request.body?.name, labels, csr: request.body?.csr });
      auditTarget(request, enrollment.deviceId, { name: enrollment.name, labels: enrollment.labels, enrollToken: token.split('_')[1] }, { kind: 'device', id: enrollment.deviceId });
      // Selector deployments reach a device that enrolls later.
      await syncSelectorMembership(deps.ctx, enrollment.deviceId);
      reply.status(201);
      const urls = spreadNodes(deps.mqttUrlsFor(request.hostname), enrollment.deviceId);
      return { ...enrollment, mqttUrl: urls[0], ...(urls.length > 1 ? { mqttUrls: urls } : {}), ...(deps.mqttCa ? { mqttCa: deps.mqttCa } : {}) };
    },
  );
}
