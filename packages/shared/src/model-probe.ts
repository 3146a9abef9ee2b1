// Checks that a file is an ONNX model onnxruntime can load, in a child process, and returns
// its signature. onnxruntime can crash the whole process on a malformed or hostile model
// (microsoft/onnxruntime#4349, #21507), so the relay and agent never try a file in-process first.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { OutpostError } from './errors.js';
import type { ModelSignature } from './signature.js';
import type { SelfTestInput } from './sample.js';

const CHILD = fileURLToPath(new URL('./model-probe-child.js', import.meta.url));

export interface ProbeOptions {
  timeoutMs?: number;
}

/** The outcome of running the model once at push: on which input, and whether it ran. */
export interface SelfTestResult {
  input: SelfTestInput;
  ok: boolean;
  /** Why it failed, naming the input and what to do. */
  error?: string;
}

export async function probeModel(file: string, opts: ProbeOptions = {}): Promise<ModelSignature> {
  return (await probe(file, [], opts)).signature;
}

/**
 * Loads the model and runs it once, in the child process: on the sample in `sampleFile` (a
 * KServe v2 request body), or on a synthetic input from the signature. A sample that does not
 * fit the signature is OUTPOST_ERR_TENSOR_INVALID; a model that fails the run is a result.
 */
export async function probeAndSelfTest(file: string, name: string, sampleFile: string | undefined, opts: ProbeOptions = {}): Promise<{ signature: ModelSignature; selfTest: SelfTestResult }> {
  const { signature, selfTest } = await probe(file, [sampleFile ?? '-', name], opts);
  return { signature, selfTest: selfTest! };
}

async function probe(file: string, extra: string[], opts: ProbeOptions): Promise<{ signature: ModelSignature; selfTest?: SelfTestResult }> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const child = spawn(process.execPath, [CHILD, file, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  }).finally(() => clearTimeout(timer));

  let result: { ok: true; signature: ModelSignature; selfTest?: SelfTestResult } | { ok: false; message: string; code?: string } | undefined;
  try {
    result = JSON.parse(out);
  } catch {
    result = undefined;
  }
  if (result?.ok) return result;
  if (result && !result.ok && result.code === 'OUTPOST_ERR_TENSOR_INVALID') throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', result.message);
  if (result && !result.ok) throw new OutpostError('OUTPOST_ERR_MODEL_INVALID', `not a loadable ONNX model: ${cleanOrtMessage(result.message)}`);
  const how = signal ? `crashed (${signal})` : `exited with code ${code}`;
  throw new OutpostError('OUTPOST_ERR_MODEL_INVALID', `onnxruntime ${how} while loading the model${err ? `: ${err.trim().split('\n').pop()}` : ''}`);
}

/** onnxruntime prefixes its messages with source locations; keep the part a person can act on. */
function cleanOrtMessage(message: string): string {
  return message
    .replace(/^\[[^\]]*\]\s*/, '')
    .replace(/Load model from \S+ failed:\s*/, '').replace(/\s+/g, ' ').trim().slice(0, 500);
}
