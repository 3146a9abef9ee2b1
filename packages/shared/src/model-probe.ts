// Checks that a file is an ONNX model onnxruntime can load, in a child process, and returns
// its signature. onnxruntime can crash the whole process on a malformed or hostile model
// (microsoft/onnxruntime#4349, #21507), so the relay and agent never try a file in-process first.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { OutpostError } from './errors.js';
import type { ModelSignature } from './signature.js';

const CHILD = fileURLToPath(new URL('./model-probe-child.js', import.meta.url));

export interface ProbeOptions {
  timeoutMs?: number;
}

export async function probeModel(file: string, opts: ProbeOptions = {}): Promise<ModelSignature> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const child = spawn(process.execPath, [CHILD, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  }).finally(() => clearTimeout(timer));

  let result: { ok: true; signature: ModelSignature } | { ok: false; message: string } | undefined;
  try {
    result = JSON.parse(out);
  } catch {
    result = undefined;
  }
  if (result?.ok) return result.signature;
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
