// What init.js, train.js, evaluate.js, make-data.js and simulate.js share: the seeded random
// numbers, the CSV format, and the classifier's forward pass and metrics, all in plain Node.js.

import { readFileSync } from 'node:fs';

export const FEATURES = 4;
export const CLASSES = 3;

/** mulberry32: a small seeded PRNG, so the same seed gives the same data and weights everywhere. */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal sample (Box–Muller). */
export const gauss = (rnd) => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());

/** Rows of a CSV with a header line and columns f1..f4,label. */
export function readCsv(file) {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const cells = line.split(',').map(Number);
      return { x: cells.slice(0, FEATURES), label: cells[FEATURES] };
    });
}

/** softmax(x·W + b), W row-major [FEATURES, CLASSES]: what the ONNX graph computes. */
export function probabilities(W, b, x) {
  const logits = b.map((bias, c) => bias + x.reduce((s, v, f) => s + v * W[f * CLASSES + c], 0));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const sum = exps.reduce((s, e) => s + e, 0);
  return exps.map((e) => e / sum);
}

/** Mean cross-entropy, accuracy, and accuracy per true class (null for a class with no rows). */
export function metrics(W, b, rows) {
  let loss = 0;
  const right = new Array(CLASSES).fill(0);
  const seen = new Array(CLASSES).fill(0);
  for (const { x, label } of rows) {
    const p = probabilities(W, b, x);
    loss -= Math.log(p[label] + 1e-12);
    seen[label]++;
    if (p.indexOf(Math.max(...p)) === label) right[label]++;
  }
  const n = rows.length;
  return {
    examples: n,
    loss: loss / n,
    accuracy: right.reduce((s, r) => s + r, 0) / n,
    perClass: seen.map((s, c) => (s ? right[c] / s : null)),
  };
}

/** Why readWeights' result is not this classifier's W [4, 3] and b [3], or null when it is. */
export function shapeProblem({ W, b }) {
  if (W.dims.join('x') !== `${FEATURES}x${CLASSES}` || W.values.length !== FEATURES * CLASSES) return `W has shape [${W.dims}], not [${FEATURES},${CLASSES}]`;
  if (b.dims.join('x') !== `${CLASSES}` || b.values.length !== CLASSES) return `b has shape [${b.dims}], not [${CLASSES}]`;
  return null;
}
