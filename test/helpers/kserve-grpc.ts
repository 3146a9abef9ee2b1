// A KServe v2 gRPC client for tests and benchmarks, on @grpc/grpc-js and the agent's own copy
// of Triton's grpc_service.proto: typed arrays in (raw_input_contents, or the `contents` field
// of each datatype), typed arrays out (from raw_output_contents, as Triton's clients read them).

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { elementCount, fromTensorBytes, toTensorBytes, type Datatype, type TensorArray } from '@outpost/shared';
import type { Tensor } from './kserve.js';

export const GRPC_PROTO = join(dirname(fileURLToPath(import.meta.url)), '../../packages/agent/proto/grpc_service.proto');

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface GrpcMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface GrpcInferResult {
  model_name: string;
  model_version: string;
  id: string;
  outputs: Tensor[];
}

export interface GrpcClientOptions {
  /** Sent as `authorization: Bearer TOKEN` metadata. */
  token?: string;
  /** Speak TLS, trusting this CA (PEM); the server's name is checked against `servername`. */
  ca?: string;
  servername?: string;
  /** Per-call deadline (default 30 s). */
  deadlineMs?: number;
}

export interface InferOptions {
  /** Inputs in raw_input_contents (default) or in each tensor's `contents`. */
  raw?: boolean;
  /** Output names to ask for (default: all). */
  outputs?: string[];
  version?: string;
  id?: string;
}

export interface GrpcClient {
  live(): Promise<boolean>;
  ready(): Promise<boolean>;
  modelReady(name: string, version?: string): Promise<boolean>;
  serverMetadata(): Promise<{ name: string; version: string; extensions: string[] }>;
  metadata(name: string, version?: string): Promise<GrpcMetadata>;
  infer(name: string, inputs: Tensor[], opts?: InferOptions): Promise<GrpcInferResult>;
  /** Any method with a request as proto-loader takes it (for malformed requests). */
  call<T = Record<string, unknown>>(method: string, request: Record<string, unknown>): Promise<T>;
  close(): void;
}

type Unary = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply: unknown) => void) => void;

let service: grpc.ServiceClientConstructor | undefined;

function serviceClient(): grpc.ServiceClientConstructor {
  service ??= (grpc.loadPackageDefinition(protoLoader.loadSync(GRPC_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [dirname(GRPC_PROTO)] })) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } }).inference.GRPCInferenceService;
  return service;
}

const CONTENTS: Partial<Record<Datatype, string>> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

/** A tensor's data as the raw bytes of raw_input_contents. */
function rawBytes(t: Tensor): Uint8Array {
  if (Array.isArray(t.data) && t.datatype === 'BOOL') return Uint8Array.from(t.data as boolean[], (v) => (v ? 1 : 0));
  return toTensorBytes(t.data as TensorArray);
}

/** A tensor's data as the `contents` field of its datatype. */
function contentsOf(t: Tensor): Record<string, unknown[]> {
  const field = CONTENTS[t.datatype];
  if (!field) throw new Error(`${t.datatype} travels in raw_input_contents only`);
  const data = t.data as ArrayLike<unknown>;
  if (t.datatype === 'BYTES') return { [field]: Array.from(data as string[], (s) => Buffer.from(s, 'utf8')) };
  if (t.datatype === 'BOOL') return { [field]: Array.from(data, (v) => v === true || v === 1) };
  if (t.datatype === 'INT64' || t.datatype === 'UINT64') return { [field]: Array.from(data, (v) => String(v)) };
  return { [field]: Array.from(data as ArrayLike<number>) };
}

export function grpcClient(address: string, opts: GrpcClientOptions = {}): GrpcClient {
  const Client = serviceClient();
  const credentials = opts.ca ? grpc.credentials.createSsl(Buffer.from(opts.ca)) : grpc.credentials.createInsecure();
  const client = new Client(address, credentials, {
    // Unbounded here: the tests send messages past the server's limit on purpose.
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
    ...(opts.servername ? { 'grpc.ssl_target_name_override': opts.servername, 'grpc.default_authority': opts.servername } : {}),
  });
  const call = <T>(method: string, request: Record<string, unknown>): Promise<T> =>
    new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (opts.token) metadata.set('authorization', `Bearer ${opts.token}`);
      (client[method] as Unary).call(client, request, metadata, { deadline: Date.now() + (opts.deadlineMs ?? 30_000) }, (err, reply) => (err ? reject(err) : resolve(reply as T)));
    });
  const shapeOf = (shape: Array<string | number>) => shape.map(Number);
  return {
    live: async () => (await call<{ live: boolean }>('ServerLive', {})).live,
    ready: async () => (await call<{ ready: boolean }>('ServerReady', {})).ready,
    modelReady: async (name, version) => (await call<{ ready: boolean }>('ModelReady', { name, version: version ?? '' })).ready,
    serverMetadata: () => call('ServerMetadata', {}),
    async metadata(name, version) {
      const m = await call<GrpcMetadata>('ModelMetadata', { name, version: version ?? '' });
      const tensors = (list: TensorMetadata[]) => list.map((t) => ({ name: t.name, datatype: t.datatype, shape: shapeOf(t.shape) }));
      return { name: m.name, versions: m.versions, platform: m.platform, inputs: tensors(m.inputs), outputs: tensors(m.outputs) };
    },
    async infer(name, inputs, o = {}) {
      const raw = o.raw ?? true;
      const request = {
        model_name: name,
        model_version: o.version ?? '',
        id: o.id ?? '',
        inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, ...(raw ? {} : { contents: contentsOf(t) }) })),
        outputs: (o.outputs ?? []).map((n) => ({ name: n })),
        raw_input_contents: raw ? inputs.map(rawBytes) : [],
      };
      const reply = await call<{ model_name: string; model_version: string; id: string; outputs: TensorMetadata[]; raw_output_contents: Uint8Array[] }>('ModelInfer', request);
      return {
        model_name: reply.model_name,
        model_version: reply.model_version,
        id: reply.id,
        outputs: reply.outputs.map((t, i) => {
          const shape = shapeOf(t.shape);
          const datatype = t.datatype as Datatype;
          return { name: t.name, datatype, shape, data: fromTensorBytes(t.name, datatype, reply.raw_output_contents[i]!, elementCount(shape)) };
        }),
      };
    },
    call,
    close: () => client.close(),
  };
}
