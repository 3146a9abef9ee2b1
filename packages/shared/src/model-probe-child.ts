// Runs in a short-lived child process: loads one ONNX file with onnxruntime and prints its
// signature as JSON on stdout. A model that crashes onnxruntime only takes this process down.

import * as ort from 'onnxruntime-node';
import { signatureFromSession } from './model-signature.js';

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: model-probe-child FILE');
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const signature = signatureFromSession(session);
  await session.release();
  process.stdout.write(JSON.stringify({ ok: true, signature }));
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stdout.write(JSON.stringify({ ok: false, message }));
  process.exitCode = 1;
});
