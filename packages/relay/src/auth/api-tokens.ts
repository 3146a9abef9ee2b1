// API tokens (`opa_…`): made with a name and a role, listed without their secrets, revoked at
// once, refused once expired. Only the sha256 of a secret is kept, checked in constant time
// (secrets.ts). The last admin token that never expires cannot be revoked, so nobody locks
// every admin out of the relay.

import { OutpostError, nearest } from '@outpost/shared';
import { formatCredential, hashSecret, newSecret, parseCredential, secretMatches } from './secrets.js';
import { tokenNameProblem, type Role } from './roles.js';
import type { Store } from '../store/store.js';
import type { ApiTokenRecord } from '../store/records.js';
import { randomBytes } from 'node:crypto';

/** The longest a token may live: a year (none at all: it never expires). */
export const MAX_TOKEN_TTL_MS = 365 * 86_400_000;
/** lastUsedAt is written at most this often per token: a read of the API is not a write. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** Who an API token says the caller is. */
export interface TokenCaller {
  kind: 'token';
  id: string;
  name: string;
  role: Role;
  expiresAt: number | null;
}

/** A token as `GET /v1/tokens` shows it: never its secret or hash. */
export interface ApiTokenView {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revoked: boolean;
  revokedAt: string | null;
  expired: boolean;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function apiTokenView(t: ApiTokenRecord, now: number): ApiTokenView {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    createdAt: iso(t.createdAt)!,
    expiresAt: iso(t.expiresAt),
    lastUsedAt: iso(t.lastUsedAt),
    revoked: t.revokedAt !== null,
    revokedAt: iso(t.revokedAt),
    expired: t.expiresAt !== null && t.expiresAt <= now,
  };
}

const live = (t: ApiTokenRecord, now: number) => t.revokedAt === null && (t.expiresAt === null || t.expiresAt > now);

function unauthorized(message: string): OutpostError {
  return new OutpostError('OUTPOST_ERR_UNAUTHORIZED', message);
}

export class ApiTokens {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #revoked = new Set<(tokenId: string) => void>();

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** Makes a token; its secret is in the answer and nowhere else. */
  async create(req: { name: string; role: Role; ttlMs?: number }): Promise<{ token: string; view: ApiTokenView }> {
    const problem = tokenNameProblem(req.name);
    if (problem) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', problem);
    if (req.ttlMs !== undefined && !(req.ttlMs > 0 && req.ttlMs <= MAX_TOKEN_TTL_MS)) {
      throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `ttl: more than zero and at most 365d (leave it out for a token that does not expire)`);
    }
    const now = this.#now();
    const id = randomBytes(6).toString('hex');
    const secret = newSecret();
    // One unit from the name check to the insert: two creates of one name cannot both pass.
    const record = await this.#store.transaction(async (tx) => {
      const taken = (await tx.tokens.list()).find((t) => t.name === req.name && live(t, now));
      if (taken) throw new OutpostError('OUTPOST_ERR_CONFLICT', `a live token is named ${req.name} already (${taken.id}, ${taken.role}): pick another name, or revoke it first (outpost-relay tokens revoke ${req.name})`);
      return tx.tokens.add({ id, name: req.name, hash: hashSecret(secret), role: req.role, expiresAt: req.ttlMs === undefined ? null : now + req.ttlMs });
    });
    return { token: formatCredential('opa', id, secret), view: apiTokenView(record, now) };
  }

  async list(): Promise<ApiTokenView[]> {
    const now = this.#now();
    return (await this.#store.tokens.list()).map((t) => apiTokenView(t, now));
  }

  /** A token by id, or by the name of a live one (a revoked token's name may be in use again). */
  async find(ref: string): Promise<ApiTokenRecord> {
    const byId = await this.#store.tokens.get(ref);
    if (byId) return byId;
    const all = await this.#store.tokens.list();
    const now = this.#now();
    const named = all.filter((t) => t.name === ref);
    const chosen = named.find((t) => live(t, now)) ?? named.at(-1);
    if (chosen) return chosen;
    const hint = nearest(ref, new Set(all.map((t) => t.name)));
    throw new OutpostError('OUTPOST_ERR_NOT_FOUND', `no token ${JSON.stringify(ref.slice(0, 80))}${hint.length ? `; did you mean ${hint.join(', ')}?` : ''}: list them with outpost-relay tokens list`);
  }

  /** Revokes at once; revoking a revoked token again changes nothing. */
  async revoke(ref: string): Promise<ApiTokenView> {
    const token = await this.find(ref);
    const now = this.#now();
    if (token.revokedAt !== null) return apiTokenView(token, now);
    // One unit from the last-admin check to the write: two admins revoking each other at once
    // cannot leave none.
    const revoked = await this.#store.transaction(async (tx) => {
      if (token.role === 'admin' && token.expiresAt === null) {
        const others = (await tx.tokens.list()).filter((t) => t.id !== token.id && t.role === 'admin' && t.expiresAt === null && t.revokedAt === null);
        if (others.length === 0) {
          throw new OutpostError(
            'OUTPOST_ERR_CONFLICT',
            `token ${token.name} is the last admin token that does not expire; revoking it would leave nobody able to manage the relay: create another first (outpost-relay tokens create --name NAME --role admin), then revoke this one`,
          );
        }
      }
      await tx.tokens.revoke(token.id, now);
      return (await tx.tokens.get(token.id))!;
    });
    for (const listener of this.#revoked) listener(token.id);
    return apiTokenView(revoked, now);
  }

  /** Called with a token's id when it is revoked (the fleet stream closes its sockets). */
  onRevoked(listener: (tokenId: string) => void): void {
    this.#revoked.add(listener);
  }

  /**
   * The caller an `opa_…` credential names: undefined when it is not one, or no token matches
   * it; a 401 naming why for a token that matches but was revoked or has expired.
   */
  async authenticate(text: string): Promise<TokenCaller | undefined> {
    const cred = parseCredential('opa', text);
    if (!cred) return undefined;
    const token = await this.#store.tokens.get(cred.id);
    if (!token || !secretMatches(cred.secret, token.hash)) return undefined;
    const now = this.#now();
    if (token.revokedAt !== null) throw unauthorized(`token ${token.name} was revoked at ${iso(token.revokedAt)}: ask an admin for a new one (outpost-relay tokens create)`);
    if (token.expiresAt !== null && token.expiresAt <= now) throw unauthorized(`token ${token.name} expired at ${iso(token.expiresAt)}: ask an admin for a new one (outpost-relay tokens create)`);
    if (token.lastUsedAt === null || now - token.lastUsedAt >= LAST_USED_RESOLUTION_MS) await this.#store.tokens.setLastUsed(token.id, now);
    return { kind: 'token', id: token.id, name: token.name, role: token.role, expiresAt: token.expiresAt };
  }

  /** Whether a token still authenticates: not revoked, not expired. */
  async isLive(tokenId: string): Promise<boolean> {
    const token = await this.#store.tokens.get(tokenId);
    return token !== undefined && live(token, this.#now());
  }
}
