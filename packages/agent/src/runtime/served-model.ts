// One loaded model version: its onnxruntime session, signature and stats. Sessions are
// created with spinning off, so an idle device does not burn CPU (microsoft/onnxruntime#2741).

import * as ort from 'onnxruntime-node';
import { OutpostError, sampleInputs, signatureFromSession, validateInputs, type ModelSignature, type ServingConfig } from '@outpost/shared';
import { ModelStats } from './model-stats.js';
import { fromOrtTensor, toOrtTensor, type OutputTensor } from './tensors.js';
import { BatchQueue, DEFAULT_BATCHING, hasBatchDimension } from './batch-queue.js';

/** What a deployment may set about serving (see ServingConfig); the agent's defaults fill the rest. */
export type SessionSettings = ServingConfig;

/** A deployment's serving settings as a comparable key: a change reloads the model. */
export function servingKey(serving: ServingConfig | undefined): string {
  const s = serving ?? {};
  return JSON.stringify(Object.keys(s).sort().map((k) => [k, s[k as keyof ServingConfig]]));
}

export interface ModelIdentity {
  name: string;
  version: number;
  sha256: string;
}

export class ServedModel {
  readonly name: string;
  readonly version: number;
  readonly sha256: string;
  readonly signature: ModelSignature;
  readonly stats: ModelStats;
  /** The serving settings it was loaded with (servingKey). */
  readonly servingKey: string;
  readonly #session: ort.InferenceSession;
  readonly #queue: BatchQueue;
  readonly #settings: ServingConfig;
  #inflight = 0;
  #retired = false;
  #released?: Promise<void>;

  /** False for a session borrowed from elsewhere (the fleet simulator shares one per file). */
  readonly #ownsSession: boolean;

  private constructor(id: ModelIdentity, session: ort.InferenceSession, stats: ModelStats, settings: ServingConfig, onBatch: ((rows: number) => void) | undefined, ownsSession: boolean) {
    this.#ownsSession = ownsSession;
    this.name = id.name;
    this.version = id.version;
    this.sha256 = id.sha256;
    this.#session = session;
    this.signature = signatureFromSession(session);
    this.stats = stats;
    this.#settings = settings;
    this.servingKey = servingKey(settings);
    const batching = {
      maxBatchSize: settings.maxBatchSize ?? DEFAULT_BATCHING.maxBatchSize,
      maxQueueDelayMs: settings.maxQueueDelayMs ?? DEFAULT_BATCHING.maxQueueDelayMs,
      maxQueue: settings.maxQueue ?? DEFAULT_BATCHING.maxQueue,
    };
    const run = (feeds: Record<string, ort.Tensor>, outputs: string[]) => session.run(feeds, outputs);
    this.#queue = new BatchQueue(run, this.signature.inputs.map((i) => i.name), hasBatchDimension(this.signature), batching, onBatch);
  }

  /** Serves a session created elsewhere; retiring this model leaves the session alone. */
  static borrow(id: ModelIdentity, session: ort.InferenceSession, stats = new ModelStats(), settings: ServingConfig = {}): ServedModel {
    return new ServedModel(id, session, stats, settings, undefined, false);
  }

  static async createSession(file: string, settings: SessionSettings = {}): Promise<ort.InferenceSession> {
    return ort.InferenceSession.create(file, {
      intraOpNumThreads: settings.intraOpThreads ?? 1,
      interOpNumThreads: settings.interOpThreads ?? 1,
      graphOptimizationLevel: settings.graphOptimization ?? 'all',
      executionProviders: settings.executionProviders ?? ['cpu'],
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  }

  static async load(id: ModelIdentity, file: string, settings: ServingConfig = {}, stats = new ModelStats(), onBatch?: (rows: number) => void): Promise<ServedModel> {
    return new ServedModel(id, await ServedModel.createSession(file, settings), stats, settings, onBatch, true);
  }

  /** Requests waiting for a run. */
  get queueDepth(): number {
    return this.#queue.depth;
  }

  /** Whether concurrent requests are merged into batches. */
  get batching(): boolean {
    return this.#queue.batching;
  }

  /**
   * Runs a KServe v2 request's inputs (through the model's batch queue); throws
   * OUTPOST_ERR_TENSOR_INVALID before running bad ones, OUTPOST_ERR_OVERLOADED when the queue is full.
   */
  async infer(inputs: unknown, requestedOutputs?: string[]): Promise<OutputTensor[]> {
    const tensors = validateInputs(this.signature, inputs);
    const outputs = requestedOutputs ?? this.signature.outputs.map((o) => o.name);
    for (const name of outputs) {
      if (!this.signature.outputs.some((o) => o.name === name)) {
        throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', `unknown output "${name}": the model gives ${this.signature.outputs.map((o) => `"${o.name}"`).join(', ')}`);
      }
    }
    const feeds = tensors.map(toOrtTensor);
    this.#inflight++;
    try {
      const result = await this.#queue.submit(feeds, outputs);
      return outputs.map((name) => fromOrtTensor(name, result[name]!));
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      throw new OutpostError('OUTPOST_ERR_INFERENCE_FAILED', `onnxruntime failed: ${(err as Error).message}`);
    } finally {
      this.#inflight--;
      if (this.#retired && this.#inflight === 0) void this.#release();
    }
  }

  /**
   * Runs one inference on a sample input derived from the signature. A model that loads but
   * cannot run is caught here, before it takes traffic; its session is released.
   */
  async selfTest(): Promise<void> {
    try {
      await this.infer(sampleInputs(this.signature));
    } catch (err) {
      await this.retire();
      throw new Error(`self-test inference failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Warm-up runs (`warmup`, default 1) at batch 1 and, when batching, at the largest batch:
   * onnxruntime sizes its buffers on the first run of a shape, so users do not pay for it.
   */
  async warmUp(): Promise<void> {
    const runs = this.#settings.warmup ?? 1;
    const sizes = this.batching ? [1, this.#settings.maxBatchSize ?? 1] : [1];
    for (const rows of sizes) for (let i = 0; i < runs; i++) await this.infer(sampleInputs(this.signature, rows));
  }

  /** Stops taking part: the session is released once requests in flight have finished. */
  retire(): Promise<void> {
    this.#retired = true;
    return this.#inflight === 0 ? this.#release() : Promise.resolve();
  }

  #release(): Promise<void> {
    if (!this.#ownsSession) return Promise.resolve();
    this.#released ??= this.#session.release();
    return this.#released;
  }
}
