// Roles of API tokens, and what each route takes. Roles are ordered: a deployer may do what a
// viewer may, an admin what a deployer may. Every route names its access (api/access.ts refuses
// to register one that does not), so a new route cannot forget to say who may call it.

import { ROLES, type Role } from '@outpost/shared';

export { ROLES, isRole, roleAllows, type Role } from '@outpost/shared';

/** What each role adds, for help text and docs. */
export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  viewer: 'read everything: devices, models, deployments, jobs, targets, the fleet stream, the dashboard, /metrics',
  deployer: 'also push models and samples, deploy, cancel and roll back, submit and cancel jobs, delete and prune models',
  admin: 'also API tokens, enrollment tokens, device removal and labels, training attach and detach, the audit log',
};

/**
 * What a route takes: no credential (`public`), a device secret alone (`device`), an API token
 * with at least a role, or (`viewer+device`) either a viewer token or a device secret.
 */
export type Access = 'public' | 'device' | Role | 'viewer+device';

export const ACCESS_VALUES: readonly Access[] = ['public', 'device', ...ROLES, 'viewer+device'];

export function isAccess(value: unknown): value is Access {
  return typeof value === 'string' && (ACCESS_VALUES as readonly string[]).includes(value);
}

/** The role an API token needs for a route of this access; null when no token will do. */
export function roleNeeded(access: Access): Role | null {
  if (access === 'public' || access === 'device') return null;
  return access === 'viewer+device' ? 'viewer' : access;
}

const article = (role: Role) => (role === 'admin' ? 'an' : 'a');

/** Who may call a route of this access, as a sentence (the OpenAPI description says it). */
export function accessText(access: Access): string {
  if (access === 'public') return 'Needs no credential.';
  if (access === 'device') return "Needs the device's certificate (mutual TLS) or its secret (ods_…).";
  if (access === 'viewer+device') return "Needs an API token of any role, or a device's certificate or secret (ods_…).";
  return access === 'admin' ? 'Needs an API token with the admin role.' : `Needs an API token with the ${access} role or higher.`;
}

/** The 403 a token gets for something its role does not allow: what it needs, what it is, the fix. */
export function forbiddenMessage(need: Role, token: { name: string; role: Role }): string {
  return `this needs the ${need} role; token ${token.name} is ${article(token.role)} ${token.role}: ask an admin for ${article(need)} ${need} token (outpost-relay tokens create --role ${need})`;
}

/** The token names people give: letters, digits, `.`, `_`, `-`, up to 64; never a token id. */
export const TOKEN_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const TOKEN_ID_PATTERN = '^[0-9a-f]{12}$';

/** Why a token name cannot be used, or undefined when it can. */
export function tokenNameProblem(name: string): string | undefined {
  if (!new RegExp(TOKEN_NAME_PATTERN).test(name)) return `token name ${JSON.stringify(name.slice(0, 80))}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. ci-bot)`;
  if (new RegExp(TOKEN_ID_PATTERN).test(name)) return `token name ${name} looks like a token id (12 hex digits): pick a name people can tell from an id (e.g. ci-bot)`;
  return undefined;
}
