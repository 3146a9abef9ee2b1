// A federated client's update: what the relay checks before it counts (the file, its size, its
// examples, the weights against the round's global model), and FedAvg over the good ones, one
// update read at a time. A problem with the update is the client's (refused, with why); a
// problem reading the relay's own global model is the relay's (thrown: the round waits).

import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { WeightedAverage, readModelWeights, updateProblem, type ModelWeights } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { ClientAnswer } from './round-rules.js';

/** The file a client writes its update to, in OUTPOST_OUTPUT_DIR. */
export const UPDATE_FILE = 'model.onnx';
/** The metric a client weights its update with. */
export const EXAMPLES_METRIC = 'num_examples';

export interface GlobalModel {
  sha256: string;
  buf: Buffer;
  weights: ModelWeights;
}

/** The global models being checked against, read once each (a few rounds' worth at most). */
export class GlobalModels {
  readonly #cache = new Map<string, GlobalModel>();

  constructor(readonly artifacts: ArtifactStore) {}

  /** Throws when the relay's own file is missing or unreadable: that is no client's fault. */
  async get(sha256: string): Promise<GlobalModel> {
    let g = this.#cache.get(sha256);
    if (!g) {
      const buf = await readFile(this.artifacts.path(sha256));
      g = { sha256, buf, weights: readModelWeights(buf) };
      if (this.#cache.size >= 4) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(sha256, g);
    }
    return g;
  }

  forget(sha256: string): void {
    this.#cache.delete(sha256);
  }
}

/** Whether an update can be averaged into the global model, and its weight. */
export async function checkUpdate(global: GlobalModel, artifacts: ArtifactStore, output: { sha256: string; size: number } | undefined, numExamples: number | undefined): Promise<ClientAnswer> {
  if (!output) return { kind: 'refused', reason: `the run wrote no ${UPDATE_FILE} in OUTPOST_OUTPUT_DIR` };
  if (numExamples === undefined) return { kind: 'refused', reason: `the run reported no ${EXAMPLES_METRIC} (print "outpost:metric ${EXAMPLES_METRIC}=N")` };
  if (!Number.isSafeInteger(numExamples) || numExamples <= 0) return { kind: 'refused', reason: `${EXAMPLES_METRIC} is ${numExamples}: it must be a whole number above 0` };
  // The same initializers take the same bytes; a little slack for encoders that pack differently.
  const bound = 2 * global.buf.length + 1024 * 1024;
  if (output.size > bound) return { kind: 'refused', reason: `its ${UPDATE_FILE} is ${output.size} bytes, over ${bound} (twice the global model's ${global.buf.length} and 1 MiB)` };
  const buf = await readFile(artifacts.path(output.sha256));
  let weights: ModelWeights;
  try {
    weights = readModelWeights(buf);
  } catch (err) {
    return { kind: 'refused', reason: `its ${UPDATE_FILE} cannot be read as an ONNX model: ${(err as Error).message}` };
  }
  const problem = updateProblem(global.buf, global.weights, buf, weights);
  return problem ? { kind: 'refused', reason: problem } : { kind: 'update', numExamples };
}

/** FedAvg of the checked updates into a copy of the global model, stored as an artifact; its sha256. */
export async function averageUpdates(global: GlobalModel, artifacts: ArtifactStore, updates: Array<{ sha256: string; numExamples: number }>): Promise<string> {
  const avg = new WeightedAverage(global.buf, global.weights);
  for (const u of updates) {
    const buf = await readFile(artifacts.path(u.sha256));
    avg.add(buf, readModelWeights(buf), u.numExamples);
  }
  const staged = await artifacts.stage(Readable.from([avg.result()]));
  await staged.commit();
  return staged.sha256;
}

/** Each metric's latest value per participant, averaged weighted by examples; num_examples summed. */
export function roundMetrics(latest: ReadonlyArray<{ rank: number; name: string; value: number }>, participants: ReadonlyArray<{ rank: number; numExamples: number }>): Record<string, number> {
  const weight = new Map(participants.map((p) => [p.rank, p.numExamples]));
  const sums = new Map<string, { sum: number; total: number }>();
  for (const m of latest) {
    const w = weight.get(m.rank);
    if (w === undefined || m.name === EXAMPLES_METRIC) continue;
    const s = sums.get(m.name) ?? { sum: 0, total: 0 };
    s.sum += m.value * w;
    s.total += w;
    sums.set(m.name, s);
  }
  const out: Record<string, number> = { [EXAMPLES_METRIC]: participants.reduce((n, p) => n + p.numExamples, 0) };
  for (const [name, s] of sums) if (s.total > 0) out[name] = s.sum / s.total;
  return out;
}
