// One loaded model version: its inference engine (sessions on worker threads), batch queue,
// signature and stats.

import { OutpostError, largestLegalRequest, selfTestFailure, selfTestInputs, servingKey, validateInputs, type ModelSignature, type RequestTensor, type SelfTestInput, type ServingConfig } from '@outpost/shared';
import { InferenceEngine, type EngineEvents } from './inference-engine.js';
import { ModelStats } from './model-stats.js';
import { fromOrtTensor, toOrtTensor, type OutputTensor } from './tensors.js';
import { BatchQueue, DEFAULT_BATCHING, hasBatchDimension } from './batch-queue.js';

/** What a deployment may set about serving (see ServingConfig); the agent's defaults fill the rest. */
export type SessionSettings = ServingConfig;

/** Rows one request may carry when the first dimension is dynamic (more when batches are larger). */
export const MAX_REQUEST_ROWS = 64;

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
  /** servingKey() of the settings it was loaded with: a change of settings reloads the model. */
  readonly servingKey: string;
  /** The largest request body that can be legal for this model (null: unbounded by the signature). */
  readonly maxRequest: { bytes: number; why: string } | null;
  readonly #engine: InferenceEngine;
  readonly #queue: BatchQueue;
  readonly #settings: ServingConfig;
  #inflight = 0;
  #retired = false;
  #released?: Promise<void>;

  /** False for an engine borrowed from elsewhere (the fleet simulator shares one per file). */
  readonly #ownsEngine: boolean;

  private constructor(id: ModelIdentity, engine: InferenceEngine, stats: ModelStats, settings: ServingConfig, onBatch: ((rows: number) => void) | undefined, ownsEngine: boolean) {
    this.#ownsEngine = ownsEngine;
    this.name = id.name;
    this.version = id.version;
    this.sha256 = id.sha256;
    this.#engine = engine;
    this.signature = engine.signature;
    this.stats = stats;
    this.#settings = settings;
    this.servingKey = servingKey(settings);
    this.maxRequest = largestLegalRequest(this.signature, Math.max(MAX_REQUEST_ROWS, settings.maxBatchSize ?? 1));
    const batching = {
      maxBatchSize: settings.maxBatchSize ?? DEFAULT_BATCHING.maxBatchSize,
      maxQueueDelayMs: settings.maxQueueDelayMs ?? DEFAULT_BATCHING.maxQueueDelayMs,
      maxQueue: settings.maxQueue ?? DEFAULT_BATCHING.maxQueue,
      instances: engine.instances,
    };
    this.#queue = new BatchQueue((feeds, outputs) => engine.run(feeds, outputs), this.signature.inputs.map((i) => i.name), hasBatchDimension(this.signature), batching, onBatch);
  }

  /** Serves an engine started elsewhere; retiring this model leaves the engine alone. */
  static borrow(id: ModelIdentity, engine: InferenceEngine, stats = new ModelStats(), settings: ServingConfig = {}): ServedModel {
    return new ServedModel(id, engine, stats, settings, undefined, false);
  }

  /** `hooks.onBatch` hears the rows of every run; `hooks.onThreadLost` of a session thread that died. */
  static async load(id: ModelIdentity, file: string, settings: ServingConfig = {}, stats = new ModelStats(), hooks: { onBatch?: (rows: number) => void } & EngineEvents = {}): Promise<ServedModel> {
    return new ServedModel(id, await InferenceEngine.start(file, settings, hooks), stats, settings, hooks.onBatch, true);
  }

  /** The execution provider its sessions run on (see InferenceEngine.executionProvider). */
  get executionProvider(): string {
    return this.#engine.executionProvider;
  }

  /** The deployment's providers skipped before that one, with why. */
  get providersSkipped(): ReadonlyArray<{ provider: string; reason: string }> {
    return this.#engine.providersSkipped;
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
   * Typed-array inputs (binary tensors) are handed over: their buffers move to a session thread.
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
   * Runs one inference on the version's sample (checked inputs, see parseSample) or, without
   * one, on an input derived from the signature. A model that loads but cannot run is caught
   * here, before it takes traffic; its session is released. Returns what it ran on.
   */
  async selfTest(sample?: RequestTensor[]): Promise<SelfTestInput> {
    const { input, tensors } = selfTestInputs(this.signature, sample);
    try {
      await this.infer(tensors);
    } catch (err) {
      await this.retire();
      throw new Error(`self-test inference failed: ${selfTestFailure(input, (err as Error).message, this.name)}`, { cause: err });
    }
    return input;
  }

  /**
   * Warm-up runs (`warmup`, default 1) at batch 1 and, when batching, at the largest batch, on
   * the sample when there is one: onnxruntime sizes its buffers on the first run of a shape,
   * so users do not pay for it.
   */
  async warmUp(sample?: RequestTensor[]): Promise<void> {
    const runs = this.#settings.warmup ?? 1;
    const sizes = this.batching ? [1, this.#settings.maxBatchSize ?? 1] : [1];
    const outputs = this.signature.outputs.map((o) => o.name);
    for (const rows of sizes) {
      const feeds = Object.fromEntries(validateInputs(this.signature, selfTestInputs(this.signature, sample, rows).tensors).map((t) => [t.name, toOrtTensor(t)]));
      for (let i = 0; i < runs; i++) await this.#engine.runOnEach(feeds, outputs);
    }
  }

  /** Stops taking part: the session is released once requests in flight have finished. */
  retire(): Promise<void> {
    this.#retired = true;
    return this.#inflight === 0 ? this.#release() : Promise.resolve();
  }

  #release(): Promise<void> {
    if (!this.#ownsEngine) return Promise.resolve();
    this.#released ??= this.#engine.release();
    return this.#released;
  }
}
