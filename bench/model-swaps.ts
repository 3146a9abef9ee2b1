// bench/model-swaps: RSS over many load → run → release cycles of a model's inference engine
// (session worker threads), the path every model swap on a device takes. onnxruntime has
// leaked across session create/release in Node (microsoft/onnxruntime#25325); this shows
// whether it does here.
//
//   npx tsx bench/model-swaps.ts [--cycles 50] [--model test/fixtures/models/cnn.onnx]

import { parseArgs } from 'node:util';
import { InferenceEngine } from '../packages/agent/dist/runtime/inference-engine.js';

const { values } = parseArgs({ options: { cycles: { type: 'string', default: '50' }, model: { type: 'string', default: 'test/fixtures/models/cnn.onnx' } } });
const rss = () => process.memoryUsage().rss / 1048576;
const start = rss();
let first = 0;
for (let i = 1; i <= Number(values.cycles); i++) {
  const engine = await InferenceEngine.start(values.model!);
  const feeds = Object.fromEntries(engine.signature.inputs.map((t) => {
    const dims = t.shape.map((d) => (d === -1 ? 1 : d));
    return [t.name, { type: 'float32', dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) }];
  }));
  await engine.run(feeds, engine.signature.outputs.map((o) => o.name));
  await engine.release();
  if (i === 5) first = rss();
  if (i % 10 === 0) process.stdout.write(`after ${i} cycles: RSS ${rss().toFixed(0)} MiB\n`);
}
process.stdout.write(`RSS at start ${start.toFixed(0)} MiB, after 5 cycles ${first.toFixed(0)} MiB, after ${values.cycles}: ${rss().toFixed(0)} MiB (${((rss() - first) / (Number(values.cycles) - 5)).toFixed(2)} MiB per cycle after the fifth)\n`);
