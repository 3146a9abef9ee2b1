// examples/federated end to end without a relay: its clients (train.js, one child process per
// device shard) send updates the relay's checks accept, FedAvg of them (the relay's
// federatedAverage) learns all three classes where each device alone learns two, onnxruntime
// runs the result, simulate.js averages to the same bytes, and its test hooks (FAULT=nan,
// FAULT=shape) make updates the relay refuses for the right reason.

import t from 'tap';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { federatedAverage, floatValues, readModelWeights, updateProblem, type WeightedUpdate } from '@outpost/shared';

const EXAMPLE = fileURLToPath(new URL('../../examples/federated', import.meta.url));
const ROUNDS = 5;
const EPOCHS = 20;
const DEVICES = [1, 2, 3];

const dir = mkdtempSync(join(tmpdir(), 'outpost-federated-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'data');
const initial = join(dir, 'initial.onnx');

// The example's scripts run in plain Node: without tap's NODE_OPTIONS hook (which would load
// into every child and triple the test's time) and with no OUTPOST_*, FAULT, EPOCHS… but ours.
const CLEAN = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OUTPOST_|FAULT$|EPOCHS$|SEED$|LEARNING_RATE$|NODE_OPTIONS$|TAP|_TAPJS)/.test(k)));

/** Runs one of the example's scripts with `env`. */
function run(script: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [join(EXAMPLE, script), ...args], { cwd: dir, encoding: 'utf8', env: { ...CLEAN, ...env } });
}

/** One client run, as the relay starts it: the update's bytes and the examples it reported. */
function train(global: string, device: number, out: string, env: Record<string, string> = {}) {
  const res = run('train.js', [], {
    OUTPOST_GLOBAL_MODEL: global,
    OUTPOST_ROUND: '1',
    OUTPOST_PROXIMAL_MU: '0',
    OUTPOST_DATA_DIR: join(data, `device-${device}`),
    OUTPOST_OUTPUT_DIR: out,
    OUTPOST_RANK: String(device - 1),
    OUTPOST_WORLD_SIZE: String(DEVICES.length),
    OUTPOST_JOB_ID: 'job_test',
    EPOCHS: String(EPOCHS),
    ...env,
  });
  if (res.status !== 0) throw new Error(`train.js failed (${res.status}): ${res.stderr}`);
  const metric = res.stdout.split('\n').filter((l) => l.startsWith('outpost:metric ')).at(-1) ?? '';
  const numExamples = Number(/(?:^| )num_examples=(\d+)/.exec(metric)?.[1]);
  return { buf: readFileSync(join(out, 'model.onnx')), numExamples, metric };
}

interface Score {
  accuracy: number;
  loss: number;
  perClass: number[];
}
const evaluate = (model: string): Score => JSON.parse(execFileSync(process.execPath, [join(EXAMPLE, 'evaluate.js'), model, join(data, 'test.csv'), '--json'], { encoding: 'utf8', env: CLEAN })) as Score;

// Setup, shared by the tests: the initial model and a non-IID split over three devices.
for (const [script, args] of [['init.js', [initial]], ['make-data.js', [data, '--devices', '3', '--seed', '7']]] as const) {
  const res = run(script, [...args]);
  if (res.status !== 0) throw new Error(`${script} failed: ${res.stderr}`);
}
const globalBuf = readFileSync(initial);
const globalWeights = readModelWeights(globalBuf);
const problem = (buf: Uint8Array) => updateProblem(globalBuf, globalWeights, buf, readModelWeights(buf));

t.test('FedAvg over 5 rounds beats every device alone; every update is accepted', async (t) => {
  // simulate.js (the README's way by hand) runs alongside: it must end with the same bytes.
  const simulation = promisify(execFile)(process.execPath, [join(EXAMPLE, 'simulate.js'), data, '--model', initial, '--rounds', String(ROUNDS), '--out', join(dir, 'simulation')], { cwd: dir, env: CLEAN }).then(
    () => null,
    (err: Error) => err, // held until awaited below, not an unhandled rejection meanwhile
  );
  let current = initial;
  let currentBuf: Uint8Array = globalBuf;
  const refused: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const updates: WeightedUpdate[] = [];
    for (const d of DEVICES) {
      const u = train(current, d, join(dir, `round-${round}`, `device-${d}`), { OUTPOST_ROUND: String(round) });
      // Checked against the round's global model, as the relay does (same graph, so also the initial's).
      const why = updateProblem(currentBuf, readModelWeights(currentBuf), u.buf, readModelWeights(u.buf));
      if (why || !(u.numExamples > 0)) refused.push(`round ${round} device-${d}: ${why ?? `no num_examples in ${u.metric}`}`);
      updates.push({ buf: u.buf, weights: readModelWeights(u.buf), numExamples: u.numExamples });
    }
    t.same(updates.map((u) => u.numExamples), [150, 200, 250], `round ${round}: each client reports its shard's size`);
    currentBuf = federatedAverage(currentBuf, readModelWeights(currentBuf), updates);
    current = join(dir, `round-${round}`, 'global.onnx');
    writeFileSync(current, currentBuf);
  }
  t.same(refused, [], 'all 15 updates pass updateProblem');
  t.equal(readModelWeights(currentBuf).graphHash, globalWeights.graphHash, 'the averaged model keeps the graph');

  const fed = evaluate(current);
  const locals = DEVICES.map((d) => {
    // The same total work on one device's data alone: 5 × 20 epochs from the initial model.
    train(initial, d, join(dir, `local-${d}`), { EPOCHS: String(ROUNDS * EPOCHS) });
    return evaluate(join(dir, `local-${d}`, 'model.onnx'));
  });
  t.comment(`test accuracy: federated ${fed.accuracy.toFixed(4)}; device alone ${locals.map((l) => l.accuracy.toFixed(4)).join(', ')}`);
  t.ok(fed.accuracy >= 0.85, `the federated model is good (${fed.accuracy})`);
  t.ok(Math.min(...fed.perClass) >= 0.8, `and good at every class (${fed.perClass.join(', ')})`);
  for (const [i, local] of locals.entries()) {
    t.ok(fed.accuracy > local.accuracy + 0.15, `federated ${fed.accuracy} clearly beats device-${i + 1} alone (${local.accuracy})`);
    t.ok(Math.min(...local.perClass) < 0.2, `device-${i + 1} alone misses the class it never saw (${local.perClass.join(', ')})`);
  }

  // onnxruntime loads the averaged model; its probabilities are softmax(x·W̄ + b̄).
  const session = await ort.InferenceSession.create(currentBuf);
  t.teardown(() => session.release());
  const x = [1, 1, 0, 0]; // class 0's center
  const res = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [1, 4]) });
  const w = readModelWeights(currentBuf);
  const [W, b] = ['W', 'b'].map((n) => floatValues(currentBuf, w.initializers.find((i) => i.name === n)!));
  const logits = [0, 1, 2].map((c) => b![c]! + x.reduce((s, v, f) => s + v * W![f * 3 + c]!, 0));
  const exps = logits.map((l) => Math.exp(l - Math.max(...logits)));
  const expected = exps.map((e) => e / exps.reduce((s, v) => s + v, 0));
  const got = [...(res.probabilities!.data as Float32Array)];
  t.ok(got.every((p, c) => Math.abs(p - expected[c]!) < 1e-5), `probabilities ${got.join(', ')} = softmax(x·W̄ + b̄)`);
  t.equal(res.probabilities!.dims.join('x'), '1x3');
  t.same([...(res.label!.data as BigInt64Array)], [0n], 'class 0 at its center');

  // FedAvg by hand in simulate.js is the relay's rule: the same final bytes.
  t.error(await simulation, 'simulate.js ran');
  t.ok(Buffer.from(currentBuf).equals(readFileSync(join(dir, 'simulation', `round-${ROUNDS}`, 'global.onnx'))), 'simulate.js ends with the same model, byte for byte');
});

t.test('a client is deterministic, and FedProx keeps it near the global model', async (t) => {
  const a = train(initial, 1, join(dir, 'det-a'));
  const b = train(initial, 1, join(dir, 'det-b'));
  t.ok(a.buf.equals(b.buf), 'the same global model and data: the same update bytes');
  const prox = train(initial, 1, join(dir, 'prox'), { OUTPOST_PROXIMAL_MU: '1' });
  t.equal(problem(prox.buf), null, 'a FedProx update is accepted too');
  const distance = (buf: Uint8Array) => {
    const w = readModelWeights(buf);
    return w.initializers.reduce((s, init, i) => {
      const g = floatValues(globalBuf, globalWeights.initializers[i]!);
      return s + floatValues(buf, init).reduce((s2, v, j) => s2 + (v - g[j]!) ** 2, 0);
    }, 0);
  };
  t.ok(distance(prox.buf) < distance(a.buf), `mu=1 moves less from the global model (${distance(prox.buf).toFixed(4)} < ${distance(a.buf).toFixed(4)})`);
});

t.test('the test hooks make updates the relay refuses, for the right reason', async (t) => {
  const nan = train(initial, 1, join(dir, 'fault-nan'), { FAULT: 'nan' });
  t.match(problem(nan.buf), /non-finite/, 'FAULT=nan: refused as non-finite');
  const shape = train(initial, 1, join(dir, 'fault-shape'), { FAULT: 'shape' });
  t.match(problem(shape.buf), /initializer W has shape \[3, 4\], the global model \[4, 3\]/, 'FAULT=shape: refused for its shape, not its graph');
  t.equal(nan.numExamples, 150, 'a misbehaving client still reports success: the relay must check');
});

t.test('without OUTPOST_GLOBAL_MODEL: exit 2 and one line saying so', async (t) => {
  const res = run('train.js', [], { OUTPOST_DATA_DIR: join(data, 'device-1'), OUTPOST_OUTPUT_DIR: join(dir, 'none') });
  t.equal(res.status, 2);
  t.equal(res.stdout, '');
  t.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
  t.match(res.stderr, /^train\.js: OUTPOST_GLOBAL_MODEL is not set/);
});
