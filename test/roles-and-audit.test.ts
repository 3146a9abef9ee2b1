// Roles, API tokens and the audit log as people use them, on a real relay: an admin makes a
// viewer and a deployer token; the viewer reads and watches but cannot deploy, the deployer
// pushes and deploys but cannot manage tokens or devices; a revoked or expired token is refused
// at once (its fleet stream closed); the last admin token stays; and every change is in the
// audit log with the token's name and the caller's address.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { FIXTURES, RELAY_BIN, enrollDevice, runCli, startRelay, tempDir } from './helpers/programs.js';
import { openStream, refusedUpgrade } from './helpers/stream.js';
import { waitFor } from './helpers/wait.js';

interface TokenView {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revoked: boolean;
  expired: boolean;
}

interface AuditView {
  seq: number;
  at: string;
  who: string;
  actor: { kind: string; id?: string; name?: string };
  action: string;
  target: string | null;
  outcome: 'ok' | 'refused' | 'failed';
  status: number | null;
  address: string | null;
  detail: Record<string, unknown> | null;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Resolves with the close code and reason of a stream the relay ends. */
function closedBy(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

t.test('roles, tokens and the audit log', async (t) => {
  const relay = await startRelay(t);
  const as = (token: string, ...args: string[]) => runCli(RELAY_BIN, args, { ...relay.env, OUTPOST_TOKEN: token });
  const device = await enrollDevice(t, relay, 'cam-1');
  const made: Record<string, { token: string; id: string }> = {};

  await t.test('tokens create prints the token once; tokens list never shows a secret', async (t) => {
    for (const [name, role] of [['ci-viewer', 'viewer'], ['ci-deployer', 'deployer']] as const) {
      const res = await relay.cli('tokens', 'create', '--name', name, '--role', role);
      t.equal(res.code, 0, res.stderr);
      t.match(res.stdout, /^opa_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n$/, 'the token alone on stdout');
      t.match(res.stderr, new RegExp(`^token ${name} \\([0-9a-f]{12}, ${role}, does not expire\\): this is the only time it is shown; keep it now\\n$`));
      made[name] = { token: res.stdout.trim(), id: res.stdout.split('_')[1]! };
    }
    const json = await relay.cli('tokens', 'create', '--name', 'ops', '--role', 'admin', '--ttl', '30d', '--json');
    t.equal(json.code, 0, json.stderr);
    const ops = JSON.parse(json.stdout) as TokenView & { token: string };
    t.match(ops, { name: 'ops', role: 'admin', revoked: false, expired: false, lastUsedAt: null });
    t.ok(Math.abs(Date.parse(ops.expiresAt!) - Date.now() - 30 * 86_400_000) < 60_000, 'expires in 30 days');
    made.ops = { token: ops.token, id: ops.id };

    const list = await relay.cli('tokens', 'list', '--json');
    t.equal(list.code, 0, list.stderr);
    const tokens = JSON.parse(list.stdout) as TokenView[];
    t.same(tokens.map((x) => [x.name, x.role]), [['admin', 'admin'], ['ci-viewer', 'viewer'], ['ci-deployer', 'deployer'], ['ops', 'admin']]);
    t.same(Object.keys(tokens[0]!).sort(), ['createdAt', 'expired', 'expiresAt', 'id', 'lastUsedAt', 'name', 'revoked', 'revokedAt', 'role'], 'no secret, no hash');
    t.ok(tokens[0]!.lastUsedAt, 'the admin token was used');
    const human = await relay.cli('tokens', 'list');
    t.match(human.stdout, /^ID +NAME +ROLE +STATE +CREATED +EXPIRES +LAST USED$/m);
    t.match(human.stdout, new RegExp(`^${made.ops.id}  ops  +admin  +live  +\\S+Z  \\S+Z  never$`, 'm'));
    for (const out of [list.stdout, human.stdout]) {
      t.notMatch(out, /opa_/, 'no token in the list');
      for (const { token } of Object.values(made)) t.notOk(out.includes(token.split('_').slice(2).join('_')), 'no secret in the list');
    }

    const taken = await relay.cli('tokens', 'create', '--name', 'ci-viewer', '--role', 'admin');
    t.equal(taken.code, 1);
    t.match(taken.stderr, new RegExp(`^error: OUTPOST_ERR_CONFLICT: a live token is named ci-viewer already \\(${made['ci-viewer']!.id}, viewer\\): pick another name, or revoke it first`));
    const badName = await relay.cli('tokens', 'create', '--name', 'ci bot', '--role', 'viewer');
    t.equal(badName.code, 1);
    t.match(badName.stderr, /option '--name <name>' argument 'ci bot' is invalid\. token name "ci bot": use 1 to 64 letters/);
    t.match((await relay.cli('tokens', 'create', '--name', 'x', '--role', 'root')).stderr, /argument 'root' is invalid\. use viewer, deployer, admin\./);
    for (const [body, what] of [
      [{ name: 'a1b2c3d4e5f6', role: 'viewer' }, /looks like a token id/],
      [{ name: 'x'.repeat(65), role: 'viewer' }, /must NOT have more than 64 characters/],
      [{ name: 'ok', role: 'root' }, /role must be equal to one of the allowed values/],
      [{ name: 'ok', role: 'viewer', ttlSeconds: 0 }, /ttlSeconds must be > 0/],
      [{ name: 'ok', role: 'viewer', ttlSeconds: 366 * 86_400 }, /ttlSeconds must be <= 31536000/],
      [{ name: 'ok' }, /must have required property 'role'/],
    ] as const) {
      const res = await relay.api<{ error: { code: string; message: string } }>('POST', '/v1/tokens', body);
      t.equal(res.status, 400, JSON.stringify(body));
      t.match(res.body.error.message, what);
    }
    const me = await as(made['ci-viewer']!.token, 'whoami', '--json');
    t.match(JSON.parse(me.stdout), { kind: 'token', id: made['ci-viewer']!.id, name: 'ci-viewer', role: 'viewer', expiresAt: null });
    t.match((await relay.cli('whoami')).stdout, /^token admin \([0-9a-f]{12}\), role admin, does not expire\n$/);
  });
  const viewer = made['ci-viewer']!.token;
  const deployer = made['ci-deployer']!.token;

  await t.test('a viewer reads and watches, and is refused a deploy naming the deployer role', async (t) => {
    const list = await as(viewer, 'devices', 'list', '--json');
    t.equal(list.code, 0, list.stderr);
    for (const path of ['/v1/models', '/v1/deployments', '/v1/jobs', '/v1/targets', '/v1/devices/cam-1', `/v1/devices/${device.deviceId}/health`]) {
      t.equal((await relay.api('GET', path, undefined, viewer)).status, 200, `a viewer reads ${path}`);
    }
    const metrics = await relay.fetch(`${relay.httpUrl}/metrics`, { headers: { authorization: `Bearer ${viewer}` } });
    t.equal(metrics.status, 200, 'a viewer reads /metrics');
    const stream = await openStream(relay.httpUrl, viewer);
    t.teardown(() => stream.close());
    t.match((await stream.next('snapshot')).devices, [{ id: device.deviceId, name: 'cam-1' }], 'a viewer watches the fleet');

    const push = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
    t.equal(push.code, 0, push.stderr);
    const deploy = await as(viewer, 'deploy', 'linear', '--device', 'cam-1');
    t.equal(deploy.code, 1);
    t.equal(deploy.stderr, 'error: OUTPOST_ERR_FORBIDDEN: this needs the deployer role; token ci-viewer is a viewer: ask an admin for a deployer token (outpost-relay tokens create --role deployer)\n');
    t.match((await as(viewer, 'models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).stderr, /^error: OUTPOST_ERR_FORBIDDEN: this needs the deployer role; token ci-viewer is a viewer/m);
    t.match((await as(viewer, 'tokens', 'list')).stderr, /^error: OUTPOST_ERR_FORBIDDEN: this needs the admin role; token ci-viewer is a viewer: ask an admin for an admin token \(outpost-relay tokens create --role admin\)$/m);
    const audit = await relay.api<{ error: { message: string } }>('GET', '/v1/audit', undefined, viewer);
    t.equal(audit.status, 403, 'reading the audit log is for admins');
    t.match(audit.body.error.message, /^this needs the admin role; token ci-viewer is a viewer/);
  });

  let deploymentId = '';
  await t.test('a deployer pushes and deploys, and is refused tokens and device removal naming the admin role', async (t) => {
    const push = await as(deployer, 'models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear', '--allow-signature-change', '--json');
    t.equal(push.code, 0, push.stderr);
    const version = JSON.parse(push.stdout) as { version: number; sha256: string };
    const deploy = await as(deployer, 'deploy', `linear:${version.version}`, '--device', 'cam-1', '--json');
    t.equal(deploy.code, 0, deploy.stderr);
    deploymentId = (JSON.parse(deploy.stdout) as { id: string }).id;
    t.equal((await as(deployer, 'deployments', 'cancel', deploymentId)).code, 0, 'cancel');

    // The device fetches what is deployed to it, with its own secret, as before.
    const artifact = await relay.fetch(`${relay.httpUrl}/v1/artifacts/${version.sha256}`, { headers: { authorization: `Bearer ${device.secret}` } });
    t.equal(artifact.status, 200, 'the device downloads its artifact');
    await artifact.arrayBuffer();
    t.equal((await relay.api('GET', '/v1/devices', undefined, device.secret)).status, 403, 'and a device secret reads nothing else');
    t.equal((await relay.api('GET', '/v1/whoami', undefined, device.secret)).status, 403);
    t.equal(await refusedUpgrade(`${relay.httpUrl.replace(/^http/, 'ws')}/v1/fleet/stream`, { authorization: `Bearer ${device.secret}` }), 401, 'nor watches the fleet');
    const outputs = await relay.api<{ error: { message: string } }>('POST', '/v1/jobs/job_000000000000/outputs?rank=0&path=a', undefined, deployer);
    t.equal(outputs.status, 403);
    t.match(outputs.body.error.message, /^POST \/v1\/jobs\/:id\/outputs is for devices, with their own secret: an API token cannot use it$/);

    const bundle = tempDir(t, 'bundle');
    mkdirSync(join(bundle, 'src'));
    writeFileSync(join(bundle, 'src', 'idle.js'), 'setTimeout(() => {}, 600_000);\n');
    const submitted = await as(deployer, 'jobs', 'submit', bundle, '--target', 'local', '--command', 'node src/idle.js');
    t.equal(submitted.code, 0, submitted.stderr);
    const jobId = submitted.stdout.trim();
    t.equal((await as(deployer, 'jobs', 'cancel', jobId)).code, 0);

    const admin = 'this needs the admin role; token ci-deployer is a deployer: ask an admin for an admin token (outpost-relay tokens create --role admin)';
    for (const args of [['tokens', 'create', '--name', 'sneaky', '--role', 'admin'], ['devices', 'remove', 'cam-1']]) {
      const res = await as(deployer, ...args);
      t.equal(res.code, 1, args.join(' '));
      t.equal(res.stderr, `error: OUTPOST_ERR_FORBIDDEN: ${admin}\n`, args.join(' '));
    }
    for (const [method, path, body] of [['PATCH', '/v1/devices/cam-1/labels', { labels: { site: 'lab' } }], ['POST', '/v1/tokens/enroll', {}], ['POST', '/v1/targets/cam-1/attach', undefined], ['GET', '/v1/tokens', undefined]] as const) {
      const res = await relay.api<{ error: { code: string; message: string } }>(method, path, body, deployer);
      t.equal(res.status, 403, `${method} ${path}`);
      t.equal(res.body.error.message, admin);
    }
    t.equal((await relay.api('GET', '/v1/devices/cam-1', undefined, deployer)).status, 200, 'the device is still there');
    t.equal((await relay.api('PATCH', '/v1/devices/cam-1/labels', { labels: { site: 'lab' } })).status, 200, 'an admin labels it');
    t.equal((await relay.api('POST', '/v1/targets/cam-1/attach')).status, 200, 'and attaches it');
    t.equal((await relay.api('POST', '/v1/targets/cam-1/detach')).status, 200);
  });

  await t.test('a revoked token is refused at once, and its fleet stream is closed', async (t) => {
    const res = await relay.cli('tokens', 'create', '--name', 'wall-screen', '--role', 'viewer');
    const wall = res.stdout.trim();
    const stream = await openStream(relay.httpUrl, wall);
    await stream.next('snapshot');
    const closed = closedBy(stream.ws);
    // fleet watch with the same token: it stops, saying why, rather than reconnecting forever.
    const watch = spawn(process.execPath, [RELAY_BIN, 'fleet', 'watch', '--json'], { env: { ...process.env, ...relay.env, OUTPOST_TOKEN: wall }, stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => watch.kill());
    let watched = '';
    let watchErr = '';
    watch.stdout.setEncoding('utf8').on('data', (d: string) => (watched += d));
    watch.stderr.setEncoding('utf8').on('data', (d: string) => (watchErr += d));
    const watchExit = new Promise<number | null>((resolve) => watch.once('exit', resolve));
    await waitFor('fleet watch to print the snapshot', () => watched.includes('"type":"snapshot"'));
    const revoke = await relay.cli('tokens', 'revoke', 'wall-screen', '--json');
    t.equal(revoke.code, 0, revoke.stderr);
    t.match(JSON.parse(revoke.stdout), { name: 'wall-screen', role: 'viewer', revoked: true });
    t.same(await closed, { code: 4401, reason: 'the token was revoked' }, 'the open stream is closed');
    t.equal(await watchExit, 1, 'fleet watch exits');
    t.equal(watchErr, 'error: OUTPOST_ERR_UNAUTHORIZED: the token was revoked: ask an admin for a new one (outpost-relay tokens create)\n');
    const refused = await as(wall, 'devices', 'list');
    t.equal(refused.code, 1);
    t.match(refused.stderr, /^error: OUTPOST_ERR_UNAUTHORIZED: token wall-screen was revoked at \S+Z: ask an admin for a new one \(outpost-relay tokens create\)\n$/);
    t.equal(await refusedUpgrade(`${relay.httpUrl.replace(/^http/, 'ws')}/v1/fleet/stream?token=${wall}`), 401, 'and cannot open a new one');
    const rewatch = await as(wall, 'fleet', 'watch', '--json');
    t.equal(rewatch.code, 1);
    t.match(rewatch.stderr, /^error: OUTPOST_ERR_UNAUTHORIZED: token wall-screen was revoked at \S+Z: ask an admin for a new one/, 'fleet watch says why it was refused');
    t.match((await relay.cli('tokens', 'list')).stdout, /wall-screen +viewer +revoked/);
    t.match((await relay.cli('tokens', 'revoke', 'wall-screen')).stdout, /^revoked wall-screen/, 'revoking again is no error');
    const late = await as(wall, 'deploy', 'linear', '--device', 'cam-1');
    t.match(late.stderr, /^error: OUTPOST_ERR_UNAUTHORIZED: token wall-screen was revoked/m, 'refused as revoked, before its role is looked at');
    t.equal((await relay.cli('tokens', 'create', '--name', 'wall-screen', '--role', 'viewer')).code, 0, 'the name is free again');
    const byId = await relay.cli('tokens', 'revoke', made['ci-viewer']!.id);
    t.match(byId.stdout, new RegExp(`^revoked ci-viewer \\(${made['ci-viewer']!.id}, viewer\\)`), 'by id');
    t.match((await relay.cli('tokens', 'revoke', 'wall-scren')).stderr, /^error: OUTPOST_ERR_NOT_FOUND: no token "wall-scren"; did you mean wall-screen\?: list them with outpost-relay tokens list$/m);
  });

  await t.test('an expired token is refused, naming its expiry, and its stream is closed then', async (t) => {
    const made = await relay.api<{ token: string; expiresAt: string }>('POST', '/v1/tokens', { name: 'brief', role: 'viewer', ttlSeconds: 3 });
    t.equal(made.status, 201);
    const ws = new WebSocket(`${relay.httpUrl.replace(/^http/, 'ws')}/v1/fleet/stream`, { headers: { authorization: `Bearer ${made.body.token}` }, ...relay.tls });
    const closed = closedBy(ws);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    t.same(await closed, { code: 4401, reason: 'the token expired' }, 'closed when the token expires');
    const res = await relay.api<{ error: { code: string; message: string } }>('GET', '/v1/devices', undefined, made.body.token);
    t.equal(res.status, 401);
    t.equal(res.body.error.message, `token brief expired at ${made.body.expiresAt}: ask an admin for a new one (outpost-relay tokens create)`);
    t.match((await relay.api<{ tokens: TokenView[] }>('GET', '/v1/tokens')).body.tokens.find((x) => x.name === 'brief'), { expired: true, revoked: false });
  });

  await t.test('the audit log records each action with the token name and address', async (t) => {
    const res = await relay.cli('audit', 'list', '--limit', '1000', '--json');
    t.equal(res.code, 0, res.stderr);
    const entries = JSON.parse(res.stdout) as AuditView[];
    t.ok(entries.every((e, i) => i === 0 || entries[i - 1]!.seq > e.seq), 'newest first');
    const find = (action: string, who: string, outcome = 'ok', target: RegExp = /(?:)/) => entries.find((e) => e.action === action && e.who === who && e.outcome === outcome && target.test(e.target ?? ''));
    const adminId = entries.find((e) => e.who === 'admin')!.actor.id;
    t.match(find('enroll-token.create', 'admin'), { actor: { kind: 'token', name: 'admin', id: adminId }, address: '127.0.0.1', status: 201 });
    t.match(find('device.enroll', `device ${device.deviceId}`), { actor: { kind: 'device', id: device.deviceId }, target: device.deviceId, detail: { name: 'cam-1' } });
    t.match(find('token.create', 'admin', 'ok', /^ci-viewer /), { target: `ci-viewer (${made['ci-viewer']!.id})`, detail: { role: 'viewer' }, address: '127.0.0.1', status: 201 });
    t.match(find('token.create', 'admin', 'failed', /^ci-viewer$/), { status: 409, detail: { error: 'OUTPOST_ERR_CONFLICT', message: /a live token is named ci-viewer/ } });
    t.match(find('token.create', 'admin', 'failed', /^a1b2c3d4e5f6$/), { status: 400, detail: { error: 'OUTPOST_ERR_BAD_REQUEST' } });
    t.match(find('model.push', 'admin'), { target: 'linear:1' });
    t.match(find('model.push', 'ci-deployer'), { target: 'linear:2', actor: { kind: 'token', name: 'ci-deployer', id: made['ci-deployer']!.id }, address: '127.0.0.1', status: 201 });
    t.match(find('deploy', 'ci-deployer'), { target: deploymentId, detail: { model: 'linear:2', devices: 1 }, status: 201 });
    t.match(find('deploy', 'ci-viewer', 'refused'), { status: 403, detail: { error: 'OUTPOST_ERR_FORBIDDEN', message: /needs the deployer role/ }, address: '127.0.0.1' });
    t.match(find('deployment.cancel', 'ci-deployer'), { target: deploymentId });
    t.match(find('bundle.push', 'ci-deployer'), { target: /^[0-9a-f]{64}$/ });
    t.match(find('job.submit', 'ci-deployer'), { target: /^job_/, detail: { target: 'local', command: 'node src/idle.js' } });
    t.match(find('job.cancel', 'ci-deployer'), { target: /^job_/ });
    t.match(find('token.create', 'ci-deployer', 'refused'), { status: 403 });
    t.match(find('device.remove', 'ci-deployer', 'refused'), { status: 403, target: device.deviceId });
    t.match(find('device.label', 'admin'), { target: device.deviceId, detail: { changes: { site: 'lab' } } });
    t.match(find('target.attach', 'admin'), { target: device.deviceId });
    t.match(find('target.detach', 'admin'), { target: device.deviceId });
    t.match(find('token.revoke', 'admin', 'ok', /^ci-viewer /), { target: `ci-viewer (${made['ci-viewer']!.id})`, detail: { role: 'viewer' } });
    t.match(find('token.revoke', 'admin', 'failed'), { target: 'wall-scren', status: 404 });
    t.notOk(entries.some((e) => e.who === 'wall-screen'), 'a 401 (the revoked token\'s deploy) names nobody');
    t.notOk(JSON.stringify(entries).includes('opa_'), 'no token in the log');

    // --since filters, by a time and by a duration.
    const cut = new Date(Date.now() + 1).toISOString();
    await waitFor('the clock to pass the cut', () => Date.now() > Date.parse(cut) + 1);
    t.equal((await relay.cli('devices', 'remove', 'cam-1')).code, 0);
    const since = JSON.parse((await relay.cli('audit', 'list', '--since', cut, '--json')).stdout) as AuditView[];
    t.same(since.map((e) => [e.action, e.who, e.target]), [['device.remove', 'admin', device.deviceId]], 'only what came after --since');
    const hour = JSON.parse((await relay.cli('audit', 'list', '--since', '1h', '--json')).stdout) as AuditView[];
    t.equal(hour.length, entries.length + 1, '--since 1h: all of them');
    const two = (await relay.api<{ entries: AuditView[] }>('GET', '/v1/audit?limit=2')).body.entries;
    t.same(two.map((e) => e.seq), hour.slice(0, 2).map((e) => e.seq), 'limit: the newest');
    const table = await relay.cli('audit', 'list', '--since', cut);
    t.match(table.stdout, new RegExp(`^TIME +WHO +ACTION +TARGET +OUTCOME +FROM\\n\\S+Z  admin  device\\.remove  ${escape(device.deviceId)}  ok +127\\.0\\.0\\.1\\n$`));
    t.match((await relay.cli('audit', 'list', '--since', new Date(Date.now() + 60_000).toISOString())).stdout, /^nothing recorded since /);
    t.match((await relay.cli('audit', 'list', '--since', 'yesterday')).stderr, /^error: OUTPOST_ERR_BAD_REQUEST: since "yesterday": give a duration back from now \(1h, 30m, 7d\) or an ISO time/m);
    t.match((await relay.api<{ error: { message: string } }>('GET', '/v1/audit?limit=5000')).body.error.message, /^limit: 1 to 1000 entries/);
    t.equal((await relay.api('GET', '/v1/audit?limit=0')).status, 400);
    t.equal((await relay.api('GET', '/v1/audit?since=x'.padEnd(60, 'x'))).status, 400, 'a since of any length is bounded');
    const paged = await relay.api<{ entries: AuditView[]; next: number | null }>('GET', '/v1/audit?limit=2');
    const page2 = await relay.api<{ entries: AuditView[] }>('GET', `/v1/audit?limit=2&before=${paged.body.next}`);
    t.same(page2.body.entries.map((e) => e.seq), hour.slice(2, 4).map((e) => e.seq), 'paging with before=');
  });

  await t.test('the last admin token that does not expire cannot be revoked', async (t) => {
    const last = await relay.cli('tokens', 'revoke', 'admin');
    t.equal(last.code, 1);
    t.equal(last.stderr, 'error: OUTPOST_ERR_CONFLICT: token admin is the last admin token that does not expire; revoking it would leave nobody able to manage the relay: create another first (outpost-relay tokens create --name NAME --role admin), then revoke this one\n');
    t.ok(made.ops, 'an admin token that expires (ops) does not count');
    const alice = (await relay.cli('tokens', 'create', '--name', 'alice', '--role', 'admin')).stdout.trim();
    const handover = await as(alice, 'tokens', 'revoke', 'admin');
    t.equal(handover.code, 0, handover.stderr);
    t.equal((await relay.cli('devices', 'list')).code, 1, 'the first admin token is revoked');
    const self = await as(alice, 'tokens', 'revoke', 'alice');
    t.match(self.stderr, /^error: OUTPOST_ERR_CONFLICT: token alice is the last admin token that does not expire/m);
    t.equal((await as(alice, 'whoami')).code, 0, 'alice can still manage the relay');
    const audit = JSON.parse((await as(alice, 'audit', 'list', '--since', '1m', '--json')).stdout) as AuditView[];
    t.match(audit[0], { action: 'token.revoke', who: 'alice', target: 'alice', outcome: 'failed', status: 409 });
    t.match(audit[1], { action: 'token.revoke', who: 'alice', target: /^admin \(/, outcome: 'ok' });
  });
});
