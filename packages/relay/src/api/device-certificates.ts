// Device certificates over HTTP: a device renews its own (POST /v1/devices/me/certificate,
// known by its current certificate, or its secret), and an admin asks a device to renew now
// (POST /v1/devices/{id}/rotate-certificate, `devices rotate`).

import type { FastifyInstance } from 'fastify';
import { OutpostError } from '@outpost/shared';
import { renewDeviceCertificate, rotateDeviceCertificate } from '../fleet/device-certificates.js';
import { auditTarget } from './audit.js';
import { deviceParams } from './schemas.js';
import type { ApiDeps } from './server.js';

export async function deviceCertificateRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx } = deps;
  app.post<{ Body: { csr: string } }>(
    '/v1/devices/me/certificate',
    {
      config: { access: 'device', audit: 'device.renew-certificate' },
      schema: { body: { type: 'object', required: ['csr'], additionalProperties: false, properties: { csr: { type: 'string', maxLength: 4096 } } } },
    },
    async (request) => {
      const caller = request.caller;
      if (caller?.kind !== 'device') throw new OutpostError('OUTPOST_ERR_FORBIDDEN', 'only a device renews its own certificate (with its current one)');
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
