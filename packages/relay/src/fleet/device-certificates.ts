// Device certificates: issued from a device's CSR at enrollment and at each renewal, and
// checked wherever a device shows one (MQTT CONNECT, HTTP requests). A certificate stands
// while its device exists and its serial is the newest issued or the one just before (a
// device that renewed but has not reconnected yet); removing the device revokes both at once.

import { OutpostError } from '@outpost/shared';
import type { Store } from '../store/store.js';
import type { FleetContext } from './context.js';
import { publishDesiredState } from './desired-state.js';
import { requireDevice } from './devices.js';

export interface IssuedDeviceCertificate {
  /** PEM, the device's certificate. */
  certificate: string;
  /** PEM, the relay's CA (to verify the relay with, and to store). */
  caCertificate: string;
  expiresAt: string;
}

/** Undefined when the certificate stands, else why not. */
export async function certificateStands(store: Store, deviceId: string, serial: string): Promise<string | undefined> {
  const cert = await store.devices.certificate(deviceId);
  if (!cert) return `device ${deviceId} no longer exists (removed): its certificate is revoked`;
  if (cert.serial !== serial && cert.previousSerial !== serial) return `this certificate of ${deviceId} was replaced by a newer one`;
  return undefined;
}

/** Signs the CSR as the device's certificate; a bad CSR is a 400 naming what is wrong. */
export async function signDeviceCertificate(ctx: FleetContext, deviceId: string, csr: string): Promise<{ issued: IssuedDeviceCertificate; serial: string; notAfter: number }> {
  if (!ctx.tls) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'this relay runs with --insecure and issues no certificates');
  try {
    const cert = await ctx.tls.issueDeviceCert(csr, deviceId);
    return { issued: { certificate: cert.pem, caCertificate: ctx.tls.caPem, expiresAt: new Date(cert.notAfter).toISOString() }, serial: cert.serial, notAfter: cert.notAfter };
  } catch (err) {
    if ((err as Error).name === 'CsrError') throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `csr: ${(err as Error).message}`);
    throw err;
  }
}

/**
 * A renewal: a new certificate for a known device, recorded. The certificate the device renewed
 * with stays good beside it, until the device has switched (its MQTT session uses it until it
 * reconnects); every other one ends now. A renewal with the secret (the certificate had ended),
 * or the one `devices rotate` asked for, keeps none: after a rotation the device is
 * disconnected, so it comes back with the new key, and a copied old key is worth nothing.
 */
export async function renewDeviceCertificate(ctx: FleetContext, deviceId: string, csr: string, renewedWith: string | undefined): Promise<IssuedDeviceCertificate> {
  const current = await ctx.store.devices.certificate(deviceId);
  const rotating = (current?.renewBefore ?? 0) > (current?.issuedAt ?? 0);
  const { issued, serial, notAfter } = await signDeviceCertificate(ctx, deviceId, csr);
  await ctx.store.devices.setCertificate(deviceId, { serial, issuedAt: ctx.now(), expiresAt: notAfter }, rotating ? null : (renewedWith ?? null));
  ctx.log.info({ deviceId, serial, expiresAt: issued.expiresAt, rotated: rotating }, 'device certificate renewed');
  if (rotating) setImmediate(() => ctx.disconnectDevice?.(deviceId));
  return issued;
}

/**
 * `devices rotate`: the device renews its certificate at once (told through its desired state,
 * so an offline device does it when it is back). Its current certificate stays good until the
 * renewal, as at any renewal.
 */
export async function rotateDeviceCertificate(ctx: FleetContext, ref: string): Promise<{ deviceId: string; requestedAt: string }> {
  if (!ctx.tls) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'this relay runs with --insecure: devices have no certificates to rotate');
  const device = await requireDevice(ctx, ref);
  const at = ctx.now();
  await ctx.store.devices.setCertificateRenewBefore(device.id, at);
  await publishDesiredState(ctx, device.id);
  ctx.log.info({ deviceId: device.id }, 'device certificate rotation asked for');
  return { deviceId: device.id, requestedAt: new Date(at).toISOString() };
}
