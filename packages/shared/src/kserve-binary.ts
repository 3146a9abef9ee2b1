// The KServe v2 binary tensor data extension, as Triton defines it: a JSON header whose length
// is in the `Inference-Header-Content-Length` HTTP header, then each binary tensor's raw bytes
// (little-endian, row-major; BOOL one byte each; BYTES a 4-byte length before each element) in
// the order of the tensors that carry `parameters.binary_data_size`. A client asks for binary
// outputs with `outputs[].parameters.binary_data` or `parameters.binary_data_output`.

import { invalidTensor } from './errors.js';
import type { Datatype } from './signature.js';

export const INFERENCE_HEADER_LENGTH = 'inference-header-content-length';

export type NumericArray = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
/** Tensor data as onnxruntime takes it: a typed array, or strings for BYTES. */
export type TensorArray = NumericArray | string[];

type ArrayCtor = { new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): NumericArray; new (length: number): NumericArray; BYTES_PER_ELEMENT: number };

/** The typed array each datatype lives in (FP16 as raw bits, BOOL as bytes, as onnxruntime-node wants). */
export const TYPED_ARRAY: Record<Exclude<Datatype, 'BYTES'>, ArrayCtor> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  INT8: Int8Array,
  UINT16: Uint16Array,
  INT16: Int16Array,
  UINT32: Uint32Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  UINT64: BigUint64Array,
  FP16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
} as unknown as Record<Exclude<Datatype, 'BYTES'>, ArrayCtor>;

/** Raw tensor bytes as a typed array (a copy when the bytes are not aligned for the type). */
export function fromTensorBytes(name: string, datatype: Datatype, bytes: Uint8Array, count: number): TensorArray {
  if (datatype === 'BYTES') {
    const out: string[] = [];
    let at = 0;
    while (at < bytes.length) {
      if (at + 4 > bytes.length) throw invalidTensor(`input "${name}": BYTES element ${out.length} is cut off before its 4-byte length`);
      const len = bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24);
      at += 4;
      if (len < 0 || at + len > bytes.length) throw invalidTensor(`input "${name}": BYTES element ${out.length} claims ${len} bytes, more than are left`);
      out.push(Buffer.from(bytes.buffer, bytes.byteOffset + at, len).toString('utf8'));
      at += len;
    }
    if (out.length !== count) throw invalidTensor(`input "${name}": the shape needs ${count} BYTES elements, the binary data has ${out.length}`);
    return out;
  }
  const Ctor = TYPED_ARRAY[datatype];
  const size = Ctor.BYTES_PER_ELEMENT;
  if (bytes.length !== count * size) throw invalidTensor(`input "${name}": the shape needs ${count * size} bytes of ${datatype}, binary_data_size is ${bytes.length}`);
  if (bytes.byteOffset % size === 0) return new Ctor(bytes.buffer, bytes.byteOffset, count);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Ctor(copy.buffer, 0, count);
}

/** A tensor's data as the extension's raw bytes. */
export function toTensorBytes(data: TensorArray): Uint8Array {
  if (!Array.isArray(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return lengthPrefixed(data.map((s) => Buffer.from(s, 'utf8')));
}

/** BYTES elements as the binary extension and gRPC's raw contents carry them: each after its 4-byte little-endian length. */
export function lengthPrefixed(elements: readonly Uint8Array[]): Buffer {
  const out = Buffer.alloc(elements.reduce((n, e) => n + 4 + e.byteLength, 0));
  let at = 0;
  for (const e of elements) {
    out.writeUInt32LE(e.byteLength, at);
    out.set(e, at + 4);
    at += 4 + e.byteLength;
  }
  return out;
}

interface BinaryTensor {
  name?: unknown;
  parameters?: { binary_data_size?: unknown } & Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * Splits a binary-extension body: parses the JSON header and gives each tensor (of `field`,
 * "inputs" or "outputs") that has `binary_data_size` its bytes as `raw`.
 */
export function parseBinaryBody(body: Buffer, headerLength: number, field: 'inputs' | 'outputs'): Record<string, unknown> {
  if (!Number.isInteger(headerLength) || headerLength < 0 || headerLength > body.length) {
    throw invalidTensor(`Inference-Header-Content-Length is ${headerLength}, but the body has ${body.length} bytes`);
  }
  let header: unknown;
  try {
    header = JSON.parse(body.subarray(0, headerLength).toString('utf8'));
  } catch (err) {
    throw invalidTensor(`the JSON header (the first ${headerLength} bytes) is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw invalidTensor('the JSON header must be an object');
  let at = headerLength;
  const tensors = (header as Record<string, unknown>)[field];
  if (Array.isArray(tensors)) {
    for (const t of tensors as BinaryTensor[]) {
      const size = t?.parameters?.binary_data_size;
      if (size === undefined) continue;
      if (!Number.isInteger(size) || (size as number) < 0) throw invalidTensor(`${String(t.name)}: binary_data_size must be a non-negative integer`);
      if (at + (size as number) > body.length) throw invalidTensor(`${String(t.name)}: binary_data_size ${String(size)} runs past the end of the body (${body.length - at} bytes left)`);
      t.raw = body.subarray(at, at + (size as number));
      at += size as number;
    }
  }
  if (at !== body.length) throw invalidTensor(`the body has ${body.length - at} bytes after the last binary tensor`);
  return header as Record<string, unknown>;
}

/**
 * A JSON header and the binary tensors after it, as the chunks of one body: written in order
 * (one writev), they need no copy into a single buffer.
 */
export function encodeBinaryBody(header: unknown, blobs: Uint8Array[]): { chunks: Uint8Array[]; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  return { chunks: [json, ...blobs], headerLength: json.length };
}
