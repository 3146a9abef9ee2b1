// Runs in a short-lived child process: loads one ONNX file with onnxruntime and prints its
// signature as JSON on stdout. A model that crashes onnxruntime only takes this process down.
// With a second argument it also runs the model once (the self-test): on the sample in that
// file, or on a synthetic input built from the signature when it is "-"; a third names the
// model, for the message.

import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { signatureFromSession } from './model-signature.js';
import { parseSample, selfTestFailure, selfTestInputs } from './sample.js';
import { toOrtTensor } from './ort-tensors.js';

async function main(): Promise<void> {
  const [file, selfTest, name = 'NAME'] = process.argv.slice(2);
  if (!file) throw new Error('usage: model-probe-child FILE [SAMPLE.json|- [MODEL_NAME]]');
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const signature = signatureFromSession(session);
  let test: { input: 'sample' | 'synthetic'; ok: boolean; error?: string } | undefined;
  if (selfTest) {
    // A sample that does not fit the signature is the caller's mistake, reported as such.
    const sample = selfTest === '-' ? undefined : parseSample(readFileSync(selfTest, 'utf8'), signature);
    const { input, tensors } = selfTestInputs(signature, sample);
    try {
      const feeds = Object.fromEntries(tensors.map((t) => {
        const o = toOrtTensor(t);
        return [t.name, new ort.Tensor(o.type as ort.Tensor.Type, o.data as never, o.dims)];
      }));
      await session.run(feeds);
      test = { input, ok: true };
    } catch (err) {
      test = { input, ok: false, error: selfTestFailure(input, (err as Error).message.replace(/\s+/g, ' ').slice(0, 500), name) };
    }
  }
  await session.release();
  process.stdout.write(JSON.stringify({ ok: true, signature, selfTest: test }));
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string }).code;
  process.stdout.write(JSON.stringify({ ok: false, message, code }));
  process.exitCode = 1;
});
