// One instance of bench/inference's in-process baseline: a session of its own, running back
// to back on the inputs it was given when asked, answering with the latencies (ms).
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';

// onnxruntime-node as the agent resolves it.
const ort = createRequire(new URL('../../packages/agent/package.json', import.meta.url))('onnxruntime-node');
const { model, setup, options, inputs } = workerData;
const session = await ort.InferenceSession.create(model, options);
const input = session.inputNames[0];
const feeds = inputs.map((d) => ({ [input]: new ort.Tensor('float32', d, [1, ...setup.shape]) }));
parentPort.on('message', async ({ warmMs, ms }) => {
  const warm = performance.now() + warmMs;
  const end = warm + ms;
  const latencies = [];
  for (let i = 0; ; i++) {
    const started = performance.now();
    if (started >= end) break;
    await session.run(feeds[i % feeds.length]);
    if (started >= warm) latencies.push(performance.now() - started);
  }
  parentPort.postMessage(latencies);
});
parentPort.postMessage('ready');
