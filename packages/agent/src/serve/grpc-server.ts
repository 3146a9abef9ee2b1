// The Open Inference Protocol (KServe v2) over gRPC: `inference.GRPCInferenceService` from
// Triton's grpc_service.proto (packages/agent/proto), on its own port. ServerLive, ServerReady,
// ModelReady, ServerMetadata, ModelMetadata and ModelInfer, with the HTTP port's semantics and
// messages (inference-service.ts); the other methods answer UNIMPLEMENTED. Outputs always travel
// in raw_output_contents, as Triton's server sends them (grpc-tensors.ts). grpc-port.ts holds
// the port and loads this module (and grpc-js, ~4 MiB) at the first connection, then hands it
// each connection.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { OutpostError, type Logger } from '@outpost/shared';
import type { InferenceService } from './inference-service.js';
import { BodyBudget } from './router.js';
import { DEFAULT_MAX_BODY_MEMORY, DEFAULT_MAX_REQUEST_BYTES } from './server.js';
import { requestBytes, requestInputs, responseOutputs, type GrpcInferRequest } from './grpc-tensors.js';

/** The proto files, found beside the compiled module (dist/serve → proto) as in the source tree. */
export const GRPC_PROTO = fileURLToPath(new URL('../../proto/grpc_service.proto', import.meta.url));

export interface GrpcServeOptions {
  service: InferenceService;
  log: Logger;
  /** Serve TLS with this certificate and key (the device's, as the HTTP port). */
  tls?: { cert: string; key: string };
  /** Largest message (default 64 MiB): grpc-js refuses larger ones with RESOURCE_EXHAUSTED. */
  maxRequestBytes?: number;
  /** Bytes the tensors of requests being served may hold at once (default 128 MiB); past it RESOURCE_EXHAUSTED. */
  maxBodyMemory?: number;
  /** HTTP/2 streams (calls) one connection may have open at once (default 128). */
  maxConcurrentStreams?: number;
}

/** The service, taking connections accepted elsewhere (grpc-port.ts). */
export interface GrpcService {
  /** Serves one accepted connection (TLS is done here when the service has a certificate). */
  inject(socket: Duplex): void;
  /** Serves a renewed certificate to new connections (TLS only). */
  renew(pair: { cert: string; key: string }): void;
  /** Stops taking calls, lets the ones in flight finish for up to `graceMs`, then ends them. */
  close(graceMs?: number): Promise<void>;
}

/** proto-loader's options: field names as in the proto, int64 as strings (exact), defaults filled in. */
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [dirname(GRPC_PROTO)] };

export function loadInferenceService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(GRPC_PROTO, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } };
  return pkg.inference.GRPCInferenceService.service;
}

/** An OutpostError's HTTP status as the gRPC status code a client expects. */
export function grpcStatusOf(status: number): grpc.status {
  if (status === 401) return grpc.status.UNAUTHENTICATED;
  if (status === 403) return grpc.status.PERMISSION_DENIED;
  if (status === 404) return grpc.status.NOT_FOUND;
  if (status === 409) return grpc.status.FAILED_PRECONDITION;
  if (status === 413 || status === 429) return grpc.status.RESOURCE_EXHAUSTED;
  if (status === 503) return grpc.status.UNAVAILABLE;
  if (status === 504) return grpc.status.DEADLINE_EXCEEDED;
  if (status >= 400 && status < 500) return grpc.status.INVALID_ARGUMENT;
  return grpc.status.INTERNAL;
}

/** Certificates that can be replaced while serving (grpc-js's own are fixed at bind time). */
class RenewableCredentials extends grpc.ServerCredentials {
  constructor(pair: { cert: string; key: string }) {
    super({ handshakeTimeout: 10_000 }, { ...pair, minVersion: 'TLSv1.2' });
  }

  renew(pair: { cert: string; key: string }): void {
    this.updateSecureContextOptions({ ...pair, minVersion: 'TLSv1.2' });
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

type Call = grpc.ServerUnaryCall<Record<string, unknown>, unknown>;

function invalid(message: string): OutpostError {
  return new OutpostError('OUTPOST_ERR_TENSOR_INVALID', message);
}

/** The gRPC KServe v2 service, for connections grpc-port.ts accepts. */
export function createGrpcService(opts: GrpcServeOptions): GrpcService {
  const { service, log } = opts;
  const maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const budget = new BodyBudget(opts.maxBodyMemory ?? DEFAULT_MAX_BODY_MEMORY);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxRequestBytes,
    'grpc.max_concurrent_streams': opts.maxConcurrentStreams ?? 128,
    // Pings find peers that went away; idle connections are closed after 5 minutes.
    'grpc.keepalive_time_ms': 120_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.max_connection_idle_ms': 300_000,
  });

  /** Every handler: the token first, its own errors as gRPC statuses with HTTP's messages. */
  const unary =
    (method: string, handle: (request: Record<string, unknown>) => unknown) =>
    (call: Call, callback: grpc.sendUnaryData<unknown>): void => {
      const answer = async () => {
        const auth = call.metadata.get('authorization')[0];
        service.authorize(typeof auth === 'string' ? auth : auth?.toString('utf8'));
        return handle(call.request);
      };
      answer().then(
        (reply) => callback(null, reply),
        (err: unknown) => {
          const metadata = new grpc.Metadata();
          if (err instanceof OutpostError) {
            metadata.set('outpost-code', err.code);
            callback({ code: grpcStatusOf(err.status), details: err.message, metadata });
          } else {
            log.error({ err, method }, 'gRPC call failed');
            metadata.set('outpost-code', 'OUTPOST_ERR_INTERNAL');
            callback({ code: grpc.status.INTERNAL, details: 'internal error; the agent log has details', metadata });
          }
        },
      );
    };

  const version = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

  const infer = (request: GrpcInferRequest) =>
    service.infer(service.requireModel(request.model_name ?? '', version(request.model_version)), async (model) => {
      const id = request.id ?? '';
      if (id.length > 256) throw invalid('"id" must be a string of at most 256 characters');
      const bytes = requestBytes(request);
      if (!budget.reserve(bytes)) throw new OutpostError('OUTPOST_ERR_OVERLOADED', 'the agent is already holding as many request bodies as its memory budget allows (--max-body-memory); retry shortly');
      try {
        const requested = request.outputs?.length ? request.outputs.map((o) => o.name ?? '') : undefined;
        const outputs = await model.infer(requestInputs(request), requested);
        const reply = responseOutputs(outputs);
        return { model_name: model.name, model_version: String(model.version), id, outputs: reply.outputs, raw_output_contents: reply.raw };
      } finally {
        budget.release(bytes);
      }
    });

  server.addService(loadInferenceService(), {
    ServerLive: unary('ServerLive', () => ({ live: true })),
    ServerReady: unary('ServerReady', () => ({ ready: service.readiness().ready })),
    ModelReady: unary('ModelReady', (r) => {
      // Known but not loaded yet is an answer here (ready: false), as Triton gives it; unknown is NOT_FOUND.
      try {
        return { ready: service.modelReady(String(r.name ?? ''), version(r.version)) };
      } catch (err) {
        if (err instanceof OutpostError && err.code === 'OUTPOST_ERR_MODEL_NOT_READY') return { ready: false };
        throw err;
      }
    }),
    ServerMetadata: unary('ServerMetadata', () => service.serverMetadata()),
    ModelMetadata: unary('ModelMetadata', (r) => service.metadata(String(r.name ?? ''), version(r.version))),
    ModelInfer: unary('ModelInfer', (r) => infer(r as GrpcInferRequest)),
  });

  const credentials = opts.tls ? new RenewableCredentials(opts.tls) : grpc.ServerCredentials.createInsecure();
  const connections = server.createConnectionInjector(credentials);

  let closing: Promise<void> | undefined;
  return {
    inject: (socket) => connections.injectConnection(socket),
    renew(pair) {
      if (credentials instanceof RenewableCredentials) credentials.renew(pair);
    },
    close(graceMs = 5000) {
      closing ??= new Promise<void>((resolve) => {
        const deadline = setTimeout(() => {
          log.warn({ graceMs }, 'gRPC calls still running at shutdown were ended');
          server.forceShutdown();
          resolve();
        }, graceMs);
        deadline.unref();
        server.tryShutdown(() => {
          clearTimeout(deadline);
          resolve();
        });
      });
      return closing;
    },
  };
}
