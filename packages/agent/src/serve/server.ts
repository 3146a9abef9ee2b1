// The Open Inference Protocol (KServe v2) over HTTP, with the binary tensor data extension
// (see @outpost/shared kserve-binary). Errors follow KServe's shape, `{ "error": "message" }`,
// with Outpost's stable `code` beside it.

import { INFERENCE_HEADER_LENGTH, OutpostError, encodeBinaryBody, parseBinaryBody, toTensorBytes, type Logger, type ReportedState, invalidTensor } from '@outpost/shared';
import { toJsonTensor, type OutputTensor } from '../runtime/tensors.js';
import { parseJsonInferBody } from './json-infer-body.js';
import { jsonInferReply } from './json-reply.js';
import type { ModelTable } from '../runtime/model-table.js';
import type { AgentMetrics } from './agent-metrics.js';
import { InferenceService } from './inference-service.js';
import { Router, type BodyBudget, type HttpTimeouts, type InferenceServer, type Reply, type Request } from './router.js';

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
  /** The budget itself, when the gRPC port shares it (then maxBodyMemory is not used). */
  budget?: BodyBudget;
  timeouts?: Partial<HttpTimeouts>;
  /** The protocol-independent part, shared with the gRPC port (made from these options when not given). */
  service?: InferenceService;
}

export const DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_BODY_MEMORY = 128 * 1024 * 1024;

interface InferBody {
  id?: unknown;
  inputs: unknown;
  outputs?: Array<{ name: string; parameters?: { binary_data?: unknown } }>;
  parameters?: { binary_data_output?: unknown };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The parts of a request body that are not tensors, checked so that no shape of them reaches a 500. */
function checkInferBody(body: Record<string, unknown>): InferBody {
  const { id, outputs, parameters } = body;
  if (id !== undefined && (typeof id !== 'string' || id.length > 256)) throw invalidTensor('"id" must be a string of at most 256 characters');
  if (parameters !== undefined && !isObject(parameters)) throw invalidTensor('"parameters" must be an object');
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw invalidTensor('"outputs" must be an array of { "name": ... }');
    for (const o of outputs as unknown[]) {
      if (!isObject(o) || typeof o.name !== 'string') throw invalidTensor('every entry of "outputs" needs a "name"');
      if (o.parameters !== undefined && !isObject(o.parameters)) throw invalidTensor(`output "${o.name}": "parameters" must be an object`);
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
      // JSON.parse's result, with each input's numbers read straight into its datatype's typed array.
      parsed = parseJsonInferBody(body);
    } catch (err) {
      throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', `the body is not valid JSON (${(err as Error).message}); binary tensors need an Inference-Header-Content-Length header`);
    }
  }
  if (!isObject(parsed)) throw invalidTensor('the body must be a JSON object with "inputs"');
  return checkInferBody(parsed);
}

/** The Open Inference Protocol routes, on a node:http server (not listening yet). */
export function buildInferenceServer(opts: ServeOptions): InferenceServer {
  const service = opts.service ?? new InferenceService(opts);
  const router = new Router({
    log: opts.log,
    bodyLimit: opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    bodyBudget: opts.budget ?? opts.maxBodyMemory ?? DEFAULT_MAX_BODY_MEMORY,
    timeouts: opts.timeouts,
    guard: service.guarded ? (request) => service.authorize(request.headers.authorization) : undefined,
  });

  router.on('GET', '/v2/health/live', () => ({ json: { live: true } }));
  router.on('GET', '/v2/health/ready', () => {
    const { ready, waiting } = service.readiness();
    if (!ready) return { status: 503, json: { ready: false, waiting } };
    return { json: { ready: true } };
  });
  router.on('GET', '/v2', () => ({ json: service.serverMetadata() }));

  const metadata = ({ params }: Request): Reply => ({ json: service.metadata(params.name!, params.version) });
  router.on('GET', '/v2/models/:name', metadata);
  router.on('GET', '/v2/models/:name/versions/:version', metadata);

  const ready = ({ params }: Request): Reply => {
    service.modelReady(params.name!, params.version); // or throws the reason (404, 503)
    return { json: { name: params.name, ready: true } };
  };
  router.on('GET', '/v2/models/:name/ready', ready);
  router.on('GET', '/v2/models/:name/versions/:version/ready', ready);

  const infer = (request: Request): Promise<Reply> =>
    service.infer(service.requireModel(request.params.name!, request.params.version), async (model) => {
      const headerLength = request.headers[INFERENCE_HEADER_LENGTH];
      // Binary tensors follow the JSON header: aligned there, they need no copy.
      const body = parseInferBody(await request.body(Number(headerLength) || 0, model.maxRequest ?? undefined), headerLength);
      const outputs = await model.infer(body.inputs, body.outputs?.map((o) => o.name));
      // Binary outputs: all of them with parameters.binary_data_output, or each one asked so.
      const allBinary = body.parameters?.binary_data_output === true;
      const binary = (o: OutputTensor) => body.outputs?.find((r) => r.name === o.name)?.parameters?.binary_data ?? allBinary;
      const head = { model_name: model.name, model_version: String(model.version), ...(body.id !== undefined ? { id: body.id } : {}) };
      if (!outputs.some((o) => binary(o) === true)) return jsonInferReply(head, outputs);
      const blobs: Uint8Array[] = [];
      const described = outputs.map((o) => {
        if (binary(o) !== true) return toJsonTensor(o);
        const bytes = toTensorBytes(o.data);
        blobs.push(bytes);
        return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: bytes.length } };
      });
      const { chunks, headerLength: replyHeaderLength } = encodeBinaryBody({ ...head, outputs: described }, blobs);
      return { headers: { 'content-type': 'application/octet-stream', [INFERENCE_HEADER_LENGTH]: replyHeaderLength }, chunks };
    });
  router.on('POST', '/v2/models/:name/infer', infer);
  router.on('POST', '/v2/models/:name/versions/:version/infer', infer);

  router.on('GET', '/metrics', async () => ({ headers: { 'content-type': opts.metrics.registry.contentType }, chunks: [await opts.metrics.registry.metrics()] }));

  return router.server(opts.tls);
}
