// Who is calling the HTTP API: an API token (`opa_…`) or a device secret (`ods_…`), both as
// `Authorization: Bearer …`, both checked in constant time against stored hashes; or, over
// TLS, a device's certificate from the relay's CA (subject = device id). What each may do is
// api/access.ts's.

import type { FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { OutpostError } from '@outpost/shared';
import { parseCredential } from '../auth/secrets.js';
import { deviceSecretMatches } from '../fleet/enrollment.js';
import { certificateStands } from '../fleet/device-certificates.js';
import { peerDevice } from '../tls/peer-device.js';
import type { ApiTokens, TokenCaller } from '../auth/api-tokens.js';
import type { Store } from '../store/store.js';

/** A device, by its secret or its certificate (then with that certificate's serial). */
export type DeviceCaller = { kind: 'device'; deviceId: string; certificateSerial?: string };
export type Caller = TokenCaller | DeviceCaller;

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

/**
 * The device a request's client certificate names, when it is one the relay stands by; a
 * certificate that does not stand (expired, revoked, replaced) is a 401 that says why.
 */
async function certificateDevice(store: Store, request: FastifyRequest): Promise<DeviceCaller | undefined> {
  const cert = peerDevice(request.raw.socket as TLSSocket);
  if (!cert) return undefined;
  const why = 'refused' in cert ? cert.refused : await certificateStands(store, cert.deviceId, cert.serial);
  if (why) throw new OutpostError('OUTPOST_ERR_UNAUTHORIZED', `the device certificate is refused: ${why}`);
  const { deviceId, serial } = cert as { deviceId: string; serial: string };
  return { kind: 'device', deviceId, certificateSerial: serial };
}

/** The caller of a request: its bearer credential, or else its client certificate. */
export async function identifyRequest(tokens: ApiTokens, store: Store, request: FastifyRequest): Promise<Caller | undefined> {
  const credential = bearerToken(request);
  return credential ? await identifyCredential(tokens, store, credential) : certificateDevice(store, request);
}

/**
 * The caller a credential names; undefined for none or a wrong one. A token that matches but
 * was revoked or has expired is a 401 that says so (ApiTokens.authenticate).
 */
export async function identifyCredential(tokens: ApiTokens, store: Store, credential: string | undefined): Promise<Caller | undefined> {
  if (!credential) return undefined;
  const token = await tokens.authenticate(credential);
  if (token) return token;
  const device = parseCredential('ods', credential);
  if (device) {
    const deviceId = `dev_${device.id}`;
    return await deviceSecretMatches(store, deviceId, credential) ? { kind: 'device', deviceId } : undefined;
  }
  return undefined;
}
