// Makes a non-IID federated dataset, as devices really hold data: each device sees mostly one
// class (80 % of its rows) and some of a second (20 %), and never the third. Alone, a device can
// learn at best two of the three classes; together the fleet sees all of them.
//
//   node make-data.js OUTDIR [--devices 3] [--seed 7]
//
// writes OUTDIR/device-1/data.csv … (columns f1,f2,f3,f4,label; devices of 150, 200, 250, … rows,
// so FedAvg's weighting by num_examples matters) and OUTDIR/test.csv, a balanced held-out set.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CLASSES, gauss, random } from './softmax.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { devices: { type: 'string', default: '3' }, seed: { type: 'string', default: '7' } },
});
if (positionals.length !== 1) {
  console.error('usage: node make-data.js OUTDIR [--devices 3] [--seed 7]');
  process.exit(2);
}
const out = resolve(positionals[0]);
const devices = Number(values.devices);
if (!Number.isInteger(devices) || devices < 1) {
  console.error(`make-data.js: --devices must be a whole number ≥ 1, not ${values.devices}`);
  process.exit(2);
}
const rnd = random(Number(values.seed));

// Three overlapping Gaussian blobs (the classifier example's, noisier): a real task, not a trivial one.
const centers = [[1, 1, 0, 0], [-1, 0, 1, 0], [0, -1, -1, 1]];
const sample = (label) => ({ x: centers[label].map((c) => c + 0.8 * gauss(rnd)), label });

function write(file, rows) {
  // Shuffled so a file's order says nothing about its labels (training is full-batch anyway).
  for (let i = rows.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [rows[i], rows[j]] = [rows[j], rows[i]];
  }
  const lines = rows.map(({ x, label }) => [...x.map((v) => v.toFixed(4)), label].join(','));
  writeFileSync(file, ['f1,f2,f3,f4,label', ...lines].join('\n') + '\n');
}

for (let d = 1; d <= devices; d++) {
  const n = 100 + 50 * d;
  const main = (d - 1) % CLASSES;
  const second = d % CLASSES;
  const major = Math.round(n * 0.8);
  const rows = [...Array.from({ length: major }, () => sample(main)), ...Array.from({ length: n - major }, () => sample(second))];
  mkdirSync(join(out, `device-${d}`), { recursive: true });
  write(join(out, `device-${d}`, 'data.csv'), rows);
  console.log(`device-${d}: ${n} rows, ${major} of class ${main}, ${n - major} of class ${second}`);
}
const test = Array.from({ length: 100 * CLASSES }, (_, i) => sample(i % CLASSES));
write(join(out, 'test.csv'), test);
console.log(`test.csv: ${test.length} rows, ${test.length / CLASSES} of each class`);
