// Who is calling the HTTP API: an API token (`opa_…`) or a device secret (`ods_…`), both as
// `Authorization: Bearer …`, both checked in constant time against stored hashes. What each
// may do is api/access.ts's.

import type { FastifyRequest } from 'fastify';
import { parseCredential } from '../auth/secrets.js';
import { deviceSecretMatches } from '../fleet/enrollment.js';
import type { ApiTokens, TokenCaller } from '../auth/api-tokens.js';
import type { Store } from '../store/store.js';

export type DeviceCaller = { kind: 'device'; deviceId: string };
export type Caller = TokenCaller | DeviceCaller;

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

/**
 * The caller a credential names; undefined for none or a wrong one. A token that matches but
 * was revoked or has expired is a 401 that says so (ApiTokens.authenticate).
 */
export function identifyCredential(tokens: ApiTokens, store: Store, credential: string | undefined): Caller | undefined {
  if (!credential) return undefined;
  const token = tokens.authenticate(credential);
  if (token) return token;
  const device = parseCredential('ods', credential);
  if (device) {
    const deviceId = `dev_${device.id}`;
    return deviceSecretMatches(store, deviceId, credential) ? { kind: 'device', deviceId } : undefined;
  }
  return undefined;
}
