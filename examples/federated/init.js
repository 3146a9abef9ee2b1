// Writes the first global model of a federated job: small seeded random weights (SEED, default
// 42), so every run of the example starts from the same bytes. Its graph is the one every client
// writes back (onnx.js), so the relay can check and average the clients' updates into it.
//
//   node init.js [PATH]        (default ./initial.onnx)

import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { classifierModel } from './onnx.js';
import { CLASSES, FEATURES, random } from './softmax.js';

const path = resolve(process.argv[2] ?? 'initial.onnx');
const rnd = random(Number(process.env.SEED ?? 42));
// Small, not zero: zero works for softmax regression too, but random is what a real model starts from.
const W = Array.from({ length: FEATURES * CLASSES }, () => (rnd() - 0.5) * 0.1);
const b = new Array(CLASSES).fill(0);
const model = classifierModel(W, b, FEATURES, CLASSES);
writeFileSync(path, model);
console.log(`wrote ${path} (${model.length} bytes): the round-0 global model`);
