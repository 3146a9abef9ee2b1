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
import { OutpostError, type Logger, invalidTensor } from '@outpost/shared';
import type { InferenceService } from './inference-service.js';
import { BodyBudget } from './router.js';
import { DEFAULT_MAX_BODY_MEMORY } from './server.js';
import { wireRefusal } from './grpc-wire.js';
import { requestInputs, responseOutputs, type GrpcInferRequest } from './grpc-tensors.js';

/** The proto files, found beside the compiled module (dist/serve → proto) as in the source tree. */
export const GRPC_PROTO = fileURLToPath(new URL('../../proto/grpc_service.proto', import.meta.url));

export interface GrpcServeOptions {
  service: InferenceService;
  log: Logger;
  /** Serve TLS with this certificate and key (the device's, as the HTTP port). */
  tls?: { cert: string; key: string };
  /**
   * Largest message (default 4 MiB, gRPC's own default): grpc-js refuses larger ones, from
   * their length prefix, with RESOURCE_EXHAUSTED. Each call reserves this much of the body budget.
   */
  maxMessageBytes?: number;
  /** The bytes request bodies may hold at once, shared with the HTTP port (--max-body-memory). */
  budget?: BodyBudget;
  /** HTTP/2 streams (calls) one connection may have open at once (default 32). */
  maxConcurrentStreams?: number;
}

/** gRPC's default largest message (grpc-js, grpc-go, grpc-java). */
export const DEFAULT_GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

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

/** A ModelInfer request refused from its wire bytes (grpc-wire.ts), before protobufjs decoded it. */
class RefusedOnTheWire {
  constructor(readonly why: string) {}
}

/** The service with ModelInfer's requests checked on the wire first (a throw here would reach the client as a bare INTERNAL). */
function boundedInferenceService(): grpc.ServiceDefinition {
  const service = { ...loadInferenceService() };
  const infer = service.ModelInfer!;
  const decode = infer.requestDeserialize;
  service.ModelInfer = {
    ...infer,
    requestDeserialize: (bytes: Buffer) => {
      const why = wireRefusal(bytes);
      return why === undefined ? decode(bytes) : new RefusedOnTheWire(why);
    },
  };
  return service;
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

/** The gRPC KServe v2 service, for connections grpc-port.ts accepts. */
export function createGrpcService(opts: GrpcServeOptions): GrpcService {
  const { service, log } = opts;
  const maxMessage = opts.maxMessageBytes ?? DEFAULT_GRPC_MAX_MESSAGE_BYTES;
  const budget = opts.budget ?? new BodyBudget(DEFAULT_MAX_BODY_MEMORY);

  /** A refusal as the gRPC status a client gets: HTTP's message, Outpost's code in a trailer. */
  const statusOf = (err: unknown): grpc.StatusObject => {
    const metadata = new grpc.Metadata();
    if (err instanceof OutpostError) {
      metadata.set('outpost-code', err.code);
      return { code: grpcStatusOf(err.status), details: err.message, metadata };
    }
    log.error({ err }, 'gRPC call failed');
    metadata.set('outpost-code', 'OUTPOST_ERR_INTERNAL');
    return { code: grpc.status.INTERNAL, details: 'internal error; the agent log has details', metadata };
  };

  // Before a call's message is read: its token, and room in the body budget for the largest
  // message it may send. A stranger, or a flood past the budget, is refused from the headers
  // alone, with nothing buffered (grpc-js reads a whole message before a handler runs).
  const admission: grpc.ServerInterceptor = (_method, call) => {
    let held = 0;
    const release = () => {
      budget.release(held);
      held = 0;
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            try {
              const auth = metadata.get('authorization')[0];
              service.authorize(typeof auth === 'string' ? auth : auth?.toString('utf8'));
              if (!budget.reserve(maxMessage)) throw new OutpostError('OUTPOST_ERR_OVERLOADED', 'the agent is already holding as many request bodies as its memory budget allows (--max-body-memory); retry shortly');
              held = maxMessage;
              pass(metadata);
            } catch (err) {
              call.sendStatus(statusOf(err));
            }
          },
          onCancel: release,
        }),
      sendStatus: (status, next) => {
        release();
        next(status);
      },
    });
  };

  const server = new grpc.Server({
    interceptors: [admission],
    'grpc.max_receive_message_length': maxMessage,
    'grpc.max_concurrent_streams': opts.maxConcurrentStreams ?? 32,
    // Pings find peers that went away; idle connections are closed after 5 minutes.
    'grpc.keepalive_time_ms': 120_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.max_connection_idle_ms': 300_000,
  });

  /** Every handler catches its own errors, as gRPC statuses with HTTP's messages (the token was checked on admission). */
  const unary =
    (handle: (request: Record<string, unknown>) => unknown) =>
    (call: Call, callback: grpc.sendUnaryData<unknown>): void => {
      Promise.resolve()
        .then(() => handle(call.request))
        .then(
          (reply) => callback(null, reply),
          (err: unknown) => callback(statusOf(err)),
        );
    };

  const version = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

  const infer = (request: GrpcInferRequest | RefusedOnTheWire) => {
    if (request instanceof RefusedOnTheWire) throw invalidTensor(request.why);
    return service.infer(service.requireModel(request.model_name ?? '', version(request.model_version)), async (model) => {
      const id = request.id ?? '';
      if (id.length > 256) throw invalidTensor('"id" must be a string of at most 256 characters');
      const requested = request.outputs?.length ? request.outputs.map((o) => o.name ?? '') : undefined;
      const outputs = await model.infer(requestInputs(request), requested);
      const reply = responseOutputs(outputs);
      return { model_name: model.name, model_version: String(model.version), id, outputs: reply.outputs, raw_output_contents: reply.raw };
    });
  };

  server.addService(boundedInferenceService(), {
    ServerLive: unary(() => ({ live: true })),
    ServerReady: unary(() => ({ ready: service.readiness().ready })),
    ModelReady: unary((r) => {
      // Known but not loaded yet is an answer here (ready: false), as Triton gives it; unknown is NOT_FOUND.
      try {
        return { ready: service.modelReady(String(r.name ?? ''), version(r.version)) };
      } catch (err) {
        if (err instanceof OutpostError && err.code === 'OUTPOST_ERR_MODEL_NOT_READY') return { ready: false };
        throw err;
      }
    }),
    ServerMetadata: unary(() => service.serverMetadata()),
    ModelMetadata: unary((r) => service.metadata(String(r.name ?? ''), version(r.version))),
    ModelInfer: unary((r) => infer(r as GrpcInferRequest | RefusedOnTheWire)),
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
