// The parts of `devices logs` that need no network: the agent's ring buffer (bounds, cutting,
// redaction, paging, answer parts) and the relay's waiting requests (bounds, order, timeouts).

import t from 'tap';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogsAnswer, MAX_LOG_LINE_BYTES, createLogger, messageParser, type AgentLogLine, type LogsRequest } from '@outpost/shared';
import { LogRing, LOGS_PART_BYTES, cutUtf8, toLogLine } from '../../packages/agent/dist/log-ring.js';
import { DeviceLogRequests } from '../../packages/relay/dist/fleet/device-logs.js';
import { formatLogLine, parseLineCount } from '../../packages/relay/dist/cli/device-logs.js';
import { waitFor } from '../helpers/wait.js';

const pinoLine = (fields: Record<string, unknown>) => `${JSON.stringify({ level: 30, time: 1_700_000_000_000, pid: 1, hostname: 'h', name: 'outpost-agent', ...fields })}\n`;
const bytes = (line: AgentLogLine) => Buffer.byteLength(JSON.stringify(line));

t.test('the ring keeps the newest lines, within its line and byte bounds', async (t) => {
  const ring = new LogRing({ maxLines: 5 }, () => 1000);
  for (let i = 0; i < 8; i++) ring.write(pinoLine({ msg: `line ${i}` }));
  t.equal(ring.size, 5);
  t.same(ring.lines({ limit: 100 }).map((l) => l.msg), ['line 3', 'line 4', 'line 5', 'line 6', 'line 7'], 'the oldest went first');
  t.same(ring.lines({ limit: 100 }).map((l) => l.seq), [1004, 1005, 1006, 1007, 1008], 'seqs start at the start time and grow by one');
  t.same(ring.lines({ limit: 2 }).map((l) => l.msg), ['line 6', 'line 7'], 'without after: the newest');
  t.same(ring.lines({ after: 1005, limit: 2 }).map((l) => l.seq), [1006, 1007], 'with after: the next ones, oldest first');
  t.same(ring.lines({ after: 1, limit: 2 }).map((l) => l.seq), [1004, 1005], 'after a seq long gone: from the oldest kept');
  t.same(ring.lines({ after: 1008, limit: 2 }), [], 'nothing new');

  const small = new LogRing({ maxBytes: 1000 }, () => 0);
  for (let i = 0; i < 50; i++) small.write(pinoLine({ msg: 'x'.repeat(100) }));
  const kept = small.lines({ limit: 1000 });
  t.ok(kept.reduce((n, l) => n + bytes(l), 0) <= 1000, 'the byte bound holds');
  t.ok(kept.length >= 5, 'and keeps what fits');
});

t.test('a line is cut to its bound and keeps level, time, message and fields', async (t) => {
  const line = toLogLine(JSON.stringify({ level: 40, time: 5, msg: 'model download interrupted; retrying', model: 'linear', version: 2, retryInS: 1, ok: false, none: null, big: 2 ** 60, nested: { a: [1, 2] }, err: { type: 'Error', message: 'boom', stack: 'Error: boom\n at x' } }), 1, 0)!;
  t.same(line, { seq: 1, ts: 5, level: 'warn', msg: 'model download interrupted; retrying', fields: { model: 'linear', version: 2, retryInS: 1, ok: false, none: null, big: String(2 ** 60), nested: '{"a":[1,2]}', err: 'boom' } });
  t.equal(toLogLine('not json', 1, 0), null);
  t.equal(toLogLine('[1,2]', 1, 0), null);
  t.same(toLogLine('{"level":60}', 1, 7), { seq: 1, ts: 7, level: 'fatal', msg: '' }, 'no time: now; no message: empty');
  t.equal(toLogLine('{"level":10,"msg":"x"}', 1, 0)!.level, 'trace');
  t.equal(toLogLine('{"level":"odd","msg":"x"}', 1, 0)!.level, 'info', 'an unknown level reads as info');

  const long = toLogLine(JSON.stringify({ level: 30, msg: 'é'.repeat(5000), ...Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`k${i}`, 'v'.repeat(600)])) }), 1, 0)!;
  t.ok(bytes(long) <= MAX_LOG_LINE_BYTES, `a huge line is cut to ${MAX_LOG_LINE_BYTES} bytes`);
  t.ok(long.msg.endsWith('…') && !long.msg.includes('\uFFFD'), 'cut between characters, and marked');
  const escapes = toLogLine(JSON.stringify({ level: 30, msg: '\u0001'.repeat(1000) }), 1, 0)!;
  t.ok(bytes(escapes) <= MAX_LOG_LINE_BYTES, 'a message of JSON escapes too');
  t.same(Object.keys(toLogLine(JSON.stringify({ level: 30, msg: 'm', 'a b/c': 1, '': 2 }), 1, 0)!.fields!), ['a_b_c', '_'], 'keys are made safe');
  t.equal(cutUtf8('abc', 10), 'abc');
  t.equal(cutUtf8('€€€€', 7), '€…', 'never half a character');
  t.ok(messageParser(LogsAnswer).parse(JSON.stringify({ requestId: 'r', part: 0, done: true, lines: [line, long, escapes] })).ok, 'what the ring makes, the relay takes');
});

t.test('secrets never reach the ring', async (t) => {
  const secret = 'ods_0123456789ab_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789';
  const ring = new LogRing({}, () => 0);
  // Through pino with the agent's redaction, and straight in (what pino's paths would miss).
  const log = createLogger({ name: 'outpost-agent', tee: ring, fd: 2, pretty: false, level: 'info' });
  log.info({ secret, token: secret, opts: { password: 'p', headers: { authorization: `Bearer ${secret}` } } }, 'redacted by pino');
  ring.write(pinoLine({ msg: `connecting with ${secret} and Bearer abc.def`, deep: { a: { b: { apiToken: secret, c: [{ secretKey: 'x' }] } } }, authorization: 'Bearer x', url: `mqtt://host?t=${secret}` }));
  const all = JSON.stringify(ring.lines({ limit: 100 }));
  t.notMatch(all, secret.slice(17), 'no secret, at any depth or in any text');
  t.notMatch(all, 'abc.def', 'no bearer token');
  t.match(all, 'redacted by pino');
  t.match(all, 'ods_[redacted]', 'a credential in a message is marked');
  t.equal(ring.size, 2);
});

t.test('the logger still writes its output when it tees into the ring', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-ring-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'out.log'), 'w');
  const ring = new LogRing({}, () => 0);
  const log = createLogger({ name: 'outpost-agent', fd, pretty: false, level: 'debug', tee: ring });
  log.trace('not at this level');
  log.debug('one');
  log.info({ model: 'm' }, 'two');
  // Written asynchronously (sonic-boom): wait for both lines.
  const text = await waitFor('both lines in the output file', () => {
    const t = readFileSync(join(dir, 'out.log'), 'utf8');
    return t.split('\n').length > 2 && t;
  });
  closeSync(fd);
  const written = text.trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
  t.same(written.map((l) => l.msg), ['one', 'two'], 'every line still goes to its output');
  t.same(ring.lines({ limit: 10 }).map((l) => [l.level, l.msg, l.fields]), [['debug', 'one', undefined], ['info', 'two', { model: 'm' }]], 'and to the ring');
  ring.write('{"level":30,"msg":"sp');
  ring.write('lit"}\n');
  t.equal(ring.lines({ limit: 1 })[0]!.msg, 'split', 'a line written in two pieces');
});

t.test('an answer comes in parts that fit the broker, in order, the last one done', async (t) => {
  const ring = new LogRing({ maxBytes: 2 * 1024 * 1024 }, () => 0);
  for (let i = 0; i < 1000; i++) ring.write(pinoLine({ msg: `${i} ${'x'.repeat(1500)}` }));
  const parts = ring.answer({ requestId: 'r1', limit: 1000 });
  t.ok(parts.length > 1, `${parts.length} parts`);
  t.same(parts.map((p) => p.part), parts.map((_, i) => i));
  t.same(parts.map((p) => p.done), parts.map((_, i) => i === parts.length - 1));
  t.ok(parts.every((p) => Buffer.byteLength(JSON.stringify(p)) < LOGS_PART_BYTES + 1024), 'each part within its bytes');
  t.equal(parts.reduce((n, p) => n + p.lines.length, 0), 1000);
  const empty = ring.answer({ requestId: 'r2', after: Number.MAX_SAFE_INTEGER, limit: 5 });
  t.same(empty, [{ requestId: 'r2', part: 0, done: true, lines: [] }], 'nothing to send is still an answer');
});

const line = (seq: number, msg = 'm'): AgentLogLine => ({ seq, ts: 1, level: 'info', msg });

function requests(online = true, limits = {}) {
  const sent: Array<{ topic: string; body: LogsRequest }> = [];
  let fail: Error | undefined;
  const logs = new DeviceLogRequests(
    {
      publish: async (topic, body) => {
        if (fail) throw fail;
        sent.push({ topic, body });
      },
      online: async () => online,
    },
    { timeoutMs: 200, ...limits },
  );
  return { logs, sent, failNext: (err: Error) => (fail = err) };
}

t.test('the relay asks, holds the parts for the caller, and gives them in one piece', async (t) => {
  const { logs, sent } = requests();
  const answer = logs.fetch('dev_a', { after: 10, limit: 3 });
  await Promise.resolve();
  t.equal(sent[0]!.topic, 'outpost/v1/devices/dev_a/logs-request');
  const { requestId } = sent[0]!.body;
  t.same(sent[0]!.body, { requestId, after: 10, limit: 3 });
  t.match(logs.onAnswer('dev_b', { requestId, part: 0, done: true, lines: [] }, 10), /no request of this device/, 'another device cannot answer it');
  t.match(logs.onAnswer('dev_a', { requestId, part: 1, done: true, lines: [] }, 10), /part 1 .* part 0 was next/);
  t.match(logs.onAnswer('dev_a', { requestId, part: 0, done: true, lines: [line(11), line(12), line(13), line(14)] }, 10), /more lines than the 3/);
  t.match(logs.onAnswer('dev_a', { requestId, part: 0, done: false, lines: [line(10)] }, 10), /seq 10 does not come after 10/, 'lines after `after` only');
  t.match(logs.onAnswer('dev_a', { requestId, part: 0, done: false, lines: [line(12), line(11)] }, 10), /seq 11 does not come after 12/, 'in order');
  t.match(logs.onAnswer('dev_a', { requestId, part: 0, done: false, lines: [line(11, 'x'.repeat(MAX_LOG_LINE_BYTES))] }, 10), /over 2048 bytes/);
  t.match(logs.onAnswer('dev_a', { requestId, part: 0, done: false, lines: [line(11)] }, 5 * 1024 * 1024), /over 4194304 bytes/);
  t.equal(logs.onAnswer('dev_a', { requestId, part: 0, done: false, lines: [line(11)] }, 100), null, 'the right part after the refused ones');
  t.equal(logs.waiting, 1);
  t.equal(logs.onAnswer('dev_a', { requestId, part: 1, done: true, lines: [line(12)] }, 100), null);
  t.same(await answer, [line(11), line(12)]);
  t.equal(logs.waiting, 0);
  t.match(logs.onAnswer('dev_a', { requestId, part: 2, done: true, lines: [] }, 10), /no request/, 'a late part has nobody to go to');
});

t.test('offline, busy, silent, gone: each is a clear refusal', async (t) => {
  await t.rejects((requests(false)).logs.fetch('dev_a', { limit: 1 }), { code: 'OUTPOST_ERR_DEVICE_OFFLINE', message: 'device dev_a is offline: its logs are on the device (journalctl -u outpost-agent or its stdout)' });

  const { logs } = requests(true, { maxWaiting: 3, maxWaitingPerDevice: 2 });
  const a1 = logs.fetch('dev_a', { limit: 1 });
  const a2 = logs.fetch('dev_a', { limit: 1 });
  await t.rejects(logs.fetch('dev_a', { limit: 1 }), { code: 'OUTPOST_ERR_BUSY', message: /2 log requests wait for device dev_a/ });
  const b1 = logs.fetch('dev_b', { limit: 1 });
  await t.rejects(logs.fetch('dev_c', { limit: 1 }), { code: 'OUTPOST_ERR_BUSY', message: /3 log requests wait for devices/ });
  logs.onFleetEvent({ type: 'device.status', deviceId: 'dev_a', online: false, lastSeen: '' });
  await t.rejects(a1, { code: 'OUTPOST_ERR_DEVICE_OFFLINE' }, 'a device that goes offline fails its callers at once');
  await t.rejects(a2, { code: 'OUTPOST_ERR_DEVICE_OFFLINE' });
  logs.onFleetEvent({ type: 'device.status', deviceId: 'dev_b', online: true, lastSeen: '' });
  logs.onFleetEvent({ type: 'device.removed', deviceId: 'dev_b' });
  await t.rejects(b1, { code: 'OUTPOST_ERR_DEVICE_NOT_FOUND' });

  await t.rejects(logs.fetch('dev_c', { limit: 1 }), { code: 'OUTPOST_ERR_DEVICE_TIMEOUT', message: /device dev_c did not answer within 0.2 s: .*journalctl -u outpost-agent/ });
  const c = logs.fetch('dev_c', { limit: 1 });
  logs.close();
  await t.rejects(c, { code: 'OUTPOST_ERR_BUSY', message: /shutting down/ });
  t.equal(logs.waiting, 0);

  const broken = await requests();
  broken.failNext(new Error('client disconnecting'));
  await t.rejects(broken.logs.fetch('dev_a', { limit: 1 }), { code: 'OUTPOST_ERR_INTERNAL', message: /could not send the request to device dev_a: client disconnecting/ });
});

t.test('the CLI prints one line per log line', async (t) => {
  t.equal(formatLogLine({ seq: 1, ts: 0, level: 'warn', msg: 'model download interrupted', fields: { model: 'linear', reason: 'the relay is away', n: 2, ok: null, empty: '' } }), '1970-01-01T00:00:00.000Z WARN  model download interrupted model=linear reason="the relay is away" n=2 ok=null empty=""');
  t.equal(formatLogLine({ seq: 1, ts: 0, level: 'info', msg: 'agent ready' }), '1970-01-01T00:00:00.000Z INFO  agent ready');
  t.equal(parseLineCount('20'), 20);
  for (const bad of ['0', '1001', '2.5', 'x']) t.throws(() => parseLineCount(bad), /1 to 1000/);
});
