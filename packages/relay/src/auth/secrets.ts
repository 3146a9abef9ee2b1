// Random credentials, stored only as hashes and compared in constant time.
// A credential is `{kind}_{id}_{secret}`: the id finds the record, the secret is checked
// against its hash with timingSafeEqual, so lookups never compare secrets by index.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CredentialKind } from '@outpost/shared';

export type { CredentialKind };

export function newId(prefix: string, bytes = 6): string {
  return `${prefix}_${randomBytes(bytes).toString('hex')}`;
}

export function newSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** sha256 is enough here: secrets are 256 random bits, not passwords a person chose. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export function formatCredential(kind: CredentialKind, id: string, secret: string): string {
  return `${kind}_${id}_${secret}`;
}

/** Splits a credential into its id and secret; null when it is not of the given kind. */
export function parseCredential(kind: CredentialKind, text: string): { id: string; secret: string } | null {
  const match = new RegExp(`^${kind}_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$`).exec(text);
  return match ? { id: match[1]!, secret: match[2]! } : null;
}
