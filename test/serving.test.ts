// The agent's serving path: dynamic batching gives the same answers as one request at a time
// and never merges requests of different shapes; binary tensors give the same answers as JSON;
// a full queue answers 429 at once and the model recovers; per-deployment session settings.

import t from 'tap';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { FIXTURES, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { infer, post, type Tensor } from './helpers/kserve.js';
import { waitFor } from './helpers/wait.js';
import { seededRandom } from './fixtures/onnx-builder.js';

/** Runs a fixture in this process, one request at a time: what every served answer must equal. */
async function reference(file: string, inputs: Tensor[]): Promise<Record<string, number[]>> {
  const session = await ort.InferenceSession.create(join(FIXTURES, file));
  try {
    const type: Record<string, ort.Tensor.Type> = { FP32: 'float32', INT64: 'int64' };
    const feeds = Object.fromEntries(inputs.map((x) => [x.name, new ort.Tensor(type[x.datatype]!, x.data as never, x.shape)]));
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float32Array, Number)]));
  } finally {
    await session.release();
  }
}

const values = (data: Tensor['data']) => Array.from(data as ArrayLike<number | bigint>, Number);
const rnd = seededRandom(42);
const floats = (n: number) => Float32Array.from({ length: n }, () => Math.round((rnd() * 2 - 1) * 1000) / 100);

t.test('serving: batching, binary tensors, overload, session settings', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'edge');
  const agent = await startAgent(t, device);
  for (const name of ['linear', 'rowsum', 'fixed', 'multi', 'cnn']) {
    const res = await relay.cli('models', 'push', join(FIXTURES, `${name}.onnx`), '--name', name);
    t.equal(res.code, 0, res.stderr);
  }
  const deploy = async (...args: string[]) => {
    const res = await relay.cli('deploy', ...args, '--device', device.deviceId, '--wait', '--json');
    t.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as { id: string; serving: Record<string, unknown> | null };
  };
  const metrics = async () => (await fetch(`${agent.httpUrl}/metrics`)).text();
  const metric = (text: string, name: string, model: string) => Number(new RegExp(`^${name}\\{model="${model}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);

  await t.test('batched results equal unbatched ones', async (t) => {
    // The first request waits (up to 10 s) until 16 rows are queued: one merged run, by construction.
    const d = await deploy('linear', '--max-batch-size', '16', '--max-queue-delay', '10s');
    t.match(d.serving, { maxBatchSize: 16, maxQueueDelayMs: 10_000 });
    const rows = [1, 3, 2, 1, 4, 1, 2, 2]; // 16 rows in 8 requests
    const requests = rows.map((n) => [{ name: 'x', datatype: 'FP32' as const, shape: [n, 4], data: floats(n * 4) }]);
    const before = await metrics();
    const answers = await Promise.all(requests.map((inputs, i) => infer(agent.httpUrl, 'linear', inputs, { binaryInputs: i % 2 === 0 })));
    for (const [i, res] of answers.entries()) {
      t.equal(res.status, 200, JSON.stringify(res.body));
      t.same(res.outputs[0]!.shape, [rows[i], 3], `request ${i} gets its own ${rows[i]} rows back`);
      t.same(values(res.outputs[0]!.data), (await reference('linear.onnx', requests[i]!)).y, `request ${i} equals its unbatched answer`);
    }
    const after = await metrics();
    t.equal(metric(after, 'outpost_agent_batch_size_count', 'linear') - metric(before, 'outpost_agent_batch_size_count', 'linear'), 1, 'eight requests, one run');
    t.equal(metric(after, 'outpost_agent_batch_size_sum', 'linear') - metric(before, 'outpost_agent_batch_size_sum', 'linear'), 16, 'of 16 rows');
  });

  await t.test('requests of different shapes are never merged', async (t) => {
    await deploy('rowsum', '--max-batch-size', '64', '--max-queue-delay', '300ms');
    const widths = [3, 5, 3, 7, 5, 3];
    const requests = widths.map((w, i) => [{ name: 'x', datatype: 'FP32' as const, shape: [1 + (i % 2), w], data: floats((1 + (i % 2)) * w) }]);
    const before = await metrics();
    const answers = await Promise.all(requests.map((inputs) => infer(agent.httpUrl, 'rowsum', inputs)));
    for (const [i, res] of answers.entries()) {
      t.equal(res.status, 200, JSON.stringify(res.body));
      t.same(values(res.outputs[0]!.data), (await reference('rowsum.onnx', requests[i]!)).y, `width ${widths[i]}: its own row sums`);
    }
    const runs = metric(await metrics(), 'outpost_agent_batch_size_count', 'rowsum') - metric(before, 'outpost_agent_batch_size_count', 'rowsum');
    t.ok(runs >= 3 && runs < widths.length, `one run per width at least (3), fewer than one per request: ${runs}`);
  });

  await t.test('a model without a batch dimension runs one request at a time', async (t) => {
    await deploy('fixed', '--max-batch-size', '8');
    const requests = [0, 1, 2, 3].map(() => [{ name: 'x', datatype: 'FP32' as const, shape: [2, 4], data: floats(8) }]);
    const before = await metrics();
    const answers = await Promise.all(requests.map((inputs) => infer(agent.httpUrl, 'fixed', inputs)));
    for (const [i, res] of answers.entries()) t.same(values(res.outputs[0]!.data), (await reference('fixed.onnx', requests[i]!)).y);
    t.equal(metric(await metrics(), 'outpost_agent_batch_size_count', 'fixed') - metric(before, 'outpost_agent_batch_size_count', 'fixed'), 4, 'four runs for four requests');
  });

  await t.test('binary and JSON requests give the same outputs', async (t) => {
    await deploy('multi');
    await deploy('cnn', '--max-batch-size', '8');
    const cases: Array<[string, Tensor[]]> = [
      ['multi', [
        { name: 'a', datatype: 'FP32', shape: [2, 3], data: floats(6) },
        { name: 'b', datatype: 'FP32', shape: [2, 3], data: floats(6) },
        { name: 'k', datatype: 'INT64', shape: [], data: BigInt64Array.from([3n]) },
      ]],
      ['cnn', [{ name: 'image', datatype: 'FP32', shape: [2, 3, 48, 192], data: floats(2 * 3 * 48 * 192) }]],
    ];
    for (const [model, inputs] of cases) {
      const json = await infer(agent.httpUrl, model, inputs);
      const binary = await infer(agent.httpUrl, model, inputs, { binaryInputs: true, binaryOutputs: true });
      const mixed = await infer(agent.httpUrl, model, inputs, { binaryInputs: true });
      t.equal(json.status, 200, JSON.stringify(json.body));
      t.equal(binary.status, 200, JSON.stringify(binary.body));
      t.equal(binary.headers['content-type'], 'application/octet-stream');
      t.ok(Number(binary.headers['inference-header-content-length']) > 0, 'the response says where its JSON header ends');
      t.ok(binary.body.outputs!.every((o) => typeof o.parameters?.binary_data_size === 'number' && o.data === undefined), 'outputs travel as binary data');
      t.equal(mixed.headers['inference-header-content-length'], undefined, 'binary inputs, JSON outputs when not asked');
      for (const [i, o] of json.outputs.entries()) {
        t.same(values(binary.outputs[i]!.data), values(o.data), `${model}/${o.name}: binary = JSON`);
        t.same(values(mixed.outputs[i]!.data), values(o.data), `${model}/${o.name}: binary in, JSON out = JSON`);
        t.same(binary.outputs[i]!.shape, o.shape);
      }
    }
    const ref = await reference('cnn.onnx', cases[1]![1]);
    const got = values((await infer(agent.httpUrl, 'cnn', cases[1]![1], { binaryInputs: true, binaryOutputs: true })).outputs[0]!.data);
    t.ok(got.every((v, i) => Math.abs(v - ref.logits![i]!) < 1e-4), 'and both equal in-process onnxruntime');
    t.match((await (await fetch(`${agent.httpUrl}/v2`)).json()) as object, { extensions: ['binary_tensor_data'] }, 'the server announces the extension');
  });

  await t.test('malformed binary requests get a 400 that names the problem', async (t) => {
    const url = `${agent.httpUrl}/v2/models/linear/infer`;
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }] }));
    const cases: Array<[string, Buffer, Record<string, string | number>, RegExp]> = [
      ['header past the end', header, { 'inference-header-content-length': header.length + 10 }, /Inference-Header-Content-Length is \d+, but the body has/],
      ['bytes missing', Buffer.concat([header, Buffer.alloc(8)]), { 'inference-header-content-length': header.length }, /runs past the end of the body/],
      ['bytes left over', Buffer.concat([header, Buffer.alloc(20)]), { 'inference-header-content-length': header.length }, /4 bytes after the last binary tensor/],
      ['header not JSON', Buffer.from('{nope'), { 'inference-header-content-length': 5 }, /not valid JSON/],
      ['JSON body not JSON', Buffer.from('{nope'), {}, /not valid JSON.*Inference-Header-Content-Length/],
    ];
    for (const [what, body, headers, message] of cases) {
      const res = await post(url, body, { 'content-type': 'application/octet-stream', ...headers });
      t.equal(res.status, 400, what);
      t.match(JSON.parse(res.body.toString()), { code: 'OUTPOST_ERR_TENSOR_INVALID', error: message }, what);
    }
    const short = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 12 } }] }));
    const res = await post(url, Buffer.concat([short, Buffer.alloc(12)]), { 'inference-header-content-length': short.length });
    t.match(JSON.parse(res.body.toString()), { error: /the shape needs 16 bytes of FP32, binary_data_size is 12/ });
    const ok = await infer(agent.httpUrl, 'linear', [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: floats(4) }], { binaryInputs: true });
    t.equal(ok.status, 200, 'the model keeps serving');
  });

  await t.test('an overloaded model answers 429 at once, then recovers', async (t) => {
    // Three requests fill the queue (the first waits up to 2 s for a fuller batch); the rest are refused.
    await deploy('linear', '--max-batch-size', '64', '--max-queue-delay', '2s', '--max-queue', '3');
    const x = [{ name: 'x', datatype: 'FP32' as const, shape: [1, 4], data: floats(4) }];
    const queued = [0, 1, 2].map(() => infer(agent.httpUrl, 'linear', x));
    await waitFor('three requests queued', async () => (metric(await metrics(), 'outpost_agent_queue_depth', 'linear') === 3 ? true : undefined));
    const refused = await Promise.all([0, 1, 2, 3, 4].map(() => infer(agent.httpUrl, 'linear', x)));
    for (const res of refused) {
      t.equal(res.status, 429);
      t.equal(res.body.code, 'OUTPOST_ERR_OVERLOADED');
      t.equal(res.headers['retry-after'], '1');
    }
    t.same((await Promise.all(queued)).map((r) => r.status), [200, 200, 200], 'the queued requests are served');
    t.equal((await infer(agent.httpUrl, 'linear', x)).status, 200, 'and new ones are taken again');
    t.equal(metric(await metrics(), 'outpost_agent_queue_depth', 'linear'), 0);
  });

  await t.test('session settings per deployment; a bad one fails and the old version keeps serving', async (t) => {
    const loads = async () => metric(await metrics(), 'outpost_agent_model_load_seconds_count', 'cnn');
    const before = await loads();
    const d = await deploy('cnn', '--intra-op-threads', '2', '--inter-op-threads', '1', '--graph-optimization', 'basic', '--warmup', '2', '--execution-provider', 'cpu');
    t.same(d.serving, { intraOpThreads: 2, interOpThreads: 1, graphOptimization: 'basic', warmup: 2, executionProviders: ['cpu'] });
    t.match((await relay.cli('deployments', 'show', d.id)).stdout, /serving .*intraOpThreads=2.*executionProviders=cpu/, 'deployments show lists the serving settings');
    t.equal(await loads(), before + 1, 'the same model version with other settings is loaded again');
    const image = [{ name: 'image', datatype: 'FP32' as const, shape: [1, 3, 48, 192], data: floats(3 * 48 * 192) }];
    t.equal((await infer(agent.httpUrl, 'cnn', image, { binaryInputs: true })).status, 200);

    // A provider onnxruntime knows nowhere is refused by the relay (400 naming the known ones); one this
    // device lacks (cuda here) falls back to cpu on the device instead (test/accelerators.test.ts).
    const bad = await relay.cli('deploy', 'cnn', '--device', device.deviceId, '--execution-provider', 'nosuchep', '--wait');
    t.equal(bad.code, 1, 'deploy --wait fails');
    t.match(bad.stderr + bad.stdout, /nosuchep/i, 'naming the execution provider');
    t.match(bad.stderr, /unknown to onnxruntime: use cpu, cuda/, 'and the known ones');
    t.equal((await infer(agent.httpUrl, 'cnn', image, { binaryInputs: true })).status, 200, 'the previous load keeps serving');

    const flags = await relay.cli('deploy', 'cnn', '--device', device.deviceId, '--graph-optimization', 'fastest');
    t.equal(flags.code, 1);
    t.match(flags.stderr, /disabled, basic, extended or all/);
    const api = await relay.api('POST', '/v1/deployments', { model: 'cnn', devices: [device.deviceId], serving: { maxBatch: 4 } });
    t.equal(api.status, 400, 'an unknown serving setting is refused by the API');
  });

  t.ok(readFileSync(join(FIXTURES, 'cnn.onnx')).length > 4_000_000, 'the CNN fixture is a realistically sized model');
});
