// The Open Inference Protocol (KServe v2) without its transport: which model serves a name,
// readiness, metadata, the token check, and an inference with its stats and metrics. The HTTP
// routes (server.ts) and the gRPC service (grpc-server.ts) both call it, so the two ports have
// the same semantics and the same error messages.

import { createHash, timingSafeEqual } from 'node:crypto';
import { OutpostError, type ReportedState, type TensorSpec } from '@outpost/shared';
import type { ModelTable } from '../runtime/model-table.js';
import type { ServedModel } from '../runtime/served-model.js';
import type { InferenceOutcome } from '../runtime/model-stats.js';
import type { AgentMetrics } from './agent-metrics.js';

export interface InferenceServiceOptions {
  table: ModelTable;
  agentVersion: string;
  /** The reconciler's view: which models are desired and in what state. */
  reported(): ReportedState;
  /** When set, every request needs this bearer token. */
  token?: string;
  metrics: AgentMetrics;
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class InferenceService {
  readonly #opts: InferenceServiceOptions;
  readonly #expected: Buffer | undefined;

  constructor(opts: InferenceServiceOptions) {
    this.#opts = opts;
    this.#expected = opts.token ? digest(opts.token) : undefined;
  }

  get metrics(): AgentMetrics {
    return this.#opts.metrics;
  }

  /** Whether requests need a token. */
  get guarded(): boolean {
    return this.#expected !== undefined;
  }

  /**
   * Throws OUTPOST_ERR_UNAUTHORIZED unless `authorization` ("Bearer TOKEN", the HTTP header or
   * the gRPC metadata) carries the token; digests compared in constant time.
   */
  authorize(authorization: string | undefined): void {
    if (!this.#expected) return;
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), this.#expected)) throw new OutpostError('OUTPOST_ERR_UNAUTHORIZED', 'this agent requires a token: Authorization: Bearer TOKEN');
  }

  /** The serving model, or a 404 (unknown) / 503 (known, not loaded yet) naming what is wrong. */
  requireModel(name: string, version?: string): ServedModel {
    const { table } = this.#opts;
    const model = table.get(name);
    if (!model) {
      const state = this.#opts.reported().models.find((m) => m.name === name);
      if (state) throw new OutpostError('OUTPOST_ERR_MODEL_NOT_READY', `model "${name}" is not serving yet (${state.state}${state.reason ? `: ${state.reason}` : ''})`);
      const known = table.all().map((m) => `"${m.name}"`);
      throw new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `no model "${name}" on this device${known.length ? `; it serves ${known.join(', ')}` : ''}`);
    }
    if (version !== undefined && version !== String(model.version)) {
      throw new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `model "${name}" serves version ${model.version}, not ${version}`);
    }
    return model;
  }

  /**
   * Ready: every desired model that can serve, serves. One that failed with no version to fall
   * back on cannot (until it is deployed again), so it does not hold the device back.
   */
  readiness(): { ready: boolean; waiting: string[] } {
    const waiting = this.#opts.reported().models.filter((m) => !this.#opts.table.get(m.name) && m.state !== 'failed').map((m) => m.name);
    return { ready: waiting.length === 0, waiting };
  }

  /** True when the model (and version, if given) serves; otherwise throws requireModel's reason (404 or 503). */
  modelReady(name: string, version?: string): true {
    const m = this.#opts.table.get(name);
    if (m && (version === undefined || version === String(m.version))) return true;
    this.requireModel(name, version); // throws the reason
    throw new OutpostError('OUTPOST_ERR_MODEL_NOT_READY', `model "${name}" is not serving yet`);
  }

  serverMetadata(): { name: string; version: string; extensions: string[] } {
    return { name: 'outpost-agent', version: this.#opts.agentVersion, extensions: ['binary_tensor_data'] };
  }

  metadata(name: string, version?: string): ModelMetadata {
    const m = this.requireModel(name, version);
    return { name: m.name, versions: [String(m.version)], platform: 'onnxruntime_onnx', inputs: m.signature.inputs, outputs: m.signature.outputs };
  }

  /**
   * One inference request on `model`: `work` reads the request, calls model.infer and makes the
   * reply; its time and outcome go to the model's stats and the agent's metrics. The caller's
   * mistakes (4xx) and a full queue (429) are not the model's failures: only what fails on the
   * device's side counts against it in a rollout's health window.
   */
  async infer<T>(model: ServedModel, work: (model: ServedModel) => Promise<T>): Promise<T> {
    const started = performance.now();
    let outcome: InferenceOutcome = 'error';
    let failure: unknown;
    try {
      const result = await work(model);
      outcome = 'ok';
      return result;
    } catch (err) {
      if (err instanceof OutpostError && err.status < 500) outcome = 'rejected';
      failure = err;
      throw err;
    } finally {
      const ms = performance.now() - started;
      model.stats.record(ms, outcome, failure);
      this.#opts.metrics.recordInference(model.name, ms / 1000, outcome);
    }
  }
}
