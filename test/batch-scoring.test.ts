// Batch scoring where the data lives: `jobs score` runs a model with each agent's own runtime
// over every record of the device's local dataset (.npy and raw tensor files, JSON lines of
// KServe inputs), the predictions come back as job outputs, and `jobs show` says per device
// how many records were scored, how many failed and how fast. A bad record costs that record.

import t from 'tap';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

/** A .npy file (format 1.0) of a little-endian typed array. */
function npy(descr: string, shape: number[], data: Float32Array | Int32Array): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]);
}

const request = (data: number[], datatype = 'FP32') => JSON.stringify({ inputs: [{ name: 'x', shape: [1, data.length], datatype, data }] });

interface Job {
  id: string;
  state: string;
  error: string | null;
  nodes: number;
  runs: Array<{ rank: number; target: string; state: string }>;
  outputs: Array<{ rank: number; path: string; sha256: string }>;
  score: { model: string; version: number; format: string } | null;
}

t.test('batch scoring on the devices', async (t) => {
  const relay = await startRelay(t);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'rowsum.onnx'), '--name', 'rowsum')).code, 0);
  // Device A: every kind of record, good and bad; device B: JSON lines only.
  const recordsA = tempDir(t, 'records-a');
  writeFileSync(join(recordsA, 'a.npy'), npy('<f4', [4], Float32Array.of(1, 2, 3, 4)));
  writeFileSync(join(recordsA, 'b.npy'), npy('<f4', [2, 3], Float32Array.of(1, 1, 1, 2, 2, 2)));
  writeFileSync(join(recordsA, 'c.npy'), npy('<i4', [3], Int32Array.of(1, 2, 3)));
  writeFileSync(join(recordsA, 'd.bin'), Buffer.from(Float32Array.of(1, 2).buffer));
  writeFileSync(join(recordsA, 'notes.txt'), 'not a record');
  mkdirSync(join(recordsA, 'more'));
  writeFileSync(join(recordsA, 'more/records.jsonl'), [request([1, 2, 3]), '{not json', request([1, 2], 'INT32'), ''].join('\n'));
  const recordsB = tempDir(t, 'records-b');
  writeFileSync(join(recordsB, 'records.jsonl'), [request([1]), request([2, 2]), request([0.5, 0.25])].join('\n') + '\n');

  const a = await enrollDevice(t, relay, 'scorer-a', 'pool=score');
  const b = await enrollDevice(t, relay, 'scorer-b', 'pool=score');
  for (const d of [a, b]) t.equal((await relay.cli('targets', 'attach', d.deviceId, '--training')).code, 0);
  await startAgent(t, a, ['--accept-training', '--dataset', `recs=${recordsA}`]);
  await startAgent(t, b, ['--accept-training', '--dataset', `recs=${recordsB}`]);
  await waitFor('both online', async () => (await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices')).body.devices.filter((d) => d.online).length === 2 || undefined, 30_000);
  const job = async (id: string) => (await relay.api<Job>('GET', `/v1/jobs/${id}`)).body;
  const predictions = (j: Job, rank: number) => readFileSync(join(relay.dataDir, 'artifacts', j.outputs.find((o) => o.rank === rank)!.sha256), 'utf8');

  await t.test('a scoring job is refused when it cannot run, naming the fix', async (t) => {
    const local = await relay.cli('jobs', 'score', 'rowsum', '--target', 'local', '--dataset', 'recs');
    t.equal(local.code, 1);
    t.match(local.stderr, /scoring runs where the data lives: give a device or a selector/);
    t.match((await relay.cli('jobs', 'score', 'nope', '--target', 'pool=score', '--dataset', 'recs')).stderr, /OUTPOST_ERR_MODEL_NOT_FOUND/);
    t.match((await relay.cli('jobs', 'score', 'rowsum', '--target', 'pool=score', '--dataset', 'other')).stderr, /OUTPOST_ERR_TARGET_NOT_READY: 0 of 2 devices matching pool=score can run this job; it needs 1: device dev_\w+ has no dataset "other"/);
    t.match((await relay.cli('jobs', 'score', 'rowsum', '--target', 'pool=score', '--dataset', 'recs', '--output-format', 'xml')).stderr, /use jsonl or csv/);
  });

  await t.test('every device scores every record of its dataset; bad records are named, not fatal', async (t) => {
    const res = await relay.cli('jobs', 'score', 'rowsum', '--target', 'pool=score', '--dataset', 'recs', '--follow');
    t.equal(res.code, 0, res.stderr);
    const id = /job (job_\w+): scoring rowsum:1 on 2 device\(s\)/.exec(res.stderr)?.[1];
    t.ok(id, res.stderr);
    const j = await job(id!);
    t.equal(j.state, 'succeeded');
    t.same(j.score, { model: 'rowsum', version: 1, format: 'jsonl' });
    const rankOf = (deviceId: string) => j.runs.find((r) => r.target === deviceId)!.rank;
    const lines = (rank: number) => predictions(j, rank).trim().split('\n').map((l) => JSON.parse(l) as { record: string; outputs?: Array<{ name: string; shape: number[]; data: number[] }>; error?: string });
    const byRecord = Object.fromEntries(lines(rankOf(a.deviceId)).map((l) => [l.record, l]));
    t.same(Object.keys(byRecord), ['a.npy', 'b.npy', 'c.npy', 'd.bin', 'more/records.jsonl:1', 'more/records.jsonl:2', 'more/records.jsonl:3'], 'in file and line order; notes.txt is no record');
    t.same(byRecord['a.npy']!.outputs, [{ name: 'y', datatype: 'FP32', shape: [1, 1], data: [10] }], 'a 1-D .npy gets a batch of one');
    t.same(byRecord['b.npy']!.outputs![0]!.data, [3, 6], 'a 2-D .npy is a batch of two');
    t.match(byRecord['c.npy']!.error, /holds INT32, the model's input x takes FP32/);
    t.match(byRecord['d.bin']!.error, /a raw file cannot say its shape for input x \[-1, -1\]: use a \.npy file/);
    t.same(byRecord['more/records.jsonl:1']!.outputs![0]!.data, [6]);
    t.match(byRecord['more/records.jsonl:2']!.error, /not JSON/);
    t.match(byRecord['more/records.jsonl:3']!.error, /datatype "INT32" does not match the model's FP32/);
    t.same(lines(rankOf(b.deviceId)).map((l) => l.outputs![0]!.data[0]), [1, 4, 0.75]);
    // Per device: records, failures, throughput.
    t.match(res.stdout, new RegExp(`scorer-a|${a.deviceId}`));
    const shown = await relay.cli('jobs', 'show', id!);
    const row = (deviceId: string) => shown.stdout.split('\n').find((l) => l.startsWith(deviceId)) ?? '';
    t.match(row(a.deviceId), /succeeded\s+7\s+4\s+[\d.]+\s+predictions\.jsonl/);
    t.match(row(b.deviceId), /succeeded\s+3\s+0\s+[\d.]+\s+predictions\.jsonl/);
  });

  await t.test('CSV predictions, and a device whose every record fails fails its run', async (t) => {
    const res = await relay.cli('jobs', 'score', 'rowsum:1', '--target', b.deviceId, '--dataset', 'recs', '--output-format', 'csv', '--follow');
    t.equal(res.code, 0, res.stderr);
    const id = /job (job_\w+)/.exec(res.stderr)![1]!;
    const j = await job(id);
    t.same(j.outputs.map((o) => o.path), ['predictions.csv']);
    t.equal(predictions(j, 0), 'record,error,y_0\nrecords.jsonl:1,,1\nrecords.jsonl:2,,4\nrecords.jsonl:3,,0.75\n');
    writeFileSync(join(recordsB, 'records.jsonl'), '{oops\n');
    const failed = await relay.cli('jobs', 'score', 'rowsum', '--target', b.deviceId, '--dataset', 'recs', '--follow');
    t.equal(failed.code, 1);
    t.match(failed.stderr, /every one of the 1 records failed; see predictions\.jsonl/);
    const fid = /job (job_\w+)/.exec(failed.stderr)![1]!;
    t.equal((await job(fid)).state, 'failed');
    t.same((await job(fid)).outputs.map((o) => o.path), ['predictions.jsonl'], 'what it wrote still comes back');
    t.ok(readdirSync(recordsB).length === 1, 'the dataset is only read');
  });
});
