// outpost-relay tokens create | list | revoke: API tokens with a name and a role; and
// tokens enroll: a one-time token a device enrolls with.

import { InvalidArgumentError, type Command } from 'commander';
import { durationOption, examples, parseLabelsOption, type Labels } from '@outpost/shared';
import type { ApiTokenView } from '../auth/api-tokens.js';
import { ROLES, ROLE_DESCRIPTIONS, tokenNameProblem, type Role } from '../auth/roles.js';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { ago, note, print, printJson, table } from './output.js';
import { parseDurationOption } from './parse.js';

function parseRole(value: string): Role {
  if ((ROLES as readonly string[]).includes(value)) return value as Role;
  throw new InvalidArgumentError(`use ${ROLES.join(', ')}.`);
}

function parseTokenName(value: string): string {
  const problem = tokenNameProblem(value);
  if (problem) throw new InvalidArgumentError(`${problem}.`);
  return value;
}

/** An ISO time to the second, as the tables show it. */
export function shortTime(iso: string | null, none = '-'): string {
  return iso ? iso.replace(/\.\d{3}Z$/, 'Z') : none;
}

function tokenState(t: ApiTokenView): string {
  return t.revoked ? 'revoked' : t.expired ? 'expired' : 'live';
}

export function tokensCommand(program: Command): void {
  const tokens = program
    .command('tokens')
    .description('API tokens with a role (viewer, deployer, admin), and enrollment tokens for new devices')
    .addHelpText('after', examples('outpost-relay tokens create --name ci-bot --role deployer --ttl 90d', 'outpost-relay tokens list', 'outpost-relay tokens revoke ci-bot', 'outpost-relay tokens enroll --labels site=lab --ttl 1h'));

  clientOptions(
    tokens
      .command('create')
      .description('make an API token with a name and a role; its secret is printed once, here')
      .requiredOption('--name <name>', 'what the token is for (ci-bot, alice); unique among live tokens', parseTokenName)
      .requiredOption('--role <role>', `what it may do: ${ROLES.join(', ')}`, parseRole)
      .option('--ttl <duration>', 'how long it stays valid (e.g. 12h, 90d; at most 365d); without it, until revoked', parseDurationOption)
      .addHelpText('after', `
Roles:
${ROLES.map((r) => `  ${r.padEnd(9)}${ROLE_DESCRIPTIONS[r]}`).join('\n')}

The token goes to stdout and is never shown again (the relay keeps only its hash); keep it in
a secret store. Revoke it with outpost-relay tokens revoke NAME.

Examples:
  outpost-relay tokens create --name dashboard-wall --role viewer
  outpost-relay tokens create --name ci-bot --role deployer --ttl 90d
  OUTPOST_TOKEN=$(outpost-relay tokens create --name alice --role admin --ttl 30d)
`),
  ).action(async (opts: ClientOptions & { name: string; role: Role; ttl?: number }) => {
    const res = await relayApi(opts).request<ApiTokenView & { token: string }>('POST', '/v1/tokens', { name: opts.name, role: opts.role, ...(opts.ttl !== undefined ? { ttlSeconds: opts.ttl / 1000 } : {}) });
    if (opts.json) printJson(res);
    else print(res.token);
    note(`token ${res.name} (${res.id}, ${res.role}${res.expiresAt ? `, expires ${shortTime(res.expiresAt)}` : ', does not expire'}): this is the only time it is shown; keep it now`);
  });

  clientOptions(
    tokens
      .command('list')
      .description('list API tokens: name, role, expiry, last use (never their secrets)')
      .addHelpText('after', examples('outpost-relay tokens list', 'outpost-relay tokens list --json')),
  ).action(async (opts: ClientOptions) => {
    const { tokens: list } = await relayApi(opts).request<{ tokens: ApiTokenView[] }>('GET', '/v1/tokens');
    if (opts.json) return printJson(list);
    print(table(['ID', 'NAME', 'ROLE', 'STATE', 'CREATED', 'EXPIRES', 'LAST USED'], list.map((t) => [t.id, t.name, t.role, tokenState(t), shortTime(t.createdAt), shortTime(t.expiresAt, 'never'), t.lastUsedAt ? ago(t.lastUsedAt) : 'never'])));
  });

  clientOptions(
    tokens
      .command('revoke')
      .argument('<token>', 'token name or id')
      .description('revoke an API token at once (its open fleet streams are closed too)')
      .addHelpText('after', `
The last admin token that does not expire cannot be revoked: make another admin token first.

Examples:
  outpost-relay tokens revoke ci-bot
  outpost-relay tokens revoke 3f2a9c1b7d0e
`),
  ).action(async (ref: string, opts: ClientOptions) => {
    const res = await relayApi(opts).request<ApiTokenView>('DELETE', `/v1/tokens/${encodeURIComponent(ref)}`);
    if (opts.json) return printJson(res);
    print(`revoked ${res.name} (${res.id}, ${res.role})`);
  });

  clientOptions(
    tokens
      .command('enroll')
      .description('print a one-time enrollment token (single use, expires after --ttl)')
      .option('--labels <k=v,...>', 'labels the enrolled device gets', parseLabelsOption)
      .addOption(durationOption('--ttl <duration>', 'how long the token stays valid (e.g. 15m, 2h, 7d)', parseDurationOption, 15 * 60_000))
      .option('--allow-device-labels', 'let the enrolling device add labels of its own (outpost-agent enroll --labels); the token\'s labels still win')
      .addHelpText('after', `
Labels decide which selector deployments and jobs reach a device, so by default only the
token's labels count and a device that asks for labels of its own is refused.

Examples:
  outpost-relay tokens enroll --labels site=lab --ttl 1h
  outpost-relay tokens enroll --labels site=lab --allow-device-labels   # the device may add e.g. camera=front
`),
  ).action(async (opts: ClientOptions & { labels?: Labels; ttl: number; allowDeviceLabels?: boolean }) => {
    const api = relayApi(opts);
    const res = await api.request<{ token: string; caFingerprint?: string; expiresAt: string; labels: Labels; allowDeviceLabels: boolean }>('POST', '/v1/tokens/enroll', {
      ttlSeconds: opts.ttl / 1000,
      labels: opts.labels ?? {},
      allowDeviceLabels: opts.allowDeviceLabels ?? false,
    });
    if (opts.json) return printJson(res);
    print(res.token);
    const trust = res.caFingerprint ? ` (it carries the relay CA's fingerprint ${res.caFingerprint.slice(0, 8)}…: the device checks the relay against it)` : ' (the relay runs with --insecure: the device cannot check it is talking to this relay)';
    note(`expires ${res.expiresAt}${trust}; on the device: outpost-agent enroll --relay ${api.url} --token ${res.token.slice(0, 8)}…`);
  });
}
