// One onnxruntime session in a worker thread. onnxruntime-node runs inference synchronously
// on the calling thread (its run() is a setImmediate around a blocking call): on the main
// thread every run would stop the HTTP server. Here the main thread keeps parsing the next
// requests while this thread computes.

import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { signatureFromSession, type ServingConfig } from '@outpost/shared';
import type { WireTensor, WorkerReply, WorkerRequest } from './worker-protocol.js';
import { providerOrder } from '../accelerators.js';

const { file, settings } = workerData as { file: string; settings: ServingConfig };
const port = parentPort!;

function toWire(t: ort.Tensor): WireTensor {
  return { type: t.type, dims: [...t.dims], data: t.data as WireTensor['data'] };
}

/**
 * A session on the first of the deployment's execution providers that works here, `cpu` last
 * (providerOrder): a provider this device lacks (no GPU, no provider library, a name this
 * platform's onnxruntime does not know) is skipped with onnxruntime's reason. When even `cpu`
 * fails, the model is at fault: that error is the one given.
 */
async function createSession(): Promise<{ session: ort.InferenceSession; executionProvider: string; skipped: Array<{ provider: string; reason: string }> }> {
  const skipped: Array<{ provider: string; reason: string }> = [];
  const order = providerOrder(settings.executionProviders);
  // onnxruntime-node drops a provider it has no backend for without a word (and the session
  // would run on the next): such a name is skipped here, so the provider reported is the one used.
  const known = new Set(ort.listSupportedBackends().map((b) => b.name));
  for (const [i, provider] of order.entries()) {
    if (!known.has(provider) && provider !== 'cpu') {
      skipped.push({ provider, reason: `this onnxruntime-node has no provider "${provider}" (it has ${[...known].join(', ')})` });
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(file, {
        intraOpNumThreads: settings.intraOpThreads ?? 1,
        interOpNumThreads: settings.interOpThreads ?? 1,
        graphOptimizationLevel: settings.graphOptimization ?? 'all',
        // The rest of the list stays behind it: nodes this provider cannot run go to the next
        // (TensorRT's to CUDA), as onnxruntime places them.
        executionProviders: [provider, ...order.slice(i + 1).filter((p) => known.has(p))],
        // Idle intra-op threads spin by default, burning an idle device's CPU (microsoft/onnxruntime#2741).
        extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      });
      return { session, executionProvider: provider, skipped };
    } catch (err) {
      if (i === order.length - 1) throw err;
      skipped.push({ provider, reason: String((err as Error).message).split('\n')[0]!.slice(0, 300) });
    }
  }
  throw new Error('no execution provider to try');
}

try {
  const { session, executionProvider, skipped } = await createSession();
  port.postMessage({ kind: 'ready', signature: signatureFromSession(session), executionProvider, skipped } satisfies WorkerReply);
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
