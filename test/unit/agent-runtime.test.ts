import t from 'tap';
import { floatToHalf, halfToFloat } from '../../packages/agent/dist/runtime/tensors.js';
import { ModelStats } from '../../packages/agent/dist/runtime/model-stats.js';
import { renderUnit } from '../../packages/agent/dist/cli/install.js';

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
