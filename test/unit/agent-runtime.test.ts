import t from 'tap';
import { floatToHalf, halfToFloat } from '../../packages/agent/dist/runtime/tensors.js';
import { ModelStats } from '../../packages/agent/dist/runtime/model-stats.js';
import { renderUnit } from '../../packages/agent/dist/cli/install.js';
import { InferenceEngine } from '../../packages/agent/dist/runtime/inference-engine.js';
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
  t.same(s.snapshot(), { requests: 0, errors: 0, p50Ms: null, p99Ms: null });
  for (let i = 0; i < 98; i++) s.record(0.9, true);
  s.record(40, false);
  s.record(20_000, false);
  const snap = s.snapshot();
  t.equal(snap.requests, 100);
  t.equal(snap.errors, 2);
  t.equal(snap.p50Ms, 1, 'p50 is the bucket holding 0.9 ms');
  t.equal(snap.p99Ms, 50);
  t.same(s.snapshot(), { requests: 100, errors: 2, p50Ms: null, p99Ms: null }, 'quantiles reset, totals stay');
});

t.test('systemd unit quoting', async (t) => {
  const unit = renderUnit({ user: 'outpost', dataDir: '/srv/my models', nodePath: '/usr/bin/node', mainPath: '/opt/agent/main.js', port: 8000, extraArgs: [] });
  t.match(unit, /^ExecStart=\/usr\/bin\/node \/opt\/agent\/main.js start --data-dir "\/srv\/my models" --port 8000$/m);
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
  await t.rejects(InferenceEngine.start(join(FIXTURE_DIR, 'linear.onnx'), { executionProviders: ['nosuchep'] }), /nosuchep/i);
});
