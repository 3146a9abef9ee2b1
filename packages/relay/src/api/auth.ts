// Who is calling the HTTP API: an API token (`opa_…`) or a device secret (`ods_…`),
// both as `Authorization: Bearer …`, both checked in constant time against stored hashes;
// or, over TLS, a device's certificate from the relay's CA (subject = device id).

import type { FastifyRequest } from 'fastify';
import { OutpostError } from '@outpost/shared';
import { parseCredential, secretMatches } from '../auth/secrets.js';
import { deviceSecretMatches } from '../fleet/enrollment.js';
import type { FleetContext } from '../fleet/context.js';
import { certificateStands } from '../fleet/device-certificates.js';
import type { TLSSocket } from 'node:tls';
import { peerDevice } from '../tls/peer-device.js';

export type Caller = { kind: 'api'; tokenId: string } | { kind: 'device'; deviceId: string };

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

function unauthorized(message = 'missing or wrong token: pass --token or set OUTPOST_TOKEN (the relay printed its admin token on first start)'): OutpostError {
  return new OutpostError('OUTPOST_ERR_UNAUTHORIZED', message);
}

/**
 * The device a request's client certificate names, when it is one the relay stands by; a
 * certificate that does not stand (revoked, replaced) is refused with why, not ignored.
 */
function certificateDevice(ctx: FleetContext, request: FastifyRequest): string | undefined {
  const cert = ctx.tls ? peerDevice(request.raw.socket as TLSSocket) : undefined;
  if (!cert) return undefined;
  if ('refused' in cert) throw unauthorized(`the device certificate is refused: ${cert.refused}`);
  const why = certificateStands(ctx.store, cert.deviceId, cert.serial);
  if (why) throw unauthorized(`the device certificate is refused: ${why}`);
  return cert.deviceId;
}

export function identifyCaller(ctx: FleetContext, request: FastifyRequest): Caller | undefined {
  const token = bearerToken(request);
  if (!token) {
    const deviceId = certificateDevice(ctx, request);
    return deviceId ? { kind: 'device', deviceId } : undefined;
  }
  const api = parseCredential('opa', token);
  if (api) {
    const record = ctx.store.getApiToken(api.id);
    return record && secretMatches(api.secret, record.hash) ? { kind: 'api', tokenId: record.id } : undefined;
  }
  const device = parseCredential('ods', token);
  if (device) {
    const deviceId = `dev_${device.id}`;
    return deviceSecretMatches(ctx.store, deviceId, token) ? { kind: 'device', deviceId } : undefined;
  }
  return undefined;
}

/** preHandler for admin routes. */
export function requireApiToken(ctx: FleetContext) {
  return async (request: FastifyRequest): Promise<void> => {
    const caller = identifyCaller(ctx, request);
    if (!caller) throw unauthorized();
    if (caller.kind !== 'api') throw new OutpostError('OUTPOST_ERR_FORBIDDEN', 'a device credential cannot use the admin API');
  };
}

export function requireCaller(ctx: FleetContext, request: FastifyRequest): Caller {
  const caller = identifyCaller(ctx, request);
  if (!caller) throw unauthorized('missing or wrong credential: use an API token or the device secret');
  return caller;
}
