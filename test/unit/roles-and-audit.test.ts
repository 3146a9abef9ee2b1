// Roles, API tokens and the audit log, on a real SQLite store with a clock the test moves:
// role order and messages, token names, expiry, revocation and the last admin, when a token was
// last used, and the audit log's bound, its refusal throttle and that it is append-only.

import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../packages/relay/dist/store/sqlite-store.js';
import { ApiTokens, MAX_TOKEN_TTL_MS } from '../../packages/relay/dist/auth/api-tokens.js';
import { AuditLog, actorName } from '../../packages/relay/dist/auth/audit.js';
import { accessText, forbiddenMessage, isRole, roleAllows, roleNeeded, tokenNameProblem } from '../../packages/relay/dist/auth/roles.js';
import { authorize, guardRoutes } from '../../packages/relay/dist/api/access.js';
import { parseSince } from '../../packages/relay/dist/api/audit.js';
import { hashSecret } from '../../packages/relay/dist/auth/secrets.js';

// fastify and better-sqlite3 are the relay's dependencies, not the workspace root's.
const relayRequire = createRequire(new URL('../../packages/relay/package.json', import.meta.url));
const Fastify = relayRequire('fastify') as () => Parameters<typeof guardRoutes>[0];
const Database = relayRequire('better-sqlite3') as new (file: string) => { prepare(sql: string): { run(): unknown }; close(): void };

function tempStore(t: Test): { store: SqliteStore; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-roles-'));
  const file = join(dir, 'relay.db');
  const store = new SqliteStore(file);
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, file };
}

t.test('roles are ordered, and a refusal says what is needed and what the token is', async (t) => {
  t.ok(roleAllows('admin', 'viewer'));
  t.ok(roleAllows('deployer', 'deployer'));
  t.notOk(roleAllows('viewer', 'deployer'));
  t.notOk(roleAllows('deployer', 'admin'));
  t.ok(isRole('viewer'));
  t.notOk(isRole('root'));
  t.equal(roleNeeded('public'), null);
  t.equal(roleNeeded('device'), null);
  t.equal(roleNeeded('viewer+device'), 'viewer');
  t.equal(roleNeeded('deployer'), 'deployer');
  t.equal(forbiddenMessage('deployer', { name: 'ci-bot', role: 'viewer' }), 'this needs the deployer role; token ci-bot is a viewer: ask an admin for a deployer token (outpost-relay tokens create --role deployer)');
  t.equal(forbiddenMessage('admin', { name: 'ci-bot', role: 'deployer' }), 'this needs the admin role; token ci-bot is a deployer: ask an admin for an admin token (outpost-relay tokens create --role admin)');
  t.match(accessText('public'), /no credential/);
  t.match(accessText('device'), /the device's certificate \(mutual TLS\) or its secret/);
  t.match(accessText('viewer+device'), /any role, or a device's certificate or secret/);
  t.match(accessText('admin'), /admin role\.$/);
  t.match(accessText('viewer'), /viewer role or higher/);

  const token = { kind: 'token', id: 'a1b2c3d4e5f6', name: 'ci-bot', role: 'viewer', expiresAt: null } as const;
  const device = { kind: 'device', deviceId: 'dev_a1b2c3d4e5f6' } as const;
  t.doesNotThrow(() => authorize('public', undefined, 'GET /v1/health'));
  t.throws(() => authorize('viewer', undefined, 'GET /v1/devices'), { code: 'OUTPOST_ERR_UNAUTHORIZED', message: /pass --token/ });
  t.throws(() => authorize('device', undefined, 'POST /x'), { code: 'OUTPOST_ERR_UNAUTHORIZED', message: /the device's certificate or secret/ });
  t.throws(() => authorize('viewer+device', undefined, 'GET /a'), { code: 'OUTPOST_ERR_UNAUTHORIZED', message: /API token or the device secret/ });
  t.throws(() => authorize('viewer', device, 'GET /v1/devices'), { code: 'OUTPOST_ERR_FORBIDDEN', message: /not GET \/v1\/devices: that needs an API token with the viewer role/ });
  t.doesNotThrow(() => authorize('viewer+device', device, 'GET /a'));
  t.doesNotThrow(() => authorize('device', device, 'POST /x'));
  t.throws(() => authorize('device', token, 'POST /x'), { code: 'OUTPOST_ERR_FORBIDDEN', message: /is for devices/ });
  t.throws(() => authorize('deployer', token, 'POST /v1/deployments'), { code: 'OUTPOST_ERR_FORBIDDEN', message: /needs the deployer role; token ci-bot is a viewer/ });
  t.doesNotThrow(() => authorize('viewer', token, 'GET /v1/devices'));
});

t.test('token names', async (t) => {
  t.equal(tokenNameProblem('ci-bot'), undefined);
  t.equal(tokenNameProblem('alice.smith_2'), undefined);
  t.match(tokenNameProblem(''), /use 1 to 64 letters/);
  t.match(tokenNameProblem('ci bot'), /use 1 to 64 letters/);
  t.match(tokenNameProblem('-lead'), /starting with a letter or digit/);
  t.match(tokenNameProblem('x'.repeat(65)), /use 1 to 64/);
  t.match(tokenNameProblem('caméra'), /use 1 to 64/);
  t.match(tokenNameProblem(`evil\nname`), /use 1 to 64/);
  t.match(tokenNameProblem('a1b2c3d4e5f6'), /looks like a token id/);
});

t.test('API tokens: create, find, expire, revoke, the last admin, last use', async (t) => {
  const { store } = tempStore(t);
  let now = Date.now();
  const tokens = new ApiTokens(store, () => now);
  // The first start's admin token, as relay.ts makes it.
  await store.tokens.add({ id: '0123456789ab', name: 'admin', hash: hashSecret('unused'), role: 'admin' });

  const viewer = await tokens.create({ name: 'ci-bot', role: 'viewer' });
  t.match(viewer.token, /^opa_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  t.match(viewer.view, { name: 'ci-bot', role: 'viewer', expiresAt: null, lastUsedAt: null, revoked: false, expired: false });
  t.notOk(JSON.stringify(await tokens.list()).includes(viewer.token.split('_').slice(2).join('_')), 'no secret in the list');
  t.notOk('hash' in (await tokens.list())[0]!, 'no hash in the list');
  await t.rejects(tokens.create({ name: 'ci-bot', role: 'admin' }), { code: 'OUTPOST_ERR_CONFLICT', message: /a live token is named ci-bot already/ });
  await t.rejects(tokens.create({ name: 'bad name', role: 'viewer' }), { code: 'OUTPOST_ERR_BAD_REQUEST' });
  await t.rejects(tokens.create({ name: 'forever', role: 'viewer', ttlMs: MAX_TOKEN_TTL_MS + 1 }), { code: 'OUTPOST_ERR_BAD_REQUEST', message: /at most 365d/ });
  await t.rejects(tokens.create({ name: 'never', role: 'viewer', ttlMs: 0 }), { code: 'OUTPOST_ERR_BAD_REQUEST' });

  // Authentication: the right secret only; last use written at most once a minute.
  const me = await tokens.authenticate(viewer.token);
  t.match(me, { kind: 'token', name: 'ci-bot', role: 'viewer', expiresAt: null });
  t.equal(await tokens.authenticate(viewer.token.slice(0, -2) + 'xx'), undefined, 'a wrong secret names nobody');
  t.equal(await tokens.authenticate('ods_0123456789ab_aaaaaaaaaaaaaaaaaaaaaaaa'), undefined, 'not an API token');
  t.equal(await tokens.authenticate('opa_ffffffffffff_aaaaaaaaaaaaaaaaaaaaaaaa'), undefined, 'an unknown id');
  const firstUse = (await store.tokens.get(me!.id))!.lastUsedAt;
  t.equal(firstUse, now);
  now += 30_000;
  await tokens.authenticate(viewer.token);
  t.equal((await store.tokens.get(me!.id))!.lastUsedAt, firstUse, 'not written again within the minute');
  now += 31_000;
  await tokens.authenticate(viewer.token);
  t.equal((await store.tokens.get(me!.id))!.lastUsedAt, now, 'written again after it');

  // Expiry: refused with a 401 that says so; the name is free again.
  const short = await tokens.create({ name: 'short', role: 'deployer', ttlMs: 60_000 });
  t.match(await tokens.authenticate(short.token), { role: 'deployer', expiresAt: now + 60_000 });
  t.ok(await tokens.isLive(short.view.id));
  now += 60_000;
  await t.rejects(tokens.authenticate(short.token), { code: 'OUTPOST_ERR_UNAUTHORIZED', message: /^token short expired at .*: ask an admin for a new one/ });
  t.notOk(await tokens.isLive(short.view.id));
  t.notOk(await tokens.isLive('ffffffffffff'));
  t.match((await tokens.list()).find((x) => x.id === short.view.id), { expired: true, revoked: false });
  const again = await tokens.create({ name: 'short', role: 'viewer' });
  t.equal((await tokens.find('short')).id, again.view.id, 'the name finds the live token');

  // Revocation: at once, listeners told, revoking again changes nothing; found by id or name.
  const told: string[] = [];
  tokens.onRevoked((id) => told.push(id));
  const revoked = await tokens.revoke('ci-bot');
  t.match(revoked, { name: 'ci-bot', revoked: true });
  t.same(told, [me!.id]);
  await t.rejects(tokens.authenticate(viewer.token), { code: 'OUTPOST_ERR_UNAUTHORIZED', message: /^token ci-bot was revoked at / });
  t.match(await tokens.revoke(me!.id), { revoked: true }, 'by id, again: still revoked');
  t.same(told, [me!.id], 'no second notice');
  t.equal((await tokens.find('ci-bot')).id, me!.id, 'a revoked name still finds its newest token');
  await t.rejects(tokens.find('ci-bto'), { code: 'OUTPOST_ERR_NOT_FOUND', message: /no token "ci-bto"; did you mean ci-bot\?/ });
  await t.rejects(tokens.find('zzzzzzzz'), { code: 'OUTPOST_ERR_NOT_FOUND', message: /^no token "zzzzzzzz": list them/ });

  // The last admin token that never expires stays; an expiring admin does not count.
  await t.rejects(tokens.revoke('admin'), { code: 'OUTPOST_ERR_CONFLICT', message: /^token admin is the last admin token that does not expire/ });
  const temp = await tokens.create({ name: 'temp-admin', role: 'admin', ttlMs: 3600_000 });
  await t.rejects(tokens.revoke('admin'), { code: 'OUTPOST_ERR_CONFLICT' }, 'an admin token that expires does not count');
  t.match(await tokens.revoke(temp.view.id), { revoked: true }, 'an expiring admin may go');
  const alice = await tokens.create({ name: 'alice', role: 'admin' });
  t.match(await tokens.revoke('admin'), { revoked: true }, 'with another admin, the first may go');
  await t.rejects(tokens.revoke('alice'), { code: 'OUTPOST_ERR_CONFLICT', message: /token alice is the last admin token/ });
  t.ok(await tokens.isLive(alice.view.id));
  t.equal(await store.tokens.count(), 6, 'revoked tokens are still counted: the first start never runs again');
});

t.test('the audit log: bounded, refusals throttled, append-only', async (t) => {
  const { store, file } = tempStore(t);
  let now = 1_700_000_000_000;
  const audit = new AuditLog(store, { now: () => now, keep: 5 });
  const bot = { kind: 'token', id: 'a1b2c3d4e5f6', name: 'ci-bot' } as const;
  for (let i = 0; i < 8; i++) {
    now += 1000;
    await audit.record({ actor: bot, action: 'deploy', target: `dep_${i}`, outcome: 'ok', status: 201, address: '127.0.0.1' });
  }
  const all = await audit.list({ limit: 100 });
  t.same(all.map((e) => e.target), ['dep_7', 'dep_6', 'dep_5', 'dep_4', 'dep_3'], 'the newest 5, newest first');
  t.match(all[0], { who: 'ci-bot', actor: bot, action: 'deploy', outcome: 'ok', status: 201, address: '127.0.0.1', detail: null, at: new Date(now).toISOString() });
  t.same((await audit.list({ since: now - 1500 })).map((e) => e.target), ['dep_7', 'dep_6'], 'since');
  t.same((await audit.list({ before: all[1]!.seq, limit: 2 })).map((e) => e.target), ['dep_5', 'dep_4'], 'paging with before');
  t.equal((await audit.list({ limit: 5000 })).length, 5, 'limit is capped');

  // A token refused over and over: once a minute, the next one counting those left out.
  for (let i = 0; i < 50; i++) await audit.record({ actor: bot, action: 'token.create', target: null, outcome: 'refused', status: 403 });
  t.equal((await audit.list()).filter((e) => e.outcome === 'refused').length, 1, 'one refusal recorded');
  t.equal((await audit.list())[1]!.target, 'dep_7', 'the real entries are still there');
  await audit.record({ actor: bot, action: 'device.remove', target: 'dev_1', outcome: 'refused', status: 403 });
  t.equal((await audit.list()).filter((e) => e.outcome === 'refused').length, 2, 'another action is recorded on its own');
  now += 60_000;
  const next = await audit.record({ actor: bot, action: 'token.create', target: null, outcome: 'refused', status: 403 });
  t.match(next, { detail: { leftOut: 49 } });

  // The relay's own actions and devices are named as people read them.
  const relay = await audit.record({ actor: { kind: 'relay' }, action: 'deployment.rollback', target: 'dep_1', outcome: 'ok', detail: { reason: 'past the threshold' } });
  t.match((await audit.list())[0], { seq: relay!.seq, who: 'relay', actor: { kind: 'relay' }, status: null, address: null, detail: { reason: 'past the threshold' } });
  t.equal(actorName({ kind: 'device', id: 'dev_a1b2c3d4e5f6' }), 'device dev_a1b2c3d4e5f6');
  await audit.record({ actor: { kind: 'device', id: 'dev_a1b2c3d4e5f6' }, action: 'device.enroll', target: 'dev_a1b2c3d4e5f6', outcome: 'ok' });
  t.match((await audit.list())[0], { who: 'device dev_a1b2c3d4e5f6', actor: { kind: 'device', id: 'dev_a1b2c3d4e5f6' } });

  // The store has no method to change an entry, and SQLite refuses one made behind its back.
  t.notOk('updateAudit' in store || 'deleteAudit' in store);
  const db = new Database(file);
  t.teardown(() => db.close());
  t.throws(() => db.prepare("UPDATE audit_log SET action = 'nothing'").run(), /the audit log is append-only/);
});

t.test('since: a duration back from now, or an ISO time', async (t) => {
  const now = Date.parse('2025-01-31T12:00:00Z');
  t.equal(parseSince('1h', now), now - 3600_000);
  t.equal(parseSince('90s', now), now - 90_000);
  t.equal(parseSince('2025-01-31T11:00:00Z', now), now - 3600_000);
  t.equal(parseSince('2025-01-31', now), Date.parse('2025-01-31'));
  t.throws(() => parseSince('yesterday', now), { code: 'OUTPOST_ERR_BAD_REQUEST', message: /give a duration back from now \(1h, 30m, 7d\) or an ISO time/ });
  t.throws(() => parseSince('2025-13-45T99:00:00Z', now), { code: 'OUTPOST_ERR_BAD_REQUEST' });
  t.throws(() => parseSince('5 fortnights', now), { code: 'OUTPOST_ERR_BAD_REQUEST', message: /^since: invalid duration/ });
});

t.test('a route that says nothing about who may call it is refused when it registers', async (t) => {
  const { store } = tempStore(t);
  const app = Fastify();
  t.teardown(() => app.close());
  const routes = guardRoutes(app, { tokens: new ApiTokens(store), store });
  app.get('/fine', { config: { access: 'viewer', audit: 'deploy' } }, async () => ({}));
  t.throws(() => app.get('/forgot', async () => ({})), { message: /^route GET \/forgot says nothing about who may call it: give it config: \{ access \}/ });
  // In a plugin, as the relay's routes are: the plugin, and so the start, fails.
  await t.rejects(async () => {
    await app.register(async (child) => {
      child.post('/also-forgot', { config: {} }, async () => ({}));
    });
  }, { message: /^route POST \/also-forgot says nothing/ });
  t.match(routes, [{ method: 'GET', url: '/fine', access: 'viewer', audit: 'deploy' }]);
});
