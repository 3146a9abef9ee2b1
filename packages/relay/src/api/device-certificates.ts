// Device certificates over HTTP: a device renews its own (POST /v1/devices/me/certificate,
// known by its current certificate, or its secret), and an admin asks a device to renew now
// (POST /v1/devices/{id}/rotate-certificate, `devices rotate`).

import type { FastifyInstance } from 'fastify';
import { OutpostError } from '@outpost/shared';
import { renewDeviceCertificate, rotateDeviceCertificate } from '../fleet/device-certificates.js';
import { auditTarget } from './audit.js';
import { FloodGuard } from '../broker/flood-guard.js';
import { deviceParams } from './schemas.js';
import type { ApiDeps } from './server.js';

/**
 * Renewals a device may ask for: five at once, then one every ten seconds. An agent renews once
 * in two thirds of a lifetime (and on `devices rotate`); each renewal signs a certificate and
 * writes the store and the audit log, which a device asking in a loop must not fill.
 */
const RENEWALS = { ratePerSec: 0.1, burst: 5 };

export async function deviceCertificateRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx } = deps;
  const renewals = new FloodGuard(RENEWALS);
  app.post<{ Body: { csr: string } }>(
    '/v1/devices/me/certificate',
    {
      config: { access: 'device', audit: 'device.renew-certificate' },
      schema: { body: { type: 'object', required: ['csr'], additionalProperties: false, properties: { csr: { type: 'string', maxLength: 4096 } } } },
    },
    async (request, reply) => {
      const caller = request.caller;
      if (caller?.kind !== 'device') throw new OutpostError('OUTPOST_ERR_FORBIDDEN', 'only a device renews its own certificate (with its current one)');
      if (!renewals.allow(caller.deviceId)) {
        reply.header('retry-after', String(Math.ceil(1 / RENEWALS.ratePerSec)));
        throw new OutpostError('OUTPOST_ERR_RATE_LIMITED', `this device asks for new certificates too often: ${RENEWALS.burst} at once, then at most one renewal every ${1 / RENEWALS.ratePerSec} s`);
      }
      auditTarget(request, caller.deviceId);
      return renewDeviceCertificate(ctx, caller.deviceId, request.body.csr, caller.certificateSerial);
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/devices/:id/rotate-certificate',
    { config: { access: 'admin', audit: 'device.rotate' }, schema: { params: deviceParams } },
    async (request) => {
      const res = await rotateDeviceCertificate(ctx, request.params.id);
      auditTarget(request, res.deviceId);
      return res;
    },
  );
}
