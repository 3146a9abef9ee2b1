// A KServe v2 client for tests and benchmarks: JSON, or the binary tensor data extension
// (typed arrays in, typed arrays out) through node:http with keep-alive.

import { Agent, request } from 'node:http';
import { INFERENCE_HEADER_LENGTH, elementCount, encodeBinaryBody, fromTensorBytes, parseBinaryBody, toTensorBytes, type Datatype, type TensorArray } from '@outpost/shared';

export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorArray | unknown[];
}

export interface InferResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The JSON (or JSON header) of the response. */
  body: { outputs?: Array<Tensor & { parameters?: Record<string, unknown> }>; error?: string; code?: string; [k: string]: unknown };
  /** Outputs with binary ones decoded into typed arrays. */
  outputs: Tensor[];
}

// Idle sockets are dropped after 2 s, before the agent's server closes them (Node's 5 s
// keep-alive timeout): a request sent on a socket the server is closing gets ECONNRESET.
const keepAlive = new Agent({ keepAlive: true, maxSockets: 256, noDelay: true, timeout: 2000 } as ConstructorParameters<typeof Agent>[0]);

/** A POST of `body` (chunks are written as they are, in one writev: no copy into one buffer). */
export function post(url: string, body: Uint8Array | Uint8Array[], headers: Record<string, string | number>): Promise<{ status: number; headers: InferResult['headers']; body: Buffer }> {
  const chunks = Array.isArray(body) ? body : [body];
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: keepAlive, headers: { 'content-length': chunks.reduce((n, c) => n + c.byteLength, 0), ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.cork();
    for (const c of chunks) req.write(c);
    req.end();
    req.uncork();
  });
}

/**
 * One inference. `binaryInputs`: send typed-array inputs as binary data; `binaryOutputs`: ask
 * for every output as binary data.
 */
export async function infer(baseUrl: string, model: string, inputs: Tensor[], opts: { binaryInputs?: boolean; binaryOutputs?: boolean } = {}): Promise<InferResult> {
  const url = `${baseUrl}/v2/models/${model}/infer`;
  const parameters = opts.binaryOutputs ? { parameters: { binary_data_output: true } } : {};
  let res;
  if (opts.binaryInputs) {
    const blobs: Uint8Array[] = [];
    const header = {
      ...parameters,
      inputs: inputs.map((t) => {
        const bytes = toTensorBytes(t.data as TensorArray);
        blobs.push(bytes);
        return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: bytes.length } };
      }),
    };
    const { chunks, headerLength } = encodeBinaryBody(header, blobs);
    res = await post(url, chunks, { 'content-type': 'application/octet-stream', [INFERENCE_HEADER_LENGTH]: headerLength });
  } else {
    const json = { ...parameters, inputs: inputs.map((t) => ({ ...t, data: jsonData(t.data) })) };
    res = await post(url, Buffer.from(JSON.stringify(json)), { 'content-type': 'application/json' });
  }
  const headerLength = res.headers[INFERENCE_HEADER_LENGTH];
  const body = (headerLength !== undefined ? parseBinaryBody(res.body, Number(headerLength), 'outputs') : JSON.parse(res.body.toString('utf8'))) as InferResult['body'];
  const outputs = (body.outputs ?? []).map((o) => {
    const raw = (o as { raw?: Uint8Array }).raw;
    const data = raw ? fromTensorBytes(o.name, o.datatype, raw, elementCount(o.shape)) : o.data;
    delete (o as { raw?: Uint8Array }).raw;
    return { name: o.name, datatype: o.datatype, shape: o.shape, data };
  });
  return { status: res.status, headers: res.headers, body, outputs };
}

/** A typed array as a JSON-able array (BigInts as numbers). */
export function jsonData(data: TensorArray | unknown[]): unknown[] {
  if (Array.isArray(data)) return data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, Number);
  return Array.from(data as Float32Array);
}
