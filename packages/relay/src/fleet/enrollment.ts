// Enrollment: an admin makes a one-time token; a device trades it for its id and secret, and
// (over TLS) its CSR for a certificate. The token carries the relay CA's fingerprint, so the
// device can check it reached this relay before it sends the token.

import { OutpostError, formatEnrollToken, formatLabels, notAnEnrollToken, splitEnrollToken, type Labels } from '@outpost/shared';
import { formatCredential, hashSecret, newSecret, parseCredential, secretMatches } from '../auth/secrets.js';
import { randomBytes } from 'node:crypto';
import type { FleetContext } from './context.js';
import type { Store } from '../store/store.js';
import { deviceView } from './views.js';
import { signDeviceCertificate, type IssuedDeviceCertificate } from './device-certificates.js';

export interface EnrollToken {
  token: string;
  /** The relay CA's fingerprint the token carries (undefined with --insecure). */
  caFingerprint?: string;
  expiresAt: number;
  labels: Labels;
  allowDeviceLabels: boolean;
}

export async function createEnrollToken(ctx: FleetContext, opts: { ttlMs: number; labels: Labels; allowDeviceLabels?: boolean }): Promise<EnrollToken> {
  const id = randomBytes(6).toString('hex');
  const secret = newSecret();
  const expiresAt = ctx.now() + opts.ttlMs;
  const allowDeviceLabels = opts.allowDeviceLabels ?? false;
  await ctx.store.enrollment.addToken({ id, hash: hashSecret(secret), labels: opts.labels, allowDeviceLabels, expiresAt, usedAt: null });
  ctx.log.info({ tokenId: id, expiresAt: new Date(expiresAt).toISOString(), allowDeviceLabels }, 'enrollment token created');
  const caFingerprint = ctx.tls?.caFingerprint;
  return { token: formatEnrollToken(formatCredential('ope', id, secret), caFingerprint), caFingerprint, expiresAt, labels: opts.labels, allowDeviceLabels };
}

export interface Enrollment {
  deviceId: string;
  secret: string;
  name: string;
  labels: Labels;
  /** With a CSR over TLS: the device's certificate and the relay's CA. */
  certificate?: IssuedDeviceCertificate;
  /** The MQTT password when the broker has its own (a NATS user JWT); else the secret is. */
  mqttPassword?: string;
  /** The QoS the device subscribes with, when not 1 (NATS). */
  mqttSubscribeQos?: 0 | 1;
}

export async function enrollDevice(ctx: FleetContext, tokenWithFingerprint: string, request: { name?: string; labels?: Labels; csr?: string }): Promise<Enrollment> {
  // The fingerprint is for the device to check; the relay needs only the credential.
  const tokenText = splitEnrollToken(tokenWithFingerprint).credential;
  const invalid = () => new OutpostError('OUTPOST_ERR_ENROLL_TOKEN_INVALID', 'the enrollment token is unknown, used or expired: ask the admin for a new one (outpost-relay tokens enroll)');
  const cred = parseCredential('ope', tokenText);
  // An API token or a device secret pasted here is said to be one (from its prefix alone).
  const wrongKind = notAnEnrollToken(tokenText);
  if (wrongKind) throw new OutpostError('OUTPOST_ERR_ENROLL_TOKEN_INVALID', wrongKind);
  if (!cred) throw invalid();
  const token = await ctx.store.enrollment.getToken(cred.id);
  if (!token || !secretMatches(cred.secret, token.hash)) throw invalid();
  // Labels decide which selector deployments and jobs (with their env values) reach a device,
  // so they come from the admin: a device may add its own only when the token allows it.
  const asked = request.labels ?? {};
  if (Object.keys(asked).length > 0 && !token.allowDeviceLabels) {
    throw new OutpostError(
      'OUTPOST_ERR_FORBIDDEN',
      `this enrollment token does not let the device choose labels (asked for ${formatLabels(asked)}): enroll without --labels${Object.keys(token.labels).length ? ` (the token gives ${formatLabels(token.labels)})` : ''}, or ask the admin for a token made with --allow-device-labels`,
    );
  }
  const deviceId = `dev_${randomBytes(6).toString('hex')}`;
  const secret = formatCredential('ods', deviceId.slice(4), newSecret());
  // Labels from the token (set by the admin) win over labels the device asks for.
  const labels = { ...asked, ...token.labels };
  const name = request.name?.trim() || deviceId;
  // Signed before anything is spent: a bad CSR leaves the token valid for a retry.
  const signed = request.csr !== undefined ? await signDeviceCertificate(ctx, deviceId, request.csr) : undefined;
  // The broker account exists before the device learns its secret, so its first connect works.
  // The token is spent only after that: a broker failure leaves it valid for a retry.
  const login = await ctx.brokerAccounts?.addDevice(deviceId, secret).catch((err: Error) => {
    throw new OutpostError('OUTPOST_ERR_BROKER_UNAVAILABLE', `the MQTT broker did not take the device's account (${err.message}); the enrollment token is still valid: retry`);
  });
  if (!await ctx.store.enrollment.enroll(token.id, ctx.now(), { id: deviceId, name, labels, secretHash: hashSecret(secret) })) {
    await ctx.brokerAccounts?.removeDevice(deviceId).catch(() => {});
    throw invalid();
  }
  if (signed) await ctx.store.devices.setCertificate(deviceId, { serial: signed.serial, issuedAt: ctx.now(), expiresAt: signed.notAfter }, null);
  ctx.log.info({ deviceId, name, certificate: signed ? signed.issued.expiresAt : undefined }, 'device enrolled');
  ctx.events.emit({ type: 'device.enrolled', device: deviceView((await ctx.store.devices.get(deviceId))!) });
  return { deviceId, secret, name, labels, ...(signed ? { certificate: signed.issued } : {}), ...(login ? { mqttPassword: login.password } : {}), ...(login?.subscribeQos !== undefined ? { mqttSubscribeQos: login.subscribeQos } : {}) };
}

/** Checks a device's MQTT or HTTP credentials in constant time. */
export async function deviceSecretMatches(store: Store, deviceId: string, secret: string): Promise<boolean> {
  const hash = await store.devices.secretHash(deviceId);
  return hash !== undefined && secretMatches(secret, hash);
}
