// Trains a small softmax classifier in plain Node.js and exports it as ONNX.
// It runs unchanged on any Outpost target: it reads its place from OUTPOST_* variables,
// prints metrics as `outpost:metric name=value step=N` lines, and writes model.onnx to
// OUTPOST_OUTPUT_DIR. Run it by hand too: `node train.js` (writes to ./output).
//
// Data: $OUTPOST_DATA_DIR/data.csv (columns f1..f4,label) when the job has a dataset;
// otherwise a generated, seeded set of three Gaussian blobs. Same SEED, same model bytes.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifierModel } from './onnx.js';

const SEED = Number(process.env.SEED ?? 42);
const EPOCHS = Number(process.env.EPOCHS ?? 150);
const LR = Number(process.env.LEARNING_RATE ?? 0.5);
const RANK = Number(process.env.OUTPOST_RANK ?? 0);
const WORLD = Number(process.env.OUTPOST_WORLD_SIZE ?? 1);
const OUT = process.env.OUTPOST_OUTPUT_DIR ?? join(process.cwd(), 'output');
const DATA = process.env.OUTPOST_DATA_DIR;
const FEATURES = 4;
const CLASSES = 3;

function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generated(n, rnd) {
  const centers = [[1, 1, 0, 0], [-1, 0, 1, 0], [0, -1, -1, 1]];
  const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const rows = [];
  for (let i = 0; i < n; i++) {
    const label = i % CLASSES;
    rows.push({ x: centers[label].map((c) => c + 0.6 * gauss()), label });
  }
  return rows;
}

function fromCsv(file) {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const cells = line.split(',').map(Number);
      return { x: cells.slice(0, FEATURES), label: cells[FEATURES] };
    });
}

const csv = DATA && join(DATA, 'data.csv');
const all = csv && existsSync(csv) ? fromCsv(csv) : generated(600, random(SEED));
// With several nodes, each rank trains on its own shard of the data.
const data = all.filter((_, i) => i % WORLD === RANK);
console.log(`rank ${RANK}/${WORLD}: ${data.length} examples (${csv && existsSync(csv) ? 'dataset ' + csv : 'generated, seed ' + SEED})`);

const rnd = random(SEED + 1);
const W = Array.from({ length: FEATURES * CLASSES }, () => (rnd() - 0.5) * 0.1);
const b = new Array(CLASSES).fill(0);

function forward(x) {
  const logits = b.map((bias, c) => bias + x.reduce((s, v, f) => s + v * W[f * CLASSES + c], 0));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const sum = exps.reduce((s, e) => s + e, 0);
  return exps.map((e) => e / sum);
}

for (let epoch = 1; epoch <= EPOCHS; epoch++) {
  const gW = new Array(W.length).fill(0);
  const gb = new Array(CLASSES).fill(0);
  let loss = 0;
  let correct = 0;
  for (const { x, label } of data) {
    const p = forward(x);
    loss -= Math.log(p[label] + 1e-12);
    if (p.indexOf(Math.max(...p)) === label) correct++;
    for (let c = 0; c < CLASSES; c++) {
      const g = p[c] - (c === label ? 1 : 0);
      gb[c] += g;
      for (let f = 0; f < FEATURES; f++) gW[f * CLASSES + c] += g * x[f];
    }
  }
  for (let i = 0; i < W.length; i++) W[i] -= (LR * gW[i]) / data.length;
  for (let c = 0; c < CLASSES; c++) b[c] -= (LR * gb[c]) / data.length;
  if (epoch % 10 === 0 || epoch === EPOCHS) {
    console.log(`outpost:metric loss=${(loss / data.length).toFixed(5)} accuracy=${(correct / data.length).toFixed(4)} step=${epoch}`);
  }
}

mkdirSync(OUT, { recursive: true });
// Float32 weights, as the model stores them, so the file is the same bytes everywhere.
const model = classifierModel(Array.from(Float32Array.from(W)), Array.from(Float32Array.from(b)), FEATURES, CLASSES);
writeFileSync(join(OUT, 'model.onnx'), model);
console.log(`wrote ${join(OUT, 'model.onnx')} (${model.length} bytes)`);
