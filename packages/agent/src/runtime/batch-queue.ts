// Dynamic batching for one model, as Triton does it: requests wait in a bounded queue; a run
// takes the oldest request and every queued request that can be stacked with it along the
// batch dimension (same shapes past dimension 0), up to `maxBatchSize` rows, runs them as one,
// and splits the outputs back. While runs are under way the next batch forms, so batches grow
// with load without any delay at low load; `maxQueueDelayMs` may hold a run back for a fuller
// batch. A model without a batch dimension runs each request on its own. `instances` runs
// may be under way at once (Triton's instance count: one per core the model may use).

import { OutpostError, type NumericArray } from '@outpost/shared';
import type { WireTensor } from './worker-protocol.js';

export interface BatchingOptions {
  /** Rows per run; 1 turns batching off. */
  maxBatchSize: number;
  /** How long the oldest request may wait for a fuller batch. */
  maxQueueDelayMs: number;
  /** Requests waiting (not yet running) past which new ones are refused with 429. */
  maxQueue: number;
  /** Runs under way at once. */
  instances: number;
}

export const DEFAULT_BATCHING: BatchingOptions = { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueue: 64, instances: 1 };

type Outputs = Record<string, WireTensor>;
export type RunFn = (feeds: Record<string, WireTensor>, outputs: string[]) => Promise<Outputs>;

interface Job {
  feeds: WireTensor[];
  outputs: string[];
  rows: number;
  /** Requests with the same key can share a run; null: never merged. */
  key: string | null;
  at: number;
  resolve(out: Outputs): void;
  reject(err: unknown): void;
}

/** Thrown inside a merged run whose outputs do not split along dimension 0. */
class UnsplittableError extends Error {}

export class BatchQueue {
  readonly #run: RunFn;
  readonly #inputNames: string[];
  readonly #batchable: boolean;
  readonly #opts: BatchingOptions;
  readonly #onBatch: (rows: number) => void;
  readonly #queue: Job[] = [];
  #running = 0;
  #timer: NodeJS.Timeout | undefined;

  /**
   * `batchable`: every input and output has a dynamic first dimension, so rows can be stacked.
   * `onBatch` hears the number of rows of every run.
   */
  constructor(run: RunFn, inputNames: string[], batchable: boolean, opts: BatchingOptions, onBatch: (rows: number) => void = () => {}) {
    this.#run = run;
    this.#inputNames = inputNames;
    this.#batchable = batchable && opts.maxBatchSize > 1;
    this.#opts = opts;
    this.#onBatch = onBatch;
  }

  /** Requests waiting for a run. */
  get depth(): number {
    return this.#queue.length;
  }

  get batching(): boolean {
    return this.#batchable;
  }

  /** Queues one request (inputs in the model's input order); refuses it at once when full. */
  submit(feeds: WireTensor[], outputs: string[]): Promise<Outputs> {
    if (this.#queue.length >= this.#opts.maxQueue) {
      return Promise.reject(new OutpostError('OUTPOST_ERR_OVERLOADED', `${this.#queue.length} requests are already waiting for this model; retry shortly`));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ feeds, outputs, rows: Number(feeds[0]?.dims[0] ?? 1), key: this.#keyOf(feeds), at: performance.now(), resolve, reject });
      this.#pump();
    });
  }

  /** Shapes past dimension 0, for every input: requests agreeing on them can be stacked. */
  #keyOf(feeds: WireTensor[]): string | null {
    if (!this.#batchable || feeds.length === 0) return null;
    const rows = feeds[0]!.dims[0];
    if (feeds.some((f) => f.dims.length === 0 || f.dims[0] !== rows)) return null;
    return feeds.map((f) => f.dims.slice(1).join('x')).join('|');
  }

  #pump(): void {
    if (this.#running >= this.#opts.instances || this.#queue.length === 0) return;
    const head = this.#queue[0]!;
    if (this.#batchable && this.#opts.maxQueueDelayMs > 0 && head.key !== null) {
      const left = head.at + this.#opts.maxQueueDelayMs - performance.now();
      const rows = this.#queue.reduce((n, j) => n + (j.key === head.key ? j.rows : 0), 0);
      if (left > 0 && rows < this.#opts.maxBatchSize) {
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined;
          this.#pump();
        }, left);
        return;
      }
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#take();
    this.#running++;
    void this.#execute(batch).finally(() => {
      this.#running--;
      this.#pump();
    });
    this.#pump(); // another instance may take the next batch
  }

  /** The oldest request and the queued ones that stack with it, in arrival order. */
  #take(): Job[] {
    const head = this.#queue.shift()!;
    if (head.key === null) return [head];
    const batch = [head];
    let rows = head.rows;
    for (let i = 0; i < this.#queue.length && rows < this.#opts.maxBatchSize; ) {
      const job = this.#queue[i]!;
      if (job.key === head.key && rows + job.rows <= this.#opts.maxBatchSize) {
        batch.push(job);
        rows += job.rows;
        this.#queue.splice(i, 1);
      } else {
        i++;
      }
    }
    return batch;
  }

  async #execute(batch: Job[]): Promise<void> {
    if (batch.length === 1) return this.#runOne(batch[0]!);
    const outputs = [...new Set(batch.flatMap((j) => j.outputs))];
    const rows = batch.reduce((n, j) => n + j.rows, 0);
    let result: Outputs;
    try {
      result = await this.#run(this.#named((i) => stack(batch.map((j) => j.feeds[i]!), rows)), outputs);
      this.#onBatch(rows);
      const parts = split(result, batch.map((j) => j.rows));
      batch.forEach((j, k) => j.resolve(parts[k]!));
    } catch {
      // Outputs that do not follow the batch (UnsplittableError), or a merged run that failed:
      // each request on its own, so one bad request cannot fail its neighbours.
      for (const j of batch) await this.#runOne(j);
    }
  }

  /** Feeds by input name, the i-th input given by `input(i)`. */
  #named(input: (i: number) => WireTensor): Record<string, WireTensor> {
    return Object.fromEntries(this.#inputNames.map((name, i) => [name, input(i)]));
  }

  async #runOne(job: Job): Promise<void> {
    try {
      const out = await this.#run(this.#named((i) => job.feeds[i]!), job.outputs);
      this.#onBatch(job.rows);
      job.resolve(out);
    } catch (err) {
      job.reject(err);
    }
  }
}

/** Tensors with equal shapes past dimension 0, stacked into one of `rows` rows. */
function stack(tensors: WireTensor[], rows: number): WireTensor {
  const first = tensors[0]!;
  const dims = [rows, ...first.dims.slice(1)];
  if (first.type === 'string') return { type: 'string', dims, data: tensors.flatMap((t) => t.data as string[]) };
  const Ctor = (first.data as NumericArray).constructor as new (n: number) => NumericArray;
  const out = new Ctor(tensors.reduce((n, t) => n + t.data.length, 0));
  let at = 0;
  for (const t of tensors) {
    (out as Float32Array).set(t.data as Float32Array, at);
    at += t.data.length;
  }
  return { type: first.type, dims, data: out };
}

/** A merged run's outputs, cut back into each request's rows. */
function split(result: Outputs, rowsPerJob: number[]): Outputs[] {
  const total = rowsPerJob.reduce((a, b) => a + b, 0);
  const parts: Outputs[] = rowsPerJob.map(() => ({}));
  for (const [name, t] of Object.entries(result)) {
    if (t.dims.length === 0 || t.dims[0] !== total) throw new UnsplittableError(`output "${name}" has ${t.dims[0]} rows for a batch of ${total}`);
    const rowSize = t.data.length / total;
    let row = 0;
    rowsPerJob.forEach((rows, k) => {
      const from = row * rowSize;
      const to = (row + rows) * rowSize;
      const data = t.type === 'string' ? (t.data as string[]).slice(from, to) : (t.data as NumericArray).subarray(from, to);
      parts[k]![name] = { type: t.type, dims: [rows, ...t.dims.slice(1)], data };
      row += rows;
    });
  }
  return parts;
}

/** Whether rows can be stacked: every input and output has a dynamic first dimension. */
export function hasBatchDimension(signature: { inputs: Array<{ shape: number[] }>; outputs: Array<{ shape: number[] }> }): boolean {
  return [...signature.inputs, ...signature.outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
}
