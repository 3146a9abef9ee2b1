// /v1/models: push a version (the ONNX file as the request body), list, show, delete, prune;
// /v1/samples: upload a sample request for a version. An upload streams to disk while it is
// hashed, is loaded and run once (on its sample, or a synthetic input) by onnxruntime in a
// child process, and is registered only if it loads; a refused upload leaves nothing behind.

import type { FastifyInstance } from 'fastify';
import type { Readable } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { MAX_SAMPLE_BYTES, OutpostError } from '@outpost/shared';
import { auditTarget } from './audit.js';
import { MODEL_NAME_PATTERN } from './schemas.js';
import { modelVersionView } from '../fleet/views.js';
import { modelNotFound } from '../fleet/model-lookup.js';
import { registerModelVersion } from '../fleet/model-registration.js';
import { deleteModelVersion, pruneModels, type RemoveArtifact } from '../fleet/model-retention.js';
import type { ApiDeps } from './server.js';

const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: MODEL_NAME_PATTERN } },
} as const;

export async function modelRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx, artifacts } = deps;
  // The body stays a stream: models can be hundreds of MB.
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  // A sample is a KServe v2 request body, stored as an artifact; a version push names it.
  app.post<{ Body: Readable }>('/v1/samples', {
    config: { access: 'deployer', audit: 'sample.push' },
    // Refused from its header, before a byte is read, as a model push is.
    onRequest: async (request) => {
      const length = Number(request.headers['content-length'] ?? 0);
      if (length > MAX_SAMPLE_BYTES) throw new OutpostError('OUTPOST_ERR_PAYLOAD_TOO_LARGE', `the sample is ${length} bytes; a sample may be up to ${MAX_SAMPLE_BYTES} (a few requests' worth of inputs as JSON)`);
    },
  }, async (request, reply) => {
    if (typeof request.body?.pipe !== 'function') throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'send the sample (a KServe v2 request body, JSON) as the body with Content-Type: application/octet-stream');
    const staged = await artifacts.stage(request.body, { maxBytes: MAX_SAMPLE_BYTES });
    try {
      const inputs = (JSON.parse(await readFile(staged.path, 'utf8')) as { inputs?: unknown } | null)?.inputs;
      if (!Array.isArray(inputs)) throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', 'the sample needs "inputs": give a KServe v2 request body, {"inputs": [{"name", "shape", "datatype", "data"}]}');
      await staged.commit();
      auditTarget(request, staged.sha256, { size: staged.size });
      reply.status(201);
      return { sha256: staged.sha256, size: staged.size };
    } catch (err) {
      await staged.discard();
      if (err instanceof SyntaxError) throw new OutpostError('OUTPOST_ERR_TENSOR_INVALID', `the sample is not JSON (${err.message}): give a KServe v2 request body`);
      throw err;
    }
  });

  app.post<{ Params: { name: string }; Querystring: { sample?: string; allowSignatureChange?: string }; Body: Readable }>(
    '/v1/models/:name/versions',
    {
      config: { access: 'deployer', audit: 'model.push' },
      schema: {
        params: nameParams,
        querystring: { type: 'object', additionalProperties: false, properties: { sample: { type: 'string', pattern: '^[0-9a-f]{64}$' }, allowSignatureChange: { type: 'string', enum: ['true', 'false'] } } },
      },
      // Reject an over-large upload from its header, before reading a byte.
      onRequest: async (request) => {
        const length = Number(request.headers['content-length'] ?? 0);
        if (length > deps.maxModelBytes) throw new OutpostError('OUTPOST_ERR_PAYLOAD_TOO_LARGE', `the model is ${length} bytes; this relay accepts up to ${deps.maxModelBytes} (--max-model-size)`);
      },
    },
    async (request, reply) => {
      if (typeof request.body?.pipe !== 'function') {
        throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'send the ONNX file as the body with Content-Type: application/octet-stream');
      }
      const { name } = request.params;
      const sampleSha = request.query.sample;
      const sampleSize = sampleSha === undefined ? undefined : await artifacts.size(sampleSha);
      if (sampleSha !== undefined && sampleSize === undefined) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `no sample ${sampleSha}: upload it first (POST /v1/samples), as models push --sample does`);
      const staged = await artifacts.stage(request.body, { maxBytes: deps.maxModelBytes });
      try {
        const wasQuarantined = artifacts.quarantined(staged.sha256) !== undefined;
        const { record, created, selfTest } = await registerModelVersion(ctx, {
          name,
          file: staged.path,
          sha256: staged.sha256,
          size: staged.size,
          ...(sampleSha ? { sample: { sha256: sampleSha, size: sampleSize!, file: artifacts.path(sampleSha) } } : {}),
          allowSignatureChange: request.query.allowSignatureChange === 'true',
          beforeRecord: async () => {
            await staged.commit();
            deps.artifactChecks.pushed(staged.sha256, wasQuarantined);
          },
        });
        request.log.info({ model: record.name, version: record.version, sha256: record.sha256, created, selfTest }, 'model version registered');
        auditTarget(request, `${record.name}:${record.version}`, { sha256: record.sha256, size: record.size, created });
        reply.status(created ? 201 : 200);
        return { ...modelVersionView(record, artifacts.fileState(record.sha256)), created };
      } catch (err) {
        await staged.discard();
        throw err;
      }
    },
  );

  app.get('/v1/models', { config: { access: 'viewer' } }, async () => ({
    models: (await ctx.store.models.list()).map((m) => ({ ...m, updatedAt: new Date(m.updatedAt).toISOString() })),
  }));

  app.get<{ Params: { name: string } }>('/v1/models/:name', { config: { access: 'viewer' }, schema: { params: nameParams } }, async (request) => {
    const versions = await ctx.store.models.versions(request.params.name);
    if (versions.length === 0) throw await modelNotFound(ctx, request.params.name, undefined, 'list them with outpost-relay models list');
    return { name: request.params.name, versions: versions.map((v) => modelVersionView(v, artifacts.fileState(v.sha256))) };
  });

  app.get<{ Params: { name: string; version: string } }>(
    '/v1/models/:name/versions/:version',
    {
      config: { access: 'viewer' },
      schema: {
        params: { type: 'object', required: ['name', 'version'], properties: { name: nameParams.properties.name, version: { type: 'string', pattern: '^(latest|[1-9][0-9]{0,8})$' } } },
      },
    },
    async (request) => {
      const { name, version } = request.params;
      const record = await ctx.store.models.get(name, version === 'latest' ? undefined : Number(version));
      if (!record) throw await modelNotFound(ctx, name, version === 'latest' ? undefined : Number(version), 'list them with outpost-relay models list');
      return modelVersionView(record, artifacts.fileState(record.sha256));
    },
  );

  // A file leaves memory and disk together.
  const removeArtifact: RemoveArtifact = (sha256) => {
    deps.artifactChecks.hot.forget(sha256);
    return artifacts.remove(sha256);
  };

  app.delete<{ Params: { name: string; version: string } }>(
    '/v1/models/:name/versions/:version',
    {
      config: { access: 'deployer', audit: 'model.delete' },
      // A number only: "latest" would delete whatever was pushed last.
      schema: { params: { type: 'object', required: ['name', 'version'], properties: { name: nameParams.properties.name, version: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' } } } },
    },
    async (request) => deleteModelVersion(ctx, removeArtifact, request.params.name, Number(request.params.version)),
  );

  app.post<{ Body: { keep?: number; dryRun?: boolean; model?: string } | undefined }>(
    '/v1/models/prune',
    {
      config: { access: 'deployer', audit: 'model.prune' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { keep: { type: 'integer', minimum: 1, maximum: 1_000_000 }, dryRun: { type: 'boolean' }, model: nameParams.properties.name },
        },
      },
    },
    async (request) => {
      const keep = request.body?.keep ?? 3;
      const result = await pruneModels(ctx, removeArtifact, { keep, dryRun: request.body?.dryRun, model: request.body?.model });
      auditTarget(request, request.body?.model ?? 'every model', { keep, dryRun: result.dryRun, deleted: result.deleted.map((d) => `${d.name}:${d.version}`).slice(0, 100) });
      return result;
    },
  );
}
