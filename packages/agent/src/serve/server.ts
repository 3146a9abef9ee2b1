// The Open Inference Protocol (KServe v2) over HTTP, with the binary tensor data extension
// (see @outpost/shared kserve-binary). Errors follow KServe's shape, `{ "error": "message" }`,
// with Outpost's stable `code` beside it.

import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { timingSafeEqual, createHash } from 'node:crypto';
import { INFERENCE_HEADER_LENGTH, OutpostError, encodeBinaryBody, parseBinaryBody, toTensorBytes, type Logger, type ReportedState } from '@outpost/shared';
import { toJsonTensor, type OutputTensor } from '../runtime/tensors.js';
import type { ModelTable } from '../runtime/model-table.js';
import type { ServedModel } from '../runtime/served-model.js';
import type { AgentMetrics } from './agent-metrics.js';

export interface ServeOptions {
  table: ModelTable;
  log: Logger;
  agentVersion: string;
  /** The reconciler's view: which models are desired and in what state. */
  reported(): ReportedState;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  metrics: AgentMetrics;
}

interface InferBody {
  id?: unknown;
  inputs: unknown;
  outputs?: Array<{ name?: unknown; parameters?: { binary_data?: unknown } }>;
  parameters?: { binary_data_output?: unknown };
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
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', 'the body must be a JSON object with "inputs"');
  return parsed as InferBody;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function sendError(reply: FastifyReply, err: OutpostError): FastifyReply {
  if (err.code === 'OUTPOST_ERR_OVERLOADED') reply.header('retry-after', '1');
  return reply.status(err.status).send({ error: err.message, code: err.code });
}

export async function buildInferenceServer(opts: ServeOptions): Promise<FastifyInstance> {
  const { table } = opts;
  const app = Fastify({
    loggerInstance: opts.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024 * 1024,
  });
  // Bodies arrive as bytes: the infer route parses JSON or the binary extension itself.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  if (opts.token) {
    const expected = digest(opts.token);
    app.addHook('onRequest', async (request: FastifyRequest) => {
      const m = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
      if (!m || !timingSafeEqual(digest(m[1]!), expected)) throw new OutpostError('OUTPOST_ERR_UNAUTHORIZED', 'this agent requires a token: Authorization: Bearer TOKEN');
    });
  }

  app.setErrorHandler((err: FastifyError | OutpostError, request, reply) => {
    if (err instanceof OutpostError) return sendError(reply, err);
    const fe = err as FastifyError;
    if (fe.statusCode && fe.statusCode < 500) return reply.status(fe.statusCode).send({ error: fe.message, code: 'OUTPOST_ERR_BAD_REQUEST' });
    request.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: 'internal error; the agent log has details', code: 'OUTPOST_ERR_INTERNAL' });
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new OutpostError('OUTPOST_ERR_NOT_FOUND', `no route ${request.method} ${request.url}`)));

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

  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_request, reply) => {
    const notReady = opts.reported().models.filter((m) => !table.get(m.name));
    if (notReady.length > 0) return reply.status(503).send({ ready: false, waiting: notReady.map((m) => m.name) });
    return { ready: true };
  });
  app.get('/v2', async () => ({ name: 'outpost-agent', version: opts.agentVersion, extensions: ['binary_tensor_data'] }));

  const metadata = async (request: FastifyRequest<{ Params: { name: string; version?: string } }>) => {
    const m = requireModel(request.params.name, request.params.version);
    return { name: m.name, versions: [String(m.version)], platform: 'onnxruntime_onnx', inputs: m.signature.inputs, outputs: m.signature.outputs };
  };
  app.get('/v2/models/:name', metadata);
  app.get('/v2/models/:name/versions/:version', metadata);

  const ready = async (request: FastifyRequest<{ Params: { name: string; version?: string } }>, reply: FastifyReply) => {
    const m = table.get(request.params.name);
    if (m && (request.params.version === undefined || request.params.version === String(m.version))) return { name: m.name, ready: true };
    requireModel(request.params.name, request.params.version); // throws the reason
    return reply.status(503).send({ name: request.params.name, ready: false });
  };
  app.get('/v2/models/:name/ready', ready);
  app.get('/v2/models/:name/versions/:version/ready', ready);

  const infer = async (request: FastifyRequest<{ Params: { name: string; version?: string }; Body: Buffer | undefined }>, reply: FastifyReply) => {
    const model = requireModel(request.params.name, request.params.version);
    const started = performance.now();
    let ok = false;
    try {
      const body = parseInferBody(request.body ?? Buffer.alloc(0), request.headers[INFERENCE_HEADER_LENGTH]);
      const requested = Array.isArray(body.outputs) ? body.outputs.map((o) => o?.name) : undefined;
      if (requested?.some((n) => typeof n !== 'string')) throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', 'every entry of "outputs" needs a "name"');
      const outputs = await model.infer(body.inputs, requested as string[] | undefined);
      ok = true;
      // Binary outputs: all of them with parameters.binary_data_output, or each one asked so.
      const allBinary = body.parameters?.binary_data_output === true;
      const binary = (o: OutputTensor) => body.outputs?.find((r) => r?.name === o.name)?.parameters?.binary_data ?? allBinary;
      const head = { model_name: model.name, model_version: String(model.version), ...(body.id !== undefined ? { id: body.id } : {}) };
      if (!outputs.some((o) => binary(o) === true)) return { ...head, outputs: outputs.map(toJsonTensor) };
      const blobs: Uint8Array[] = [];
      const described = outputs.map((o) => {
        if (binary(o) !== true) return toJsonTensor(o);
        const bytes = toTensorBytes(o.data);
        blobs.push(bytes);
        return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: bytes.length } };
      });
      const { body: out, headerLength } = encodeBinaryBody({ ...head, outputs: described }, blobs);
      return reply.header(INFERENCE_HEADER_LENGTH, headerLength).type('application/octet-stream').send(out);
    } finally {
      const ms = performance.now() - started;
      model.stats.record(ms, ok);
      opts.metrics.recordInference(model.name, ms / 1000, ok);
    }
  };
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', opts.metrics.registry.contentType);
    return opts.metrics.registry.metrics();
  });

  app.post('/v2/models/:name/infer', infer);
  app.post('/v2/models/:name/versions/:version/infer', infer);

  return app;
}
