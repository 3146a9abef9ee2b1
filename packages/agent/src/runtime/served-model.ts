// One loaded model version: its onnxruntime session, signature and stats. Sessions are
// created with spinning off, so an idle device does not burn CPU (microsoft/onnxruntime#2741).

import * as ort from 'onnxruntime-node';
import { OutpostError, sampleInputs, signatureFromSession, validateInputs, type ModelSignature } from '@outpost/shared';
import { ModelStats } from './model-stats.js';
import { fromOrtTensor, toOrtTensor, type ResponseTensor } from './tensors.js';

export interface SessionSettings {
  intraOpThreads?: number;
  interOpThreads?: number;
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
  readonly #session: ort.InferenceSession;
  #inflight = 0;
  #retired = false;
  #released?: Promise<void>;

  /** False for a session borrowed from elsewhere (the fleet simulator shares one per file). */
  readonly #ownsSession: boolean;

  private constructor(id: ModelIdentity, session: ort.InferenceSession, stats: ModelStats, ownsSession = true) {
    this.#ownsSession = ownsSession;
    this.name = id.name;
    this.version = id.version;
    this.sha256 = id.sha256;
    this.#session = session;
    this.signature = signatureFromSession(session);
    this.stats = stats;
  }

  /** Serves a session created elsewhere; retiring this model leaves the session alone. */
  static borrow(id: ModelIdentity, session: ort.InferenceSession, stats = new ModelStats()): ServedModel {
    return new ServedModel(id, session, stats, false);
  }

  static async createSession(file: string, settings: SessionSettings = {}): Promise<ort.InferenceSession> {
    return ort.InferenceSession.create(file, {
      intraOpNumThreads: settings.intraOpThreads ?? 1,
      interOpNumThreads: settings.interOpThreads ?? 1,
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  }

  static async load(id: ModelIdentity, file: string, settings: SessionSettings = {}, stats = new ModelStats()): Promise<ServedModel> {
    return new ServedModel(id, await ServedModel.createSession(file, settings), stats);
  }

  /** Runs a KServe v2 request's inputs; throws OUTPOST_ERR_TENSOR_INVALID before running bad ones. */
  async infer(inputs: unknown, requestedOutputs?: string[]): Promise<ResponseTensor[]> {
    const tensors = validateInputs(this.signature, inputs);
    const outputs = requestedOutputs ?? this.signature.outputs.map((o) => o.name);
    for (const name of outputs) {
      if (!this.signature.outputs.some((o) => o.name === name)) {
        throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', `unknown output "${name}": the model gives ${this.signature.outputs.map((o) => `"${o.name}"`).join(', ')}`);
      }
    }
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of tensors) feeds[t.name] = toOrtTensor(t);
    this.#inflight++;
    try {
      const result = await this.#session.run(feeds, outputs);
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
