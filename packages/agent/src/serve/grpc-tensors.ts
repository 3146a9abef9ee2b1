// Tensors of KServe v2 gRPC messages (Triton's grpc_service.proto), to and from the tensors
// ServedModel.infer takes and gives. An input's data is in `raw_input_contents` (bytes, as the
// HTTP binary extension lays them out: little-endian, row-major, BOOL one byte, BYTES a 4-byte
// little-endian length before each element) or in the `contents` field of its datatype; both
// become raw bytes here, which validateInputs then checks against the shape (fromTensorBytes),
// so a wrong byte count gets the same message as over HTTP. Outputs always go back in
// `raw_output_contents`, as Triton's server does, and tritonclient reads them from there.

import { TYPED_ARRAY, elementCount, lengthPrefixed, toTensorBytes, type Datatype, invalidTensor } from '@outpost/shared';
import type { OutputTensor } from '../runtime/tensors.js';

/** InferTensorContents as proto-loader decodes it (longs as strings). */
export interface GrpcContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Array<string | number>;
  uint_contents?: number[];
  uint64_contents?: Array<string | number>;
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface GrpcInputTensor {
  name?: string;
  datatype?: string;
  shape?: Array<string | number>;
  contents?: GrpcContents | null;
}

export interface GrpcInferRequest {
  model_name?: string;
  model_version?: string;
  id?: string;
  inputs?: GrpcInputTensor[];
  outputs?: Array<{ name?: string }>;
  raw_input_contents?: Uint8Array[];
}

export interface GrpcOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
}

/** Which `contents` field carries each datatype (Triton's mapping; FP16 and BF16 only travel raw). */
const CONTENTS_FIELD: Partial<Record<Datatype, keyof GrpcContents>> = {
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

const RANGES: Partial<Record<Datatype, [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  UINT8: [0, 255],
  UINT16: [0, 65535],
};

/** The fields of `contents` that hold elements. */
function filledFields(contents: GrpcContents): Array<keyof GrpcContents> {
  return (Object.keys(contents) as Array<keyof GrpcContents>).filter((k) => Array.isArray(contents[k]) && contents[k]!.length > 0);
}

/** A shape of int64s (strings from proto-loader) as numbers; past 2^53 they are not exact, and validation refuses them anyway. */
function shapeOf(t: GrpcInputTensor): number[] {
  return (t.shape ?? []).map(Number);
}

/** One input's `contents` as raw bytes. */
function contentsBytes(name: string, datatype: Datatype, shape: number[], contents: GrpcContents): Uint8Array {
  const field = CONTENTS_FIELD[datatype];
  const given = filledFields(contents);
  if (!field) throw invalidTensor(`input "${name}": ${datatype} data travels in raw_input_contents only`);
  const other = given.find((f) => f !== field);
  if (other) throw invalidTensor(`input "${name}": ${datatype} data goes in contents.${field}, not contents.${other}`);
  const values = (contents[field] ?? []) as unknown[];
  const expected = elementCount(shape);
  if (Number.isSafeInteger(expected) && values.length !== expected) {
    throw invalidTensor(`input "${name}": shape [${shape.join(',')}] needs ${expected} elements, got ${values.length}`);
  }
  if (datatype === 'BYTES') return lengthPrefixed(values as Uint8Array[]);
  if (datatype === 'BOOL') return Uint8Array.from(values as boolean[], (v) => (v ? 1 : 0));
  const range = RANGES[datatype];
  if (range) {
    const i = (values as number[]).findIndex((v) => v < range[0] || v > range[1]);
    if (i !== -1) throw invalidTensor(`input "${name}": element ${i} is ${String(values[i])}, not an integer in the ${datatype} range`);
  }
  const Ctor = TYPED_ARRAY[datatype];
  let typed;
  if (datatype === 'INT64' || datatype === 'UINT64') {
    typed = new Ctor(values.length) as BigInt64Array;
    for (let i = 0; i < values.length; i++) typed[i] = BigInt(values[i] as string);
  } else {
    typed = new Ctor(values.length) as Float32Array;
    typed.set(values as number[]);
  }
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/**
 * The request's inputs as ServedModel.infer takes them: `{ name, datatype, shape, raw }`. Raw
 * bytes are copied out of the gRPC message into one buffer of their own (8-byte aligned each):
 * typed arrays on it are moved to a session thread, and the message's buffer may be shared.
 */
export function requestInputs(request: GrpcInferRequest): Array<{ name: string; datatype: string; shape: number[]; raw: Uint8Array }> {
  const inputs = request.inputs ?? [];
  const raw = request.raw_input_contents ?? [];
  if (raw.length > 0) {
    if (raw.length !== inputs.length) throw invalidTensor(`raw_input_contents has ${raw.length} entries for ${inputs.length} inputs: give one per input, in the order of "inputs"`);
    const withContents = inputs.find((t) => t.contents && filledFields(t.contents).length > 0);
    if (withContents) throw invalidTensor(`input "${withContents.name ?? ''}": give its data in contents or in raw_input_contents, not both`);
  }
  const bytes = inputs.map((t, i): Uint8Array => {
    if (raw.length > 0) return raw[i]!;
    const name = t.name ?? '';
    const datatype = t.datatype as Datatype;
    // An unknown datatype, a missing name: validateInputs names the problem.
    if (!(datatype in CONTENTS_FIELD) && !(datatype in TYPED_ARRAY)) return new Uint8Array(0);
    if (!t.contents || filledFields(t.contents).length === 0) {
      const shape = shapeOf(t);
      if (elementCount(shape) === 0) return new Uint8Array(0);
      throw invalidTensor(`input "${name}": no data: give it in raw_input_contents or in contents`);
    }
    return contentsBytes(name, datatype, shapeOf(t), t.contents);
  });
  const pad = (n: number) => (n + 7) & ~7;
  const own = new Uint8Array(Buffer.allocUnsafeSlow(bytes.reduce((n, b) => n + pad(b.byteLength), 0) || 8).buffer);
  let at = 0;
  return inputs.map((t, i) => {
    const b = bytes[i]!;
    own.set(b, at);
    const view = own.subarray(at, at + b.byteLength);
    at += pad(b.byteLength);
    return { name: t.name ?? '', datatype: t.datatype ?? '', shape: shapeOf(t), raw: view };
  });
}

/** The response's outputs and their raw bytes (views of onnxruntime's buffers, no copy). */
export function responseOutputs(outputs: OutputTensor[]): { outputs: GrpcOutputTensor[]; raw: Buffer[] } {
  return {
    outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
    raw: outputs.map((o) => {
      const b = toTensorBytes(o.data);
      return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    }),
  };
}
