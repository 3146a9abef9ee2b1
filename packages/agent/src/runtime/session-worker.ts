// One onnxruntime session in a worker thread. onnxruntime-node runs inference synchronously
// on the calling thread (its run() is a setImmediate around a blocking call): on the main
// thread every run would stop the HTTP server. Here the main thread keeps parsing the next
// requests while this thread computes.

import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { signatureFromSession, type ServingConfig } from '@outpost/shared';
import type { WireTensor, WorkerReply, WorkerRequest } from './worker-protocol.js';

const { file, settings } = workerData as { file: string; settings: ServingConfig };
const port = parentPort!;

function toWire(t: ort.Tensor): WireTensor {
  return { type: t.type, dims: [...t.dims], data: t.data as WireTensor['data'] };
}

try {
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: settings.intraOpThreads ?? 1,
    interOpNumThreads: settings.interOpThreads ?? 1,
    graphOptimizationLevel: settings.graphOptimization ?? 'all',
    executionProviders: settings.executionProviders ?? ['cpu'],
    // Idle intra-op threads spin by default, burning an idle device's CPU (microsoft/onnxruntime#2741).
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  port.postMessage({ kind: 'ready', signature: signatureFromSession(session) } satisfies WorkerReply);
  port.on('message', (msg: WorkerRequest) => {
    if (msg.kind === 'release') {
      void session.release().finally(() => port.close());
      return;
    }
    const feeds = Object.fromEntries(Object.entries(msg.feeds).map(([name, t]) => [name, new ort.Tensor(t.type as ort.Tensor.Type, t.data as never, t.dims)]));
    session.run(feeds, msg.outputs).then(
      (out) => {
        const outputs = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, toWire(v)]));
        const reply = { kind: 'result', id: msg.id, outputs } satisfies WorkerReply;
        // Move the output buffers back when onnxruntime gave each its own; clone otherwise.
        const buffers = Object.values(outputs).flatMap((t) => (Array.isArray(t.data) || t.data.byteLength !== t.data.buffer.byteLength ? [] : [t.data.buffer as ArrayBuffer]));
        try {
          port.postMessage(reply, [...new Set(buffers)]);
        } catch {
          port.postMessage(reply);
        }
      },
      (err: unknown) => port.postMessage({ kind: 'error', id: msg.id, message: (err as Error).message } satisfies WorkerReply),
    );
  });
} catch (err) {
  port.postMessage({ kind: 'failed', message: (err as Error).message } satisfies WorkerReply);
}
