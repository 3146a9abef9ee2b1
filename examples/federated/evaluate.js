// Scores a model file on a labelled CSV: accuracy and mean cross-entropy, and accuracy per class
// (where a model trained on one device's shard shows what it never saw).
//
//   node evaluate.js MODEL.onnx TEST.csv [--json]
//
// It computes the graph's softmax(x·W + b) in plain JS from the file's W and b, so it needs no
// runtime; the test checks the same file in onnxruntime.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readWeights } from './onnx.js';
import { metrics, readCsv, shapeProblem } from './softmax.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
if (positionals.length !== 2) {
  console.error('usage: node evaluate.js MODEL.onnx TEST.csv [--json]');
  process.exit(2);
}
const [modelPath, csvPath] = positionals;
const weights = readWeights(readFileSync(modelPath));
const problem = shapeProblem(weights);
if (problem) {
  console.error(`evaluate.js: ${modelPath} is not this example's classifier: ${problem}`);
  process.exit(2);
}
const { W, b } = weights;
const m = metrics(W.values, b.values, readCsv(csvPath));
if (values.json) console.log(JSON.stringify(m));
else {
  const perClass = m.perClass.map((a, c) => `${c}: ${a === null ? '-' : a.toFixed(3)}`).join(', ');
  console.log(`accuracy ${m.accuracy.toFixed(4)}  loss ${m.loss.toFixed(4)}  (${m.examples} examples; per class ${perClass})`);
}
