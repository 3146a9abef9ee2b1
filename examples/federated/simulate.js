// A federated job on one machine, for trying the example without a fleet: each round it runs
// train.js once per device folder (as the relay runs it on each device), then averages the
// updates into the next global model with the relay's rule, FedAvg: every weight is the mean of
// the clients' weights, weighted by the num_examples each one printed (summed in float64, stored
// as float32). An update whose W or b has the wrong shape or a non-finite value is left out, as
// the relay refuses it.
//
//   node simulate.js DATADIR [--model initial.onnx] [--rounds 5] [--mu 0] [--out simulation]
//
// DATADIR is make-data.js's: device-*/data.csv, and test.csv (scored after every round when
// present). Writes OUT/round-R/device-D/model.onnx (the updates) and OUT/round-R/global.onnx.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { classifierModel, readWeights } from './onnx.js';
import { CLASSES, FEATURES, metrics, readCsv, shapeProblem } from './softmax.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: 'string', default: 'initial.onnx' },
    rounds: { type: 'string', default: '5' },
    mu: { type: 'string', default: '0' },
    out: { type: 'string', default: 'simulation' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node simulate.js DATADIR [--model initial.onnx] [--rounds 5] [--mu 0] [--out simulation]');
  process.exit(2);
}
const dataDir = resolve(positionals[0]);
const out = resolve(values.out);
const devices = readdirSync(dataDir).filter((d) => /^device-\d+$/.test(d)).sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)));
const test = existsSync(join(dataDir, 'test.csv')) ? readCsv(join(dataDir, 'test.csv')) : null;
let globalPath = resolve(values.model);

/** One train.js run with the variables the relay sets: its stdout; throws when the run fails. */
function runClient(vars) {
  return execFileSync(process.execPath, [join(HERE, 'train.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...vars } });
}

for (let round = 1; round <= Number(values.rounds); round++) {
  const updates = [];
  devices.forEach((device, rank) => {
    const output = join(out, `round-${round}`, device);
    let stdout;
    try {
      stdout = runClient({
        OUTPOST_GLOBAL_MODEL: globalPath,
        OUTPOST_ROUND: String(round),
        OUTPOST_PROXIMAL_MU: values.mu,
        OUTPOST_DATA_DIR: join(dataDir, device),
        OUTPOST_OUTPUT_DIR: output,
        OUTPOST_RANK: String(rank),
        OUTPOST_WORLD_SIZE: String(devices.length),
        OUTPOST_JOB_ID: 'simulated',
      });
    } catch (err) {
      // A client whose run fails is dropped from the round, as the relay drops it.
      console.log(`round ${round}: ${device} failed: ${err.stderr?.trim() || err.message}`);
      return;
    }
    // The last metric line with num_examples is the update's weight, as the relay reads it.
    const line = stdout.split('\n').filter((l) => l.startsWith('outpost:metric ') && l.includes('num_examples=')).at(-1);
    const numExamples = Number(/num_examples=(\d+)/.exec(line ?? '')?.[1]);
    const weights = readWeights(readFileSync(join(output, 'model.onnx')));
    const problem = shapeProblem(weights) ?? ([...weights.W.values, ...weights.b.values].every(Number.isFinite) ? null : 'a non-finite weight');
    if (problem || !(numExamples > 0)) console.log(`round ${round}: ${device}'s update left out: ${problem ?? 'no num_examples metric'}`);
    else updates.push({ weights, numExamples });
  });
  if (updates.length === 0) {
    console.error(`round ${round}: no usable update`);
    process.exit(1);
  }
  const total = updates.reduce((n, u) => n + u.numExamples, 0);
  const average = (name) =>
    updates[0].weights[name].values.map((_, i) => updates.reduce((s, u) => s + u.weights[name].values[i] * (u.numExamples / total), 0));
  const W = average('W');
  const b = average('b');
  globalPath = join(out, `round-${round}`, 'global.onnx');
  mkdirSync(dirname(globalPath), { recursive: true });
  writeFileSync(globalPath, classifierModel(W, b, FEATURES, CLASSES));
  const score = test ? metrics(Array.from(Float32Array.from(W)), Array.from(Float32Array.from(b)), test) : null;
  console.log(`round ${round}: averaged ${updates.length} updates (${total} examples)${score ? `, test accuracy ${score.accuracy.toFixed(4)}, loss ${score.loss.toFixed(4)}` : ''}`);
}
console.log(`final global model: ${globalPath}`);
