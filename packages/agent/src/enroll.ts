// Enrollment: trade a one-time token for this device's id and secret, and keep them in device.json.
// Over TLS the token carries the relay CA's fingerprint: the agent fetches the CA, checks it
// against that fingerprint before it trusts the relay or sends it anything, then sends a CSR
// for a key made here (it never leaves the device) and keeps the certificate it gets.

import { existsSync, mkdirSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { caCertificates, caFingerprint, isErrorBody, splitEnrollToken, tlsFetch, type ClientTls, type Labels } from '@outpost/shared';
import { DEVICE_FILE, writeDeviceFile, type DeviceFile } from './device-file.js';
import { DeviceTls } from './device-tls.js';

export interface EnrollOptions {
  relayUrl: string;
  token: string;
  dataDir: string;
  name?: string;
  labels?: Labels;
  force?: boolean;
}

function unreachable(relayUrl: string, err: unknown): Error {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (err as Error).message;
  if (code === 'EPROTO' || /wrong version number/i.test(cause?.message ?? '')) return new Error(`${relayUrl} does not speak TLS, but the token says the relay does: check --relay (its port is the relay's --http-port)`);
  if (/CERT|SIGNATURE|ISSUER|ALTNAME/.test(code)) return new Error(`the relay at ${relayUrl} presented a certificate that does not verify (${code}): check that --relay names the relay by a name its certificate covers (outpost-relay start --advertise-host)`);
  return new Error(`cannot reach the relay at ${relayUrl} (${code}): check --relay`);
}

/**
 * The relay's CA, fetched without trusting anything yet (nothing secret is sent), and kept
 * only if its fingerprint is the one the token carries.
 */
async function fetchTrustedCa(relayUrl: string, expected: string): Promise<string> {
  const { Agent } = await import('undici'); // on enrollment only, not in the running agent
  const blind = new Agent({ connect: { rejectUnauthorized: false } });
  let body: unknown;
  try {
    const res = await fetch(`${relayUrl}/v1/ca`, { dispatcher: blind } as RequestInit);
    body = await res.json().catch(() => undefined);
    if (!res.ok) throw new Error(`the relay at ${relayUrl} has no CA to show (${isErrorBody(body) ? body.error.message : res.status}): the token expects one; check --relay`);
  } catch (err) {
    if ((err as Error).message.startsWith('the relay at')) throw err;
    throw unreachable(relayUrl, err);
  } finally {
    await blind.close();
  }
  const pem = (body as { certificate?: unknown })?.certificate;
  // Exactly one CA certificate, and what is kept is rebuilt from the DER that was hashed: a
  // second certificate after the real one would otherwise be trusted with it.
  let cert: X509Certificate | undefined;
  try {
    cert = typeof pem === 'string' && pem.length < 16_384 && pem.split('-----BEGIN CERTIFICATE-----').length === 2 ? new X509Certificate(pem) : undefined;
  } catch {
    cert = undefined;
  }
  if (!cert || !cert.ca) throw new Error(`the relay at ${relayUrl} sent no usable CA certificate (one, marked as a CA): check --relay`);
  const actual = caFingerprint(cert.raw);
  if (actual !== expected) {
    throw new Error(
      `the relay at ${relayUrl} showed a CA whose fingerprint is ${actual}, but the token expects ${expected}: this may not be your relay (something between could be intercepting); nothing was sent. Check --relay, or make a new token on the relay (outpost-relay tokens enroll)`,
    );
  }
  return cert.toString();
}

/** The broker's CA as the relay sent it: CA certificates only, or the enrollment stops here. */
function brokerCa(value: unknown): string {
  const cas = typeof value === 'string' ? caCertificates(value) : undefined;
  if (!cas?.ok) throw new Error("the relay sent a broker CA (--mqtt-ca) that is not a CA certificate: fix the relay's --mqtt-ca file, then enroll again");
  return cas.pem;
}

export async function enroll(opts: EnrollOptions): Promise<DeviceFile & { file: string; labels: Labels; certificateExpiresAt?: string }> {
  if (!opts.force && existsSync(join(opts.dataDir, DEVICE_FILE))) {
    throw new Error(`${join(opts.dataDir, DEVICE_FILE)} exists: this device is enrolled already (pass --force to enroll again)`);
  }
  const relayUrl = opts.relayUrl.replace(/\/+$/, '');
  const { credential, caFingerprint: expected } = splitEnrollToken(opts.token.trim());
  if (expected && relayUrl.startsWith('http:')) throw new Error(`the token says the relay serves TLS: use https:// in --relay (${relayUrl.replace(/^http:/, 'https:')})`);
  if (!expected && relayUrl.startsWith('https:')) throw new Error("this token carries no CA fingerprint (the relay that made it runs with --insecure): use http:// in --relay, or make a new token on a relay that serves TLS");

  let trust: ClientTls | undefined;
  let csr: string | undefined;
  let privateKeyPem: string | undefined;
  if (expected) {
    trust = { ca: await fetchTrustedCa(relayUrl, expected) };
    const x509 = await import('@outpost/shared/x509');
    const keys = await x509.newKeyPair();
    csr = await x509.makeCsr(keys, 'outpost-device');
    privateKeyPem = keys.privateKeyPem;
  }
  let res: Response;
  try {
    res = await tlsFetch(trust)(`${relayUrl}/v1/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: opts.name, labels: opts.labels, csr }),
    });
  } catch (err) {
    throw unreachable(relayUrl, err);
  }
  const body = (await res.json().catch(() => undefined)) as unknown;
  if (!res.ok) throw new Error(isErrorBody(body) ? `${body.error.code}: ${body.error.message}` : `the relay answered ${res.status}`);
  const r = body as { deviceId: string; secret: string; name: string; labels: Labels; mqttUrl: string; mqttUrls?: string[]; mqttPassword?: string; mqttSubscribeQos?: number; mqttCa?: string; certificate?: { certificate: string; caCertificate: string; expiresAt: string } };
  // Over the connection verified above: the CA of the external broker's certificate (--mqtt-ca).
  const mqttCa = r.mqttCa === undefined ? undefined : brokerCa(r.mqttCa);
  if (expected && !r.certificate) throw new Error('the relay sent no device certificate: it is older than this agent; enroll with an agent of its version');
  const device: DeviceFile = {
    deviceId: r.deviceId,
    secret: r.secret,
    relayUrl,
    mqttUrl: r.mqttUrl,
    name: r.name,
    // A cluster's nodes (NATS), and the password its broker takes when it is not the secret (a user JWT).
    ...(Array.isArray(r.mqttUrls) && r.mqttUrls.every((u) => typeof u === 'string') ? { mqttUrls: r.mqttUrls.slice(0, 16) } : {}),
    ...(typeof r.mqttPassword === 'string' ? { mqttPassword: r.mqttPassword } : {}),
    ...(r.mqttSubscribeQos === 0 ? { mqttSubscribeQos: 0 as const } : {}),
  };
  // The TLS files first: device.json is what makes the data dir an enrolled device.
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  if (trust && r.certificate && privateKeyPem) DeviceTls.write(opts.dataDir, { ca: trust.ca, mqttCa, cert: r.certificate.certificate, key: privateKeyPem });
  else DeviceTls.remove(opts.dataDir); // enrolled again, now with a relay without TLS
  const file = writeDeviceFile(opts.dataDir, device);
  return { ...device, file, labels: r.labels, certificateExpiresAt: r.certificate?.expiresAt };
}
