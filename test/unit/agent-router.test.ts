// The agent's HTTP router (node:http): routing, params, bodies and their limit, errors, HEAD.

import t from 'tap';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OutpostError, type Logger } from '@outpost/shared';
import { Router } from '../../packages/agent/dist/serve/router.js';

let release!: () => void;
const held = new Promise<void>((r) => (release = r));
const logged: string[] = [];
// Only the log's error lines are of interest here.
const log = { error: (obj: { err: Error }, msg: string) => logged.push(`${msg}: ${obj.err.message}`) } as unknown as Logger;

const router = new Router({
  log,
  bodyLimit: 1000,
  bodyBudget: 1500,
  timeouts: { bodyIdleMs: 300 },
  guard: (r) => {
    if (r.headers['x-deny']) throw new OutpostError('OUTPOST_ERR_UNAUTHORIZED', 'denied');
  },
})
  .on('GET', '/items/:id', ({ params }) => ({ json: { id: params.id } }))
  .on('POST', '/echo', async (r) => {
    const body = await r.body();
    return { headers: { 'content-type': 'application/octet-stream' }, chunks: ['<', body, '>'] };
  })
  .on('POST', '/hold', async (r) => {
    await r.body();
    await held;
    return { json: { held: true } };
  })
  .on('POST', '/small', async (r) => {
    await r.body(0, { bytes: 10, why: 'the most this route needs' });
    return { json: { ok: true } };
  })
  .on('GET', '/busy', () => {
    throw new OutpostError('OUTPOST_ERR_OVERLOADED', 'full');
  })
  .on('GET', '/boom', () => {
    throw new Error('secret detail');
  });
const server = router.server();
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise((r) => server.close(r)));
const port = (server.address() as AddressInfo).port;

function call(method: string, path: string, opts: { body?: Buffer; chunked?: boolean; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    if (opts.body && !opts.chunked) headers['content-length'] = opts.body.length;
    const req = request({ port, host: '127.0.0.1', method, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    if (opts.chunked && opts.body) req.write(opts.body);
    req.end(opts.chunked ? undefined : opts.body);
  });
}

t.test('routes by method and path, with params and query strings', async (t) => {
  const r = await call('GET', '/items/a%20b?x=1');
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /application\/json/);
  t.same(JSON.parse(r.body), { id: 'a b' });
  const missing = await call('POST', '/items/a');
  t.equal(missing.status, 404);
  t.same(JSON.parse(missing.body), { error: 'no route POST /items/a', code: 'OUTPOST_ERR_NOT_FOUND' });
  t.equal((await call('GET', '/items/')).status, 404, 'an empty param does not match');
  const bad = await call('GET', '/items/%E0%A4%A');
  t.equal(bad.status, 400);
  t.match(JSON.parse(bad.body).error, /percent-encoded/);
});

t.test('HEAD answers a GET route without a body', async (t) => {
  const r = await call('HEAD', '/items/7');
  t.equal(r.status, 200);
  t.equal(r.body, '');
  t.equal(r.headers['content-length'], String(JSON.stringify({ id: '7' }).length));
});

t.test('bodies: known length, chunked, and past the limit', async (t) => {
  const known = await call('POST', '/echo', { body: Buffer.from('hello') });
  t.equal(known.body, '<hello>');
  t.equal(known.headers['content-length'], '7');
  const chunked = await call('POST', '/echo', { body: Buffer.from('chunks'), chunked: true });
  t.equal(chunked.body, '<chunks>');
  const declared = await call('POST', '/echo', { body: Buffer.alloc(2000) });
  t.equal(declared.status, 413);
  t.equal(JSON.parse(declared.body).code, 'OUTPOST_ERR_PAYLOAD_TOO_LARGE');
  const streamed = await call('POST', '/echo', { body: Buffer.alloc(2000), chunked: true });
  t.equal(streamed.status, 413, 'a chunked body is cut off at the limit too');
  t.equal((await call('GET', '/items/1')).status, 200, 'the server keeps serving');
});

t.test('errors: the guard, OutpostErrors with their status, others as a logged 500', async (t) => {
  const denied = await call('GET', '/items/1', { headers: { 'x-deny': '1' } });
  t.equal(denied.status, 401);
  const busy = await call('GET', '/busy');
  t.equal(busy.status, 429);
  t.equal(busy.headers['retry-after'], '1');
  const boom = await call('GET', '/boom');
  t.equal(boom.status, 500);
  t.notMatch(boom.body, /secret detail/, 'the reason stays in the log');
  t.match(logged.join(''), /secret detail/);
});

t.test('a route may allow less than the server; the limit names why', async (t) => {
  const r = await call('POST', '/small', { body: Buffer.alloc(11) });
  t.equal(r.status, 413);
  t.match(JSON.parse(r.body).error, /larger than 10 bytes, the most this route needs/);
  t.equal((await call('POST', '/small', { body: Buffer.alloc(10) })).status, 200);
});

t.test('a refused body still being sent: the answer arrives, then the connection closes (lingering close)', async (t) => {
  const { connect } = await import('node:net');
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  socket.setEncoding('latin1').on('data', (d: string) => (text += d));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  // 11 bytes declared against a 10-byte route; only 5 are sent, the rest never comes.
  socket.write('POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello');
  // Keep sending body bytes after the answer: they are read and thrown away, not reset.
  const answered = new Promise<void>((r) => socket.once('data', () => r()));
  await answered;
  socket.write('abc');
  await new Promise<void>((r) => socket.once('close', () => r()));
  t.match(text, /^HTTP\/1\.1 413/, 'the 413 reached the client whole');
  t.match(text, /larger than 10 bytes/);
});

t.test('bodies share one memory budget; past it requests get 429 until the held ones are done', async (t) => {
  const first = call('POST', '/hold', { body: Buffer.alloc(900) });
  await new Promise<void>((resolve) => {
    const poll = () => (router.budget.used >= 900 ? resolve() : setTimeout(poll, 5));
    poll();
  });
  const second = await call('POST', '/echo', { body: Buffer.alloc(900) });
  t.equal(second.status, 429, 'a second 900-byte body does not fit a 1500-byte budget');
  t.equal(JSON.parse(second.body).code, 'OUTPOST_ERR_OVERLOADED');
  const chunked = await call('POST', '/echo', { body: Buffer.alloc(400), chunked: true });
  t.equal(chunked.status, 429, 'a chunked body is counted as it arrives (its parts and their copy)');
  release();
  t.equal((await first).status, 200);
  t.equal(router.budget.used, 0, 'every reserved byte is given back');
  t.equal((await call('POST', '/echo', { body: Buffer.alloc(900) })).status, 200);
});

t.test('a body that stalls is cut off, and its bytes are given back', async (t) => {
  const { connect } = await import('node:net');
  const socket = connect(port, '127.0.0.1');
  socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n0123456789');
  const started = Date.now();
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  t.ok(Date.now() - started >= 200, 'closed after the idle time, not at once');
  t.equal(router.budget.used, 0);
  t.equal((await call('GET', '/items/1')).status, 200, 'the server keeps serving');
});
