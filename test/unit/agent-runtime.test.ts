import t from 'tap';
import { floatToHalf, halfToFloat } from '../../packages/agent/dist/runtime/tensors.js';
import { ModelStats } from '../../packages/agent/dist/runtime/model-stats.js';
import { renderUnit } from '../../packages/agent/dist/cli/install.js';
import { InferenceEngine } from '../../packages/agent/dist/runtime/inference-engine.js';
import { BatchQueue, hasBatchDimension } from '../../packages/agent/dist/runtime/batch-queue.js';
import { ServedModel } from '../../packages/agent/dist/runtime/served-model.js';
import { FIXTURE_DIR } from '../fixtures/models.js';
import { join } from 'node:path';

t.test('float16 round trips', async (t) => {
  for (const v of [0, 1, -1, 0.5, 65504, -2.5, 0.0001, 1e-7]) {
    const back = halfToFloat(floatToHalf(v));
    t.ok(Math.abs(back - v) <= Math.abs(v) * 1e-3 + 6e-8, `${v} → ${back}`);
  }
  t.equal(halfToFloat(floatToHalf(1e6)), Number.POSITIVE_INFINITY, 'overflow is infinity');
  t.ok(Number.isNaN(halfToFloat(floatToHalf(Number.NaN))));
  t.equal(floatToHalf(1), 0x3c00);
});

t.test('model stats count and estimate latency per interval', async (t) => {
  const s = new ModelStats();
  t.same(s.snapshot(), { requests: 0, errors: 0, rejected: 0, p50Ms: null, p99Ms: null });
  for (let i = 0; i < 98; i++) s.record(0.9, 'ok');
  s.record(40, 'error');
  s.record(20_000, 'error');
  for (let i = 0; i < 1000; i++) s.record(0.01, 'rejected');
  const snap = s.snapshot();
  t.equal(snap.requests, 100);
  t.equal(snap.errors, 2);
  t.equal(snap.p50Ms, 1, 'p50 is the bucket holding 0.9 ms');
  t.equal(snap.p99Ms, 50);
  t.equal(snap.rejected, 1000, 'refused requests are counted apart: they neither fail the model nor dilute its error rate');
  t.match(s.snapshot(), { requests: 100, errors: 2, rejected: 1000, p50Ms: null, p99Ms: null }, 'quantiles reset, totals stay');
  t.match(s.snapshot().lastError, { at: Number, message: 'unknown error' }, 'the last error is kept for the heartbeat');
});

t.test('systemd unit quoting', async (t) => {
  const unit = renderUnit({ user: 'outpost', dataDir: '/srv/my models', nodePath: '/usr/bin/node', mainPath: '/opt/agent/main.js', port: 8000, extraArgs: [] });
  t.match(unit, /^ExecStart=\/usr\/bin\/node --max-semi-space-size=1 --no-concurrent-recompilation \/opt\/agent\/main.js start --data-dir "\/srv\/my models" --port 8000$/m);
  t.match(unit, /^StateDirectory=outpost-agent$/m);
});

t.test('inference engine: models sharing one engine wait their turn; a bad setting fails the start', async (t) => {
  const engine = await InferenceEngine.start(join(FIXTURE_DIR, 'linear.onnx'));
  t.teardown(() => engine.release());
  t.same(engine.signature.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }]);
  const a = ServedModel.borrow({ name: 'a', version: 1, sha256: 'a'.repeat(64) }, engine);
  const b = ServedModel.borrow({ name: 'b', version: 1, sha256: 'b'.repeat(64) }, engine);
  const x = [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }];
  const answers = await Promise.all([a, b, a, b, a, b].map((m) => m.infer(x)));
  t.equal(answers.length, 6, 'six runs on one session thread, none refused');
  t.same(answers.map((o) => o[0]!.shape), Array(6).fill([1, 3]));
  await a.retire();
  t.equal((await b.infer(x)).length, 1, 'a borrowed engine outlives the models that borrowed it');
  // An execution provider this onnxruntime does not have is skipped for cpu (the relay refuses names no onnxruntime knows);
  // a setting no provider can take still fails the start.
  const fallback = await InferenceEngine.start(join(FIXTURE_DIR, 'linear.onnx'), { executionProviders: ['nosuchep'] });
  t.teardown(() => fallback.release());
  t.equal(fallback.executionProvider, 'cpu');
  t.match(fallback.providersSkipped, [{ provider: 'nosuchep', reason: /nosuchep/i }]);
  await t.rejects(InferenceEngine.start(join(FIXTURE_DIR, 'linear.onnx'), { graphOptimization: 'bogus' as never, executionProviders: ['nosuchep'] }), /graphOptimizationLevel/);
});

t.test('batch queue: merges same-shape requests in order, falls back to one by one', async (t) => {
  const f32 = (rows: number, cols: number, start: number) => ({ type: 'float32', dims: [rows, cols], data: Float32Array.from({ length: rows * cols }, (_, i) => start + i) });
  const runs: number[][] = [];
  // Doubles its input; a row of 99 anywhere fails the whole run.
  const double = async (feeds: Record<string, { type: string; dims: readonly number[]; data: unknown }>) => {
    const x = feeds.x!;
    runs.push([...x.dims]);
    const data = x.data as Float32Array;
    if (data.includes(99)) throw new Error('bad row');
    return { y: { type: 'float32', dims: x.dims, data: data.map((v) => v * 2) } };
  };
  const queue = new BatchQueue(double, ['x'], true, { maxBatchSize: 4, maxQueueDelayMs: 0, maxQueue: 10, instances: 1 });
  const jobs = [f32(1, 2, 0), f32(2, 3, 10), f32(2, 2, 20), f32(1, 2, 30), f32(1, 2, 40)].map((x) => queue.submit([x], ['y']));
  const out = await Promise.all(jobs);
  t.same(Array.from(out[2]!.y!.data as Float32Array), [40, 42, 44, 46], 'a request gets its own rows back');
  t.same(runs, [[1, 2], [2, 3], [4, 2]], 'the first alone (nothing queued yet), then the oldest waiting one (another shape, alone), then the rest stacked to 4 rows');

  runs.length = 0;
  const mixed = await Promise.allSettled([f32(1, 2, 0), f32(1, 2, 98), f32(1, 2, 5)].map((x) => queue.submit([x], ['y'])));
  t.same(mixed.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'], 'a failed merged run is retried request by request: only the bad one fails');

  // Outputs that do not follow the batch: re-run one by one, each answer right.
  const summing = new BatchQueue(async (feeds) => ({ s: { type: 'float32', dims: [1], data: Float32Array.of((feeds.x!.data as Float32Array).reduce((a, b) => a + b, 0)) } }), ['x'], true, { maxBatchSize: 8, maxQueueDelayMs: 0, maxQueue: 10, instances: 1 });
  const sums = await Promise.all([f32(1, 2, 1), f32(1, 2, 3), f32(1, 2, 5)].map((x) => summing.submit([x], ['s'])));
  t.same(sums.map((o) => (o.s!.data as Float32Array)[0]), [3, 7, 11]);

  // A queue delay holds the first request until the batch is full.
  runs.length = 0;
  const patient = new BatchQueue(double, ['x'], true, { maxBatchSize: 3, maxQueueDelayMs: 60_000, maxQueue: 10, instances: 1 });
  await Promise.all([0, 1, 2].map((i) => patient.submit([f32(1, 2, i)], ['y'])));
  t.same(runs, [[3, 2]], 'one run once three rows were there, long before the delay');
  t.equal(hasBatchDimension({ inputs: [{ shape: [-1, 4] }], outputs: [{ shape: [3, -1] }] }), false, 'an output without a batch dimension turns batching off');
});

t.test('a session thread that dies is replaced, up to 3 times a minute', async (t) => {
  const lost: boolean[] = [];
  const engine = await InferenceEngine.start(join(FIXTURE_DIR, 'linear.onnx'), {}, { onThreadLost: (_err, replacing) => lost.push(replacing) });
  t.teardown(() => engine.release());
  const x = () => ({ x: { type: 'float32', dims: [1, 4], data: new Float32Array([1, 2, 3, 4]) } });
  const serving = async (what: string) => {
    const deadline = Date.now() + 20_000;
    while (engine.instances !== 1) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  for (let i = 1; i <= 3; i++) {
    const old = engine.workers[0]!;
    await old.terminate();
    t.same(lost, Array(i).fill(true), `loss ${i} is heard, and a new thread starts`);
    await serving(`replacement ${i}`);
    t.not(engine.workers[0], old);
    t.same((await engine.run(x(), ['y'])).y!.dims, [1, 3], `replacement ${i} serves`);
  }
  await engine.workers[0]!.terminate();
  t.same(lost, [true, true, true, false], 'the fourth loss in a minute is not replaced');
  await t.rejects(engine.run(x(), ['y']), /no session thread is running/, 'and runs fail at once with the reason');
});
