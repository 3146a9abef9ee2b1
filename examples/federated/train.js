// A federated-learning client: one round of local training on this device's data, starting from
// the round's global model. Outpost runs it on every selected device each round, with
//
//   OUTPOST_GLOBAL_MODEL  path of the current global model (required)
//   OUTPOST_ROUND         the round, from 1
//   OUTPOST_PROXIMAL_MU   FedProx's mu: 0 (default) is plain FedAvg
//   OUTPOST_DATA_DIR      this device's dataset: data.csv (columns f1..f4,label); it never leaves
//   OUTPOST_OUTPUT_DIR    where the update goes: model.onnx
//
// and it prints `outpost:metric num_examples=N loss=… accuracy=…`: the relay weights this
// update by num_examples when it averages. The update is written by onnx.js's classifierModel,
// the writer of the global model, so only the weights differ: the relay refuses anything else.
// EPOCHS (default 20) and LEARNING_RATE (default 0.5) come from --env. Deterministic: the same
// global model and data give the same update bytes.
//
// Test hooks (for a misbehaving client in tests, never for real jobs):
//   FAULT=nan    write NaN weights, as a diverged run would
//   FAULT=shape  write W as [3, 4] instead of [4, 3] (same graph, same values, wrong shape)

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifierModel, readWeights } from './onnx.js';
import { CLASSES, FEATURES, metrics, probabilities, readCsv, shapeProblem } from './softmax.js';

// Misconfiguration is one line on stderr and exit 2, so the relay's log says what is wrong.
function fail(message) {
  console.error(`train.js: ${message}`);
  process.exit(2);
}

const env = process.env;
const EPOCHS = Number(env.EPOCHS ?? 20);
const LR = Number(env.LEARNING_RATE ?? 0.5);
const MU = Number(env.OUTPOST_PROXIMAL_MU || 0);
const ROUND = env.OUTPOST_ROUND ?? '?';
const FAULT = env.FAULT ?? '';
const OUT = env.OUTPOST_OUTPUT_DIR ?? join(process.cwd(), 'output');
if (!env.OUTPOST_GLOBAL_MODEL) fail('OUTPOST_GLOBAL_MODEL is not set (the path of the round\'s global model; by hand: OUTPOST_GLOBAL_MODEL=initial.onnx)');
if (!env.OUTPOST_DATA_DIR) fail('OUTPOST_DATA_DIR is not set (the folder of this device\'s data.csv)');
if (!(Number.isInteger(EPOCHS) && EPOCHS >= 0)) fail(`EPOCHS must be a whole number ≥ 0, not ${env.EPOCHS}`);
if (!(MU >= 0)) fail(`OUTPOST_PROXIMAL_MU must be a number ≥ 0, not ${env.OUTPOST_PROXIMAL_MU}`);
if (!['', 'nan', 'shape'].includes(FAULT)) fail(`FAULT must be nan or shape (a test hook), not ${FAULT}`);

let global;
try {
  global = readWeights(readFileSync(env.OUTPOST_GLOBAL_MODEL));
} catch (err) {
  fail(`cannot read the global model ${env.OUTPOST_GLOBAL_MODEL}: ${err.message}`);
}
const problem = shapeProblem(global);
if (problem) fail(`the global model is not this example's classifier: ${problem}`);
let data;
try {
  data = readCsv(join(env.OUTPOST_DATA_DIR, 'data.csv'));
} catch (err) {
  fail(`cannot read this device's data: ${err.message}`);
}
if (data.length === 0) fail(`${join(env.OUTPOST_DATA_DIR, 'data.csv')} has no rows`);
// No sharding by OUTPOST_RANK here (unlike the classifier example): in a federated job each
// device's dataset is already its own shard; rank and world size only name this client.
console.log(`round ${ROUND}, client ${env.OUTPOST_RANK ?? 0}/${env.OUTPOST_WORLD_SIZE ?? 1}: ${data.length} examples, ${EPOCHS} epochs, mu=${MU}`);

const Wg = global.W.values;
const bg = global.b.values;
const W = [...Wg];
const b = [...bg];
for (let epoch = 1; epoch <= EPOCHS; epoch++) {
  // Full-batch gradient of the mean cross-entropy...
  const gW = new Array(W.length).fill(0);
  const gb = new Array(CLASSES).fill(0);
  for (const { x, label } of data) {
    const p = probabilities(W, b, x);
    for (let c = 0; c < CLASSES; c++) {
      const g = p[c] - (c === label ? 1 : 0);
      gb[c] += g;
      for (let f = 0; f < FEATURES; f++) gW[f * CLASSES + c] += g * x[f];
    }
  }
  // ...plus FedProx's mu/2·||w − w_global||², whose gradient mu·(w − w_global) pulls the local
  // model back toward the global one, so clients with skewed data drift less apart.
  for (let i = 0; i < W.length; i++) W[i] -= LR * (gW[i] / data.length + MU * (W[i] - Wg[i]));
  for (let c = 0; c < CLASSES; c++) b[c] -= LR * (gb[c] / data.length + MU * (b[c] - bg[c]));
  if (epoch % Math.ceil(EPOCHS / 4) === 0 || epoch === EPOCHS) {
    const m = metrics(W, b, data);
    console.log(`epoch ${epoch}/${EPOCHS}: loss ${m.loss.toFixed(5)}, accuracy ${m.accuracy.toFixed(4)}`);
  }
}

// Float32, as the file stores them; the metrics are of exactly the weights sent.
const W32 = Array.from(Float32Array.from(W));
const b32 = Array.from(Float32Array.from(b));
const m = metrics(W32, b32, data);
// The local data's cross-entropy and accuracy (without the proximal term), after training.
console.log(`outpost:metric num_examples=${data.length} loss=${m.loss.toFixed(5)} accuracy=${m.accuracy.toFixed(4)}`);

mkdirSync(OUT, { recursive: true });
const model =
  FAULT === 'nan' ? classifierModel(W32.map(() => NaN), b32, FEATURES, CLASSES)
  : FAULT === 'shape' ? classifierModel(W32, b32, FEATURES, CLASSES, [CLASSES, FEATURES])
  : classifierModel(W32, b32, FEATURES, CLASSES);
writeFileSync(join(OUT, 'model.onnx'), model);
console.log(`wrote ${join(OUT, 'model.onnx')} (${model.length} bytes)${FAULT ? ` with FAULT=${FAULT}` : ''}`);
