// Reading a model's weights from its bytes, checking a federated update against the global
// model, and FedAvg: the averaged file equals an average computed here, and onnxruntime runs it
// and answers x·W̄ + b̄.

import t from 'tap';
import fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import { federatedAverage, floatValues, readModelWeights, updateProblem } from '@outpost/shared';
import { buildModel } from '../fixtures/onnx-builder.js';

/** x [batch, 4] → y = x·W + b, W [4, 3] raw bytes, b [3] packed floats, and an INT64 constant. */
function model(W: number[], b: number[], opts: { shapeOfB?: number[]; name?: string; k?: number } = {}): Uint8Array {
  return buildModel({
    name: opts.name ?? 'fl',
    inputs: [{ name: 'x', type: 'FP32', shape: ['batch', 4] }],
    outputs: [{ name: 'y', type: 'FP32', shape: ['batch', 3] }],
    initializers: [
      { name: 'W', type: 'FP32', dims: [4, 3], values: Float32Array.from(W) },
      { name: 'b', type: 'FP32', dims: opts.shapeOfB ?? [3], values: b },
      { name: 'k', type: 'INT64', dims: [1], values: [opts.k ?? 7] },
    ],
    nodes: [
      { op: 'MatMul', inputs: ['x', 'W'], outputs: ['xw'] },
      { op: 'Add', inputs: ['xw', 'b'], outputs: ['y'] },
    ],
  });
}
const W0 = Array.from({ length: 12 }, (_, i) => i / 10);
const b0 = [0.5, -0.5, 1];

t.test('reads initializers, with raw and packed float values', async (t) => {
  const buf = model(W0, b0);
  const w = readModelWeights(buf);
  t.same(w.initializers.map((i) => [i.name, i.dataType, i.dims]), [['W', 1, [4, 3]], ['b', 1, [3]], ['k', 7, [1]]]);
  t.same(w.initializers.slice(0, 2).map((i) => i.values?.encoding), ['raw', 'packed-float'], 'both ways floats are stored');
  t.same([...floatValues(buf, w.initializers[0]!)].map((v) => Math.round(v * 10) / 10), W0);
  t.same([...floatValues(buf, w.initializers[1]!)], b0);
  t.equal(readModelWeights(model(W0.map((v) => v + 1), [0, 0, 0])).graphHash, w.graphHash, 'other weights, the same graph');
  t.not(readModelWeights(model(W0, b0, { name: 'other' })).graphHash, w.graphHash, 'another graph');
  t.throws(() => readModelWeights(new Uint8Array([0x3a, 0x05, 1, 2])), /truncated/, 'a cut file');
  t.throws(() => readModelWeights(new TextEncoder().encode('not a model')), 'text');
});

t.test('an update that cannot be averaged is refused with its reason', async (t) => {
  const g = model(W0, b0);
  const gw = readModelWeights(g);
  const problem = (buf: Uint8Array) => updateProblem(g, gw, buf, readModelWeights(buf));
  t.equal(problem(model(W0.map((v) => v * 2), [1, 2, 3])), null, 'new weights are fine');
  t.match(problem(model(W0, [1, 2, 3, 4], { shapeOfB: [4] })), /initializer b has shape \[4\], the global model \[3\]/);
  t.match(problem(model(W0.map((v, i) => (i === 5 ? Number.NaN : v)), b0)), /initializer W has a non-finite value \(NaN\) at index 5/);
  t.match(problem(model(W0, [Infinity, 0, 0])), /initializer b has a non-finite value \(Infinity\)/);
  t.match(problem(model(W0, b0, { k: 8 })), /initializer k \(not float\) changed/);
  t.match(problem(model(W0, b0, { name: 'other' })), /graph differs/);
});

t.test('FedAvg weights each update by its examples; onnxruntime runs the result', async (t) => {
  const g = model(W0, b0);
  const gw = readModelWeights(g);
  fc.assert(
    fc.property(
      fc.array(fc.record({ W: fc.array(fc.float({ min: -10, max: 10, noNaN: true, noDefaultInfinity: true }), { minLength: 12, maxLength: 12 }), b: fc.array(fc.float({ min: -10, max: 10, noNaN: true }), { minLength: 3, maxLength: 3 }), n: fc.integer({ min: 1, max: 1000 }) }), { minLength: 1, maxLength: 5 }),
      (clients) => {
        const updates = clients.map((c) => ({ buf: model(c.W, c.b), numExamples: c.n }));
        const weighted = updates.map((u) => ({ ...u, weights: readModelWeights(u.buf) }));
        const out = federatedAverage(g, gw, weighted);
        const ow = readModelWeights(out);
        const total = clients.reduce((n, c) => n + c.n, 0);
        const expectW = Array.from({ length: 12 }, (_, i) => clients.reduce((s, c) => s + Math.fround(c.W[i]!) * (c.n / total), 0));
        const gotW = floatValues(out, ow.initializers[0]!);
        return ow.graphHash === gw.graphHash && out.length === g.length && expectW.every((v, i) => Math.abs(v - gotW[i]!) <= 1e-5 * Math.max(1, Math.abs(v)));
      },
    ),
    { numRuns: 50 },
  );
  // Two clients, 1 and 3 examples: W̄ = (W1 + 3·W2)/4, b̄ likewise, and the model runs.
  const W1 = W0.map(() => 1);
  const W2 = W0.map(() => 5);
  const avg = federatedAverage(g, gw, [
    { buf: model(W1, [0, 0, 0]), weights: readModelWeights(model(W1, [0, 0, 0])), numExamples: 1 },
    { buf: model(W2, [4, 4, 4]), weights: readModelWeights(model(W2, [4, 4, 4])), numExamples: 3 },
  ]);
  const session = await ort.InferenceSession.create(avg);
  const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 1, 1, 1]), [1, 4]) });
  t.same([...(y!.data as Float32Array)], [19, 19, 19], 'x·W̄ + b̄ = 4·4 + 3');
  await session.release();
  t.throws(() => federatedAverage(g, gw, []), /nothing to average/);
});
