// A CA's fingerprint: sha256 of its DER bytes, base64url. Enrollment tokens carry it (as k3s
// join tokens carry their CA's hash), so a device trusts its relay before it sends anything.

import { X509Certificate, createHash } from 'node:crypto';

export function caFingerprint(pem: string | Buffer): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}

/** The same, as colon-separated hex (what `openssl x509 -fingerprint -sha256` prints). */
export function caFingerprintHex(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

/** An enrollment token is `ope_ID_SECRET`, then `.FINGERPRINT` when the relay serves TLS. */
export function formatEnrollToken(credential: string, fingerprint: string | undefined): string {
  return fingerprint ? `${credential}.${fingerprint}` : credential;
}

export function splitEnrollToken(token: string): { credential: string; caFingerprint?: string } {
  const dot = token.lastIndexOf('.');
  if (dot < 0) return { credential: token };
  const fingerprint = token.slice(dot + 1);
  return /^[A-Za-z0-9_-]{43}$/.test(fingerprint) ? { credential: token.slice(0, dot), caFingerprint: fingerprint } : { credential: token };
}

/** A certificate serial in one form (lower-case hex, no leading zeros), however it was printed. */
export function normaliseSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '');
}
