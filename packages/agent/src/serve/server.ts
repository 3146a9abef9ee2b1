// The Open Inference Protocol (KServe v2) over HTTP, with the binary tensor data extension
// (see @outpost/shared kserve-binary). Errors follow KServe's shape, `{ "error": "message" }`,
// with Outpost's stable `code` beside it.

import { timingSafeEqual, createHash } from 'node:crypto';
import { INFERENCE_HEADER_LENGTH, OutpostError, encodeBinaryBody, parseBinaryBody, toTensorBytes, type Logger, type ReportedState } from '@outpost/shared';
import { toJsonTensor, type OutputTensor } from '../runtime/tensors.js';
import type { ModelTable } from '../runtime/model-table.js';
import type { ServedModel } from '../runtime/served-model.js';
import type { InferenceOutcome } from '../runtime/model-stats.js';
import type { AgentMetrics } from './agent-metrics.js';
import { Router, type HttpTimeouts, type InferenceServer, type Reply, type Request } from './router.js';

export interface ServeOptions {
  /** Serve HTTPS with this certificate and key (the device's). */
  tls?: { cert: string; key: string };
  table: ModelTable;
  log: Logger;
  agentVersion: string;
  /** The reconciler's view: which models are desired and in what state. */
  reported(): ReportedState;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  metrics: AgentMetrics;
  /** Largest request body of any model (default 64 MiB); a model's own signature may allow less. */
  maxRequestBytes?: number;
  /** Bytes all request bodies may hold at once (default 128 MiB); past it requests get 429. */
  maxBodyMemory?: number;
  timeouts?: Partial<HttpTimeouts>;
}

export const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_BODY_MEMORY = 128 * 1024 * 1024;

interface InferBody {
  id?: unknown;
  inputs: unknown;
  outputs?: Array<{ name: string; parameters?: { binary_data?: unknown } }>;
  parameters?: { binary_data_output?: unknown };
}

function invalid(message: string): OutpostError {
  return new OutpostError('OUTPOST_ERR_TENSOR_INVALID', message);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The parts of a request body that are not tensors, checked so that no shape of them reaches a 500. */
function checkInferBody(body: Record<string, unknown>): InferBody {
  const { id, outputs, parameters } = body;
  if (id !== undefined && (typeof id !== 'string' || id.length > 256)) throw invalid('"id" must be a string of at most 256 characters');
  if (parameters !== undefined && !isObject(parameters)) throw invalid('"parameters" must be an object');
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw invalid('"outputs" must be an array of { "name": ... }');
    for (const o of outputs as unknown[]) {
      if (!isObject(o) || typeof o.name !== 'string') throw invalid('every entry of "outputs" needs a "name"');
      if (o.parameters !== undefined && !isObject(o.parameters)) throw invalid(`output "${o.name}": "parameters" must be an object`);
    }
  }
  return body as unknown as InferBody;
}

/** The request body: JSON, or a JSON header and binary tensors when the header length is given. */
function parseInferBody(body: Buffer, headerLength: string | string[] | undefined): InferBody {
  let parsed: unknown;
  if (headerLength !== undefined) {
    parsed = parseBinaryBody(body, Number(headerLength), 'inputs');
  } else {
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', `the body is not valid JSON (${(err as Error).message}); binary tensors need an Inference-Header-Content-Length header`);
    }
  }
  if (!isObject(parsed)) throw invalid('the body must be a JSON object with "inputs"');
  return checkInferBody(parsed);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The Open Inference Protocol routes, on a node:http server (not listening yet). */
export function buildInferenceServer(opts: ServeOptions): InferenceServer {
  const { table } = opts;
  const expected = opts.token ? digest(opts.token) : undefined;
  const router = new Router({
    log: opts.log,
    bodyLimit: opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    bodyBudget: opts.maxBodyMemory ?? DEFAULT_MAX_BODY_MEMORY,
    timeouts: opts.timeouts,
    guard: expected
      ? (request) => {
          const m = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
          if (!m || !timingSafeEqual(digest(m[1]!), expected)) throw new OutpostError('OUTPOST_ERR_UNAUTHORIZED', 'this agent requires a token: Authorization: Bearer TOKEN');
        }
      : undefined,
  });

  const stateOf = (name: string) => opts.reported().models.find((m) => m.name === name);

  /** The serving model, or a 404 (unknown) / 503 (known, not loaded yet) naming what is wrong. */
  function requireModel(name: string, version?: string): ServedModel {
    const model = table.get(name);
    if (!model) {
      const state = stateOf(name);
      if (state) throw new OutpostError('OUTPOST_ERR_MODEL_NOT_READY', `model "${name}" is not serving yet (${state.state}${state.reason ? `: ${state.reason}` : ''})`);
      const known = table.all().map((m) => `"${m.name}"`);
      throw new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `no model "${name}" on this device${known.length ? `; it serves ${known.join(', ')}` : ''}`);
    }
    if (version !== undefined && version !== String(model.version)) {
      throw new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `model "${name}" serves version ${model.version}, not ${version}`);
    }
    return model;
  }

  router.on('GET', '/v2/health/live', () => ({ json: { live: true } }));
  router.on('GET', '/v2/health/ready', () => {
    // Ready: every desired model that can serve, serves. One that failed with no version to fall
    // back on cannot (until it is deployed again), so it does not hold the device back.
    const notReady = opts.reported().models.filter((m) => !table.get(m.name) && m.state !== 'failed');
    if (notReady.length > 0) return { status: 503, json: { ready: false, waiting: notReady.map((m) => m.name) } };
    return { json: { ready: true } };
  });
  router.on('GET', '/v2', () => ({ json: { name: 'outpost-agent', version: opts.agentVersion, extensions: ['binary_tensor_data'] } }));

  const metadata = ({ params }: Request): Reply => {
    const m = requireModel(params.name!, params.version);
    return { json: { name: m.name, versions: [String(m.version)], platform: 'onnxruntime_onnx', inputs: m.signature.inputs, outputs: m.signature.outputs } };
  };
  router.on('GET', '/v2/models/:name', metadata);
  router.on('GET', '/v2/models/:name/versions/:version', metadata);

  const ready = ({ params }: Request): Reply => {
    const m = table.get(params.name!);
    if (m && (params.version === undefined || params.version === String(m.version))) return { json: { name: m.name, ready: true } };
    requireModel(params.name!, params.version); // throws the reason
    return { status: 503, json: { name: params.name, ready: false } };
  };
  router.on('GET', '/v2/models/:name/ready', ready);
  router.on('GET', '/v2/models/:name/versions/:version/ready', ready);

  const infer = async (request: Request): Promise<Reply> => {
    const model = requireModel(request.params.name!, request.params.version);
    const started = performance.now();
    let outcome: InferenceOutcome = 'error';
    let failure: unknown;
    try {
      const headerLength = request.headers[INFERENCE_HEADER_LENGTH];
      // Binary tensors follow the JSON header: aligned there, they need no copy.
      const body = parseInferBody(await request.body(Number(headerLength) || 0, model.maxRequest ?? undefined), headerLength);
      const outputs = await model.infer(body.inputs, body.outputs?.map((o) => o.name));
      outcome = 'ok';
      // Binary outputs: all of them with parameters.binary_data_output, or each one asked so.
      const allBinary = body.parameters?.binary_data_output === true;
      const binary = (o: OutputTensor) => body.outputs?.find((r) => r.name === o.name)?.parameters?.binary_data ?? allBinary;
      const head = { model_name: model.name, model_version: String(model.version), ...(body.id !== undefined ? { id: body.id } : {}) };
      if (!outputs.some((o) => binary(o) === true)) return { json: { ...head, outputs: outputs.map(toJsonTensor) } };
      const blobs: Uint8Array[] = [];
      const described = outputs.map((o) => {
        if (binary(o) !== true) return toJsonTensor(o);
        const bytes = toTensorBytes(o.data);
        blobs.push(bytes);
        return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: bytes.length } };
      });
      const { chunks, headerLength: replyHeaderLength } = encodeBinaryBody({ ...head, outputs: described }, blobs);
      return { headers: { 'content-type': 'application/octet-stream', [INFERENCE_HEADER_LENGTH]: replyHeaderLength }, chunks };
    } catch (err) {
      // The caller's mistakes (4xx) and a full queue (429) are not the model's failures: only
      // what fails on the device's side counts against it in a rollout's health window.
      if (err instanceof OutpostError && err.status < 500) outcome = 'rejected';
      failure = err;
      throw err;
    } finally {
      const ms = performance.now() - started;
      model.stats.record(ms, outcome, failure);
      opts.metrics.recordInference(model.name, ms / 1000, outcome);
    }
  };
  router.on('POST', '/v2/models/:name/infer', infer);
  router.on('POST', '/v2/models/:name/versions/:version/infer', infer);

  router.on('GET', '/metrics', async () => ({ headers: { 'content-type': opts.metrics.registry.contentType }, chunks: [await opts.metrics.registry.metrics()] }));

  return router.server(opts.tls);
}
