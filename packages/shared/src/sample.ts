// A model version's sample: one KServe v2 request body (`{"inputs": [...]}`) that a person gives
// with `models push --sample`. Models whose inputs carry meaning (a sample rate, token ids in a
// vocabulary, a mask, a state) cannot be run on zeros shaped from the signature; their
// self-test and warm-up run on the sample instead. The relay checks it at push (against the
// signature, then by running the model in its probe child); agents fetch it as an artifact.

import { OutpostError } from './errors.js';
import { sampleInputs, validateInputs, type ModelSignature, type RequestTensor } from './signature.js';

/** Largest sample accepted: room for a few images as JSON numbers. */
export const MAX_SAMPLE_BYTES = 16 * 1024 * 1024;

/** What a self-test runs on. */
export type SelfTestInput = 'sample' | 'synthetic';

/** The sample's inputs, checked against the signature; OUTPOST_ERR_TENSOR_INVALID naming the problem. */
export function parseSample(text: string, signature: ModelSignature): RequestTensor[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', `the sample is not JSON (${(err as Error).message}): give a KServe v2 request body, {"inputs": [...]}`);
  }
  const inputs = typeof body === 'object' && body !== null ? (body as { inputs?: unknown }).inputs : undefined;
  if (!Array.isArray(inputs)) throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', 'the sample needs "inputs": give a KServe v2 request body, {"inputs": [{"name", "shape", "datatype", "data"}]}');
  try {
    return validateInputs(signature, inputs);
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', `the sample does not fit the model: ${(err as Error).message}`);
  }
}

/**
 * Inputs for a run of `rows` rows: the sample's (repeated row-wise when it has one row and the
 * first dimension is dynamic), or the synthetic ones derived from the signature.
 */
export function selfTestInputs(signature: ModelSignature, sample: RequestTensor[] | undefined, rows = 1): { input: SelfTestInput; tensors: RequestTensor[] } {
  if (!sample) return { input: 'synthetic', tensors: sampleInputs(signature, rows) };
  if (rows === 1) return { input: 'sample', tensors: sample };
  const tileable = sample.every((t) => {
    const spec = signature.inputs.find((s) => s.name === t.name);
    return spec?.shape[0] === -1 && t.shape[0] === 1 && Array.isArray(t.data);
  });
  if (!tileable) return { input: 'sample', tensors: sample };
  return {
    input: 'sample',
    tensors: sample.map((t) => {
      const row = t.data as unknown[];
      const data = new Array<unknown>(row.length * rows);
      for (let r = 0; r < rows; r++) for (let i = 0; i < row.length; i++) data[r * row.length + i] = row[i];
      return { ...t, shape: [rows, ...t.shape.slice(1)], data };
    }),
  };
}

/** How a self-test's failure reads, naming what it ran on and what to do (for model `name`). */
export function selfTestFailure(input: SelfTestInput, message: string, name: string): string {
  return input === 'sample'
    ? `the model fails on the version's sample: ${message}`
    : `the model fails on a synthetic input built from its signature (${message}): give it a real one with outpost-relay models push FILE --name ${name} --sample REQUEST.json, or deploy with --self-test off`;
}
