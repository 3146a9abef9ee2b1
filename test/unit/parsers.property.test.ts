// Property-based tests (fast-check) of every parser of outside input: whatever bytes or values
// arrive, nothing throws past the parser except its own refusal, and nothing invalid comes out.

import t from 'tap';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import {
  DesiredJobs,
  DesiredState,
  DeviceNotice,
  HealthMessage,
  JobLogBatch,
  JobsReported,
  LogsAnswer,
  LogsRequest,
  OutpostError,
  ReportedState,
  StatusMessage,
  bundleEntryKey,
  bundleProblem,
  checkLabel,
  editDistance,
  messageParser,
  nearest,
  typoBudget,
  notAnEnrollToken,
  parseBinaryBody,
  parseLabels,
  parseMetricJson,
  parseMetricLine,
  resolveInBundle,
  validateInputs,
  type HealthMessage as Health,
  type Logger,
  type ModelSignature,
} from '@outpost/shared';
import { HealthHistory } from '../../packages/relay/dist/fleet/health-history.js';
import { boundedLines } from '../../packages/relay/dist/jobs/run-ingest.js';
import { UnsafeOutputPath, outputFile } from '../../packages/relay/dist/cli/job-outputs.js';

const RUNS = { numRuns: 500 };
const onlyRefusals = (fn: () => unknown) => {
  try {
    fn();
    return true;
  } catch (err) {
    return err instanceof OutpostError;
  }
};

/** Every number anywhere in a value is finite. */
function allFinite(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(allFinite);
  if (value && typeof value === 'object') return Object.values(value).every(allFinite);
  return true;
}

const numbers = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(Number.MAX_VALUE, -Number.MAX_VALUE, 1e308, -1, 0, 2 ** 53, 2 ** 64));
const healthish = fc.record({
  ts: numbers,
  uptimeS: numbers,
  cpuPercent: numbers,
  memory: fc.record({ rssBytes: numbers, usedBytes: numbers, totalBytes: numbers }),
  disk: fc.record({ freeBytes: numbers, totalBytes: numbers }),
  models: fc.dictionary(fc.string({ maxLength: 8 }), fc.record({ requests: numbers, errors: numbers, rejected: numbers, p50Ms: fc.option(numbers), p99Ms: fc.option(numbers) }, { requiredKeys: [] }), { maxKeys: 4 }),
});

t.test('nearest names: any input, any candidates, only near ones out', async (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), fc.array(fc.string({ maxLength: 40 }), { maxLength: 20 }), (name, candidates) => {
      const near = nearest(name, candidates);
      return near.length <= 3 && near.every((c) => candidates.includes(c) && c !== name && editDistance(name.toLowerCase(), c.toLowerCase()) <= typoBudget(name));
    }),
    RUNS,
  );
  fc.assert(fc.property(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), fc.integer({ min: 0, max: 5 }), (a, b, limit) => {
    const full = editDistance(a, b);
    const bounded = editDistance(a, b, limit);
    return full === editDistance(b, a) && (full <= limit ? bounded === full : bounded === limit + 1);
  }), RUNS);
  t.pass('bounded distance agrees with the full one, and is symmetric');
});

t.test('MQTT payload parsers refuse with a reason and never let an impossible value through', async (t) => {
  for (const [name, schema] of Object.entries({ StatusMessage, HealthMessage, ReportedState, DesiredState, DesiredJobs, JobsReported, JobLogBatch, DeviceNotice, LogsRequest, LogsAnswer })) {
    const parser = messageParser(schema);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v)), healthish.map((h) => JSON.stringify(h)), fc.uint8Array().map((b) => Buffer.from(b).toString('latin1'))), (payload) => {
        const result = parser.parse(payload);
        return result.ok ? allFinite(result.value) : typeof result.reason === 'string' && result.reason.length > 0;
      }),
      RUNS,
    );
    t.pass(`${name}: arbitrary payloads`);
  }
  // Schema-valid heartbeats, however extreme within their bounds, give finite stored figures.
  const samples: Array<Record<string, unknown>> = [];
  const store = { health: { add: async (s: Array<Record<string, unknown>>) => void samples.push(...s), prune: async () => {}, deleteDevice: async () => {} } };
  const history = new HealthHistory(store as never, { error: () => {} } as unknown as Logger, () => 0, 60_000);
  const parse = messageParser(HealthMessage);
  const extreme = fc.constantFrom(0, 1, Number.MAX_SAFE_INTEGER);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(extreme, extreme, fc.integer({ min: 0, max: 5 })), { minLength: 2, maxLength: 6 }), async (beats) => {
      let at = 1;
      for (const [requests, errors, dt] of beats) {
        const h: Health = { ts: at, uptimeS: 1, cpuPercent: 100, memory: { rssBytes: 2 ** 60, usedBytes: 2 ** 60, totalBytes: 2 ** 60 }, disk: { freeBytes: 0, totalBytes: 2 ** 60 }, models: { a: { requests, errors, p50Ms: 86_400_000, p99Ms: null }, b: { requests, errors, p50Ms: null, p99Ms: 86_400_000 } } };
        const parsed = parse.parse(JSON.stringify(h));
        if (!parsed.ok) return false;
        at += dt;
        history.record('d', parsed.value, at);
      }
      await history.flush();
      return samples.every(allFinite);
    }),
    RUNS,
  );
  await history.close();
  t.pass('rates and figures derived from valid heartbeats are finite');
});

const signature: ModelSignature = {
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, 4] },
    { name: 'k', datatype: 'INT64', shape: [] },
    { name: 's', datatype: 'BYTES', shape: [-1] },
  ],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }],
};

t.test('tensor validation and the binary codec refuse, never crash', async (t) => {
  const tensor = fc.record(
    {
      name: fc.constantFrom('x', 'k', 's', 'z'),
      datatype: fc.constantFrom('FP32', 'INT64', 'BYTES', 'BOOL', 'x'),
      shape: fc.oneof(fc.array(fc.oneof(fc.integer({ min: -1, max: 5 }), fc.constantFrom(1e300, 2 ** 53, 0.5, Number.NaN)), { maxLength: 3 }), fc.jsonValue()),
      data: fc.oneof(fc.array(fc.oneof(fc.double(), fc.integer(), fc.string(), fc.boolean(), fc.constant(null)), { maxLength: 12 }), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );
  fc.assert(fc.property(fc.oneof(fc.array(tensor, { maxLength: 4 }), fc.jsonValue()), (inputs) => onlyRefusals(() => validateInputs(signature, inputs))), RUNS);
  t.pass('validateInputs');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), fc.integer({ min: -5, max: 600 }), (bytes, headerLength) => onlyRefusals(() => parseBinaryBody(Buffer.from(bytes), headerLength, 'inputs'))),
    RUNS,
  );
  // A JSON header that claims binary sizes, then random bytes.
  fc.assert(
    fc.property(fc.array(fc.record({ name: fc.constantFrom('x', 's'), datatype: fc.constantFrom('FP32', 'BYTES'), shape: fc.constant([1, 4]), parameters: fc.record({ binary_data_size: fc.oneof(fc.integer({ min: -2, max: 64 }), fc.double()) }) }), { maxLength: 3 }), fc.uint8Array({ maxLength: 128 }), (inputs, tail) => {
      const head = Buffer.from(JSON.stringify({ inputs }));
      return onlyRefusals(() => {
        const parsed = parseBinaryBody(Buffer.concat([head, Buffer.from(tail)]), head.length, 'inputs');
        validateInputs(signature, parsed.inputs);
      });
    }),
    RUNS,
  );
  t.pass('parseBinaryBody and what follows it');
});

t.test('bundle checks: whatever the entries, the answer is a reason or a bundle whose links stay inside', async (t) => {
  const segment = fc.constantFrom('a', 'b', 'q', '.', '..', 'up', '');
  const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
  const entry = fc.record({ path, type: fc.constantFrom('File', 'Directory', 'SymbolicLink', 'Link', 'CharacterDevice'), linkpath: fc.option(fc.oneof(path, fc.constant('/etc')), { nil: undefined }) });
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 8 }), (list) => {
      const problem = bundleProblem(list);
      if (problem !== null) return typeof problem === 'string';
      const entries = new Map(list.map((e) => [bundleEntryKey(e.path)!, e]));
      return [...entries].every(([key, e]) => e.type !== 'SymbolicLink' || resolveInBundle(entries, [...key.split('/').slice(0, -1), ...(e.linkpath ?? '').split('/')]) !== null);
    }),
    { numRuns: 2000 },
  );
  t.equal(bundleProblem([{ path: 'q', type: 'SymbolicLink', linkpath: '.' }, { path: 'up1', type: 'SymbolicLink', linkpath: 'q/..' }]), 'link "up1" points outside the job folder', 'the chain from the report');
  t.equal(bundleProblem([{ path: 'd', type: 'Directory' }, { path: 'd/l', type: 'SymbolicLink', linkpath: '../x' }, { path: 'x', type: 'File' }]), null, 'a link to a sibling folder is fine');
  t.match(bundleProblem([{ path: 'x', type: 'File' }, { path: 'x', type: 'SymbolicLink', linkpath: 'y' }]), /appears twice/, 'a name given twice');
  t.match(bundleProblem([{ path: '', type: 'SymbolicLink', linkpath: '../a' }]), /names the job folder itself/, 'a link in place of the folder itself (found by this property)');
});

t.test('labels, metric lines and bounded lines', async (t) => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      try {
        const labels = parseLabels(text);
        for (const [k, v] of Object.entries(labels)) checkLabel(k, v);
        return true;
      } catch (err) {
        return err instanceof Error && err.message.startsWith('invalid label');
      }
    }),
    RUNS,
  );
  fc.assert(fc.property(fc.oneof(fc.string(), fc.string().map((s) => `outpost:metric ${s}`), fc.jsonValue().map((v) => JSON.stringify(v))), (line) => allFinite(parseMetricLine(line)) && allFinite(parseMetricJson(line))), RUNS);
  t.pass('parseLabels, parseMetricLine, parseMetricJson');
  await fc.assert(
    fc.asyncProperty(fc.array(fc.string({ maxLength: 40 }), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 5 }), async (lines, cuts) => {
      const text = lines.join('\n');
      const chunks: string[] = [];
      for (let at = 0, i = 0; at < text.length; i++) {
        const n = cuts[i % cuts.length]!;
        chunks.push(text.slice(at, at + n));
        at += n;
      }
      const out: string[] = [];
      for await (const l of boundedLines(Readable.from(chunks.map((c) => Buffer.from(c))), 20)) out.push(l);
      const expected = text === '' ? [] : text.split('\n').filter((l, i, all) => l.length <= 20 && !(i === all.length - 1 && l === ''));
      return JSON.stringify(out) === JSON.stringify(expected);
    }),
    RUNS,
  );
  t.pass('boundedLines gives every line up to its bound, whatever the chunking, and skips the longer ones');
});

t.test('job output paths (written by a device) never lead outside the download folder', async (t) => {
  const dir = '/srv/downloads';
  const segment = fc.oneof(fc.constantFrom('..', '.', '', 'a', 'b.txt', '...', '\\', '\n', '\x1b[2J'), fc.string({ maxLength: 6 }));
  const path = fc.oneof(fc.string({ maxLength: 40 }), fc.array(segment, { maxLength: 6 }).map((s) => s.join('/')));
  fc.assert(
    fc.property(path, fc.option(fc.nat(8), { nil: undefined }), (p, rank) => {
      try {
        const file = outputFile(dir, p, rank);
        return file.startsWith(`${dir}/`) && !file.slice(dir.length).split('/').includes('..') && !/[\x00-\x1f\x7f\\]/.test(file);
      } catch (err) {
        return err instanceof UnsafeOutputPath;
      }
    }),
    RUNS,
  );
  t.pass('outputFile');
  fc.assert(fc.property(fc.string(), (text) => ['string', 'undefined'].includes(typeof notAnEnrollToken(text))), RUNS);
  t.pass('notAnEnrollToken takes any text');
});
