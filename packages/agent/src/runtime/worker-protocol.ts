// Messages between a served model (main thread) and its session workers (session-worker.ts).

import type { ModelSignature, TensorArray } from '@outpost/shared';

/** A tensor as it crosses threads: onnxruntime's type name, dimensions and a typed array. */
export interface WireTensor {
  type: string;
  dims: readonly number[];
  data: TensorArray;
}

export type WorkerRequest = { kind: 'run'; id: number; feeds: Record<string, WireTensor>; outputs: string[] } | { kind: 'release' };

export type WorkerReply =
  | { kind: 'ready'; signature: ModelSignature; executionProvider?: string; skipped?: Array<{ provider: string; reason: string }> }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: Record<string, WireTensor> }
  | { kind: 'error'; id: number; message: string };
