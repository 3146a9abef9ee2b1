// Every HTTP route says who may call it, as test/cli-help.test.ts makes every command show
// examples: this walks the routes the relay really registered (its role table), checks that the
// OpenAPI description lists none the table lacks, and calls each one with no credential, a
// device secret, and a viewer, deployer and admin token, to see each refused or let through
// exactly as its access says.

import t from 'tap';
import { join } from 'node:path';
import { createLogger, tlsFetch } from '@outpost/shared';
import { createRelay } from '@outpost/relay';
import { ACCESS_VALUES, ROLES, roleAllows, roleNeeded, type Access, type Role } from '../packages/relay/dist/auth/roles.js';
import { tempDir } from './helpers/programs.js';

type Caller = 'none' | 'device' | Role;

const PARAMS: Record<string, string> = { sha256: '0'.repeat(64), version: '1' };

/** What the route's access lets this caller past: the guard's own 401 or 403, or nothing. */
function expected(access: Access, caller: Caller): 401 | 403 | 'through' {
  if (access === 'public') return 'through';
  if (caller === 'none') return 401;
  if (caller === 'device') return access === 'device' || access === 'viewer+device' ? 'through' : 403;
  const role = roleNeeded(access);
  if (role === null) return 403;
  return roleAllows(caller, role) ? 'through' : 403;
}

t.test('every route says who may call it, and gets exactly those callers', async (t) => {
  const relay = await createRelay({ dataDir: join(tempDir(t, 'relay-parent'), 'relay'), host: '127.0.0.1', httpPort: 0, mqttPort: 0, log: createLogger({ name: 'relay', level: 'silent' }) });
  t.teardown(() => relay.close());
  const relayFetch = tlsFetch({ ca: relay.ca?.pem });
  const admin = relay.newAdminToken!;
  const call = async (method: string, path: string, credential?: string, body?: unknown) => {
    const headers: Record<string, string> = {};
    if (credential) headers.authorization = `Bearer ${credential}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await relayFetch(`${relay.httpUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json: { error?: { code: string; message: string } } | undefined;
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      json = undefined; // the dashboard, /metrics
    }
    return { status: res.status, error: json?.error };
  };

  const credentials: Record<Caller, string | undefined> = { none: undefined, device: undefined, viewer: undefined, deployer: undefined, admin };
  for (const role of ['viewer', 'deployer'] as const) {
    const res = await relayFetch(`${relay.httpUrl}/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: `walk-${role}`, role }) });
    credentials[role] = ((await res.json()) as { token: string }).token;
  }
  const enrollToken = ((await (await relayFetch(`${relay.httpUrl}/v1/tokens/enroll`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' })).json()) as { token: string }).token;
  credentials.device = ((await (await relayFetch(`${relay.httpUrl}/v1/enroll`, { method: 'POST', headers: { authorization: `Bearer ${enrollToken}`, 'content-type': 'application/json' }, body: '{}' })).json()) as { secret: string }).secret;
  t.ok(Object.values(credentials).slice(1).every(Boolean), 'a credential of every kind');

  const routes = relay.routes.filter((r) => r.method !== 'HEAD');
  t.ok(routes.length >= 40, `${routes.length} routes`);
  for (const r of relay.routes) t.ok(ACCESS_VALUES.includes(r.access), `${r.method} ${r.url}: ${r.access}`);
  const spec = (await (await relayFetch(`${relay.httpUrl}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { description?: string }>> };
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const url = path.replace(/\{(\w+)\}/g, ':$1');
      const route = routes.find((r) => r.url === url && r.method === method.toUpperCase());
      t.ok(route, `${method.toUpperCase()} ${path} is in the role table`);
      t.match(op.description, /Needs (no credential|the device's certificate|an API token)/, `${method.toUpperCase()} ${path}: OpenAPI says who may call it`);
    }
  }
  const byAccess = (a: Access) => routes.filter((r) => r.access === a).map((r) => `${r.method} ${r.url}`);
  t.same(byAccess('device').sort(), ['GET /v1/devices/me/desired', 'GET /v1/devices/me/jobs', 'GET /v1/devices/me/mqtt-login', 'POST /v1/devices/me/certificate', 'POST /v1/jobs/:id/outputs'], 'a device credential alone: its desired state and jobs, its certificate renewal and its job outputs');
  t.same(byAccess('viewer+device'), ['GET /v1/artifacts/:sha256'], 'a device secret or any token: artifacts');
  t.ok(routes.filter((r) => r.method === 'GET' && r.url.startsWith('/v1/') && !r.url.startsWith('/v1/devices/me/') && !['/v1/tokens', '/v1/audit'].includes(r.url)).every((r) => ['public', 'viewer', 'viewer+device'].includes(r.access)), "a viewer reads every GET but tokens, the audit log and a device's own documents");
  t.ok(routes.filter((r) => r.method !== 'GET').every((r) => r.access !== 'viewer'), 'no change is a viewer\'s');

  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, (_m, name: string) => PARAMS[name] ?? 'nope');
    const body = r.method === 'GET' ? undefined : {};
    for (const caller of ['none', 'device', ...ROLES] as const) {
      const res = await call(r.method, path, credentials[caller], body);
      const want = expected(r.access, caller);
      const what = `${r.method} ${r.url} (${r.access}) as ${caller}`;
      if (want === 'through') {
        t.notOk(['OUTPOST_ERR_UNAUTHORIZED', 'OUTPOST_ERR_FORBIDDEN'].includes(res.error?.code ?? ''), `${what}: let through (${res.status}${res.error ? ` ${res.error.code}` : ''})`);
      } else {
        t.equal(res.status, want, `${what}: ${want}`);
        t.equal(res.error?.code, want === 401 ? 'OUTPOST_ERR_UNAUTHORIZED' : 'OUTPOST_ERR_FORBIDDEN', what);
        const role = roleNeeded(r.access);
        if (want === 403 && caller !== 'device' && role) t.equal(res.error?.message, `this needs the ${role} role; token walk-${caller} is a ${caller}: ask an admin for ${role === 'admin' ? 'an' : 'a'} ${role} token (outpost-relay tokens create --role ${role})`, what);
      }
    }
  }
});
