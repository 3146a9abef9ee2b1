// The agent's reads of its desired state over HTTP: older documents never undo newer ones
// (from either path), bad answers cost only that read, and a 304 applies nothing twice.

import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createLogger } from '@outpost/shared';
import { RelayState } from '../../packages/agent/dist/relay-state.js';

async function relayLike(t: Test, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

t.test('documents apply in revision order, whichever path brought them', async (t) => {
  let desired = { revision: 100, models: [] as unknown[] };
  const seenEtags: Array<string | undefined> = [];
  const url = await relayLike(t, (req, res) => {
    seenEtags.push(req.headers['if-none-match']);
    if (req.url!.endsWith('/jobs')) return void res.writeHead(200, { etag: '"j"' }).end(JSON.stringify({ revision: 100, jobs: [] }));
    if (req.headers['if-none-match'] === `"d${desired.revision}"`) return void res.writeHead(304).end();
    res.writeHead(200, { etag: `"d${desired.revision}"` }).end(JSON.stringify(desired));
  });
  const applied: number[] = [];
  const jobs: number[] = [];
  const state = new RelayState({ relayUrl: url, tls: () => undefined, auth: () => ({}), log: createLogger({ name: 't', level: 'silent' }), onDesired: (d) => applied.push(d.revision), onDesiredJobs: (j) => jobs.push(j.revision) });
  t.teardown(() => state.close());
  await state.refresh();
  t.same(applied, [100]);
  t.same(jobs, [100]);
  await state.refresh();
  t.same(applied, [100], 'a 304 applies nothing');
  t.ok(seenEtags.includes('"d100"'), 'the ETag is sent back');
  t.ok(state.accept('desired', 200), 'a newer MQTT document applies');
  desired = { revision: 150, models: [] };
  await state.refresh();
  t.same(applied, [100], 'a read older than the MQTT document is dropped');
  t.notOk(state.accept('desired', 120), 'an older (stale retained) MQTT document is dropped too');
  t.ok(state.accept('desired', 200), 'the same revision again applies');
});

t.test('a bad answer costs that read, and is logged once', async (t) => {
  let answer: (res: ServerResponse) => void = (res) => void res.writeHead(200).end('not json');
  const url = await relayLike(t, (_req, res) => answer(res));
  const lines: string[] = [];
  const log = createLogger({ name: 't', level: 'silent', teeLevel: 'warn', tee: { write: (l: string) => void lines.push(l) } });
  const applied: unknown[] = [];
  const state = new RelayState({ relayUrl: url, tls: () => undefined, auth: () => ({}), log, onDesired: (d) => applied.push(d), onDesiredJobs: (j) => applied.push(j) });
  t.teardown(() => state.close());
  await state.refresh();
  await state.refresh();
  t.same(applied, []);
  t.equal(lines.filter((l) => l.includes('malformed desired')).length, 1, 'the same problem once');
  answer = (res) => void res.writeHead(200, { 'content-length': String(2 << 20) }).end();
  await state.refresh();
  t.ok(lines.some((l) => l.includes('over 1048576')), 'an oversized document is refused by its length');
  answer = (res) => void res.writeHead(200).end(JSON.stringify({ revision: 1, models: [{ name: 'x' }] }));
  await state.refresh();
  t.same(applied, [], 'a document that fails its schema applies nothing');
  answer = (res) => void res.writeHead(404).end();
  await state.refresh();
  t.same(applied, [], 'an older relay without the route: nothing');
  answer = (res) => void res.writeHead(503).end();
  await state.refresh();
  t.ok(lines.some((l) => l.includes('answered 503')));
});
