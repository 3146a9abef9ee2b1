// The in-process baseline of bench/inference: onnxruntime-node with exactly the agent's session
// options (intra-op threads, one inter-op thread, optimization `all`, no spinning) and its
// instance count (one session per worker thread, as the agent's engine runs them), each
// running back to back on pre-made batch-1 inputs, with no HTTP and no hand-off. The bench runs
// it pinned to the agent's core.
//
//   in-process.ts MODEL '{"threads":1,"instances":2,"shape":[3,48,192]}'
// then one JSON line per cell on stdin, {"concurrency":16,"seconds":5}; answers one JSON line
// per cell on stdout, {"itemsPerS":…,"p50":…,"p99":…}. The first line out is
// {"ready":true,"ort":"1.30.0","input":"image"}. Each instance runs in-process-worker.mjs
// (plain JS: worker threads do not get tsx's loader).

import { Worker } from 'node:worker_threads';
import { createInterface } from 'node:readline';
import * as ort from 'onnxruntime-node';

interface Setup {
  threads: number;
  instances: number;
  shape: number[];
}

const sessionOptions = (threads: number): ort.InferenceSession.SessionOptions => ({
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
});

/** 32 batch-1 inputs of uniform noise (a fixed LCG: the same on every run). */
function inputs(shape: number[]): Float32Array[] {
  let seed = 1;
  const n = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: 32 }, () =>
    Float32Array.from({ length: n }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    }),
  );
}

{
  const model = process.argv[2]!;
  const setup = JSON.parse(process.argv[3]!) as Setup;
  const workers = await Promise.all(
    Array.from({ length: setup.instances }, async () => {
      const w = new Worker(new URL('./in-process-worker.mjs', import.meta.url), { workerData: { model, setup, options: sessionOptions(setup.threads), inputs: inputs(setup.shape) } });
      await new Promise<void>((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
      });
      return w;
    }),
  );
  const probe = await ort.InferenceSession.create(model, sessionOptions(setup.threads));
  process.stdout.write(`${JSON.stringify({ ready: true, ort: ort.env.versions.common, input: probe.inputNames[0] })}\n`);
  await probe.release();
  const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  for await (const line of createInterface({ input: process.stdin })) {
    const { concurrency, seconds } = JSON.parse(line) as { concurrency: number; seconds: number };
    // As many runs in flight as the concurrency asks, up to the instances the agent has.
    const busy = workers.slice(0, Math.min(concurrency, workers.length));
    const all = await Promise.all(
      busy.map(
        (w) =>
          new Promise<number[]>((resolve) => {
            w.once('message', resolve);
            w.postMessage({ warmMs: 1000, ms: seconds * 1000 });
          }),
      ),
    );
    const latencies = all.flat().sort((a, b) => a - b);
    process.stdout.write(`${JSON.stringify({ itemsPerS: latencies.length / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) })}\n`);
  }
  for (const w of workers) await w.terminate();
}
