// Model signatures (input/output tensors) and the check every inference request passes
// before it reaches onnxruntime. KServe v2 datatype names are the public vocabulary.

import { invalidTensor } from './errors.js';
import { TYPED_ARRAY, fromTensorBytes, type TensorArray } from './kserve-binary.js';

export const DATATYPES = ['BOOL', 'UINT8', 'INT8', 'UINT16', 'INT16', 'UINT32', 'INT32', 'INT64', 'UINT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;
export type Datatype = (typeof DATATYPES)[number];

/** One tensor of a signature. `-1` marks a dynamic dimension. */
export interface TensorSpec {
  name: string;
  datatype: Datatype;
  shape: number[];
}

export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** onnxruntime's tensor type names, by KServe datatype. */
export const ORT_TYPE_BY_DATATYPE: Record<Datatype, string> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  INT8: 'int8',
  UINT16: 'uint16',
  INT16: 'int16',
  UINT32: 'uint32',
  INT32: 'int32',
  INT64: 'int64',
  UINT64: 'uint64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const DATATYPE_BY_ORT_TYPE: Record<string, Datatype> = Object.fromEntries(
  Object.entries(ORT_TYPE_BY_DATATYPE).map(([k, v]) => [v, k as Datatype]),
);

export function datatypeFromOrtType(ortType: string): Datatype | undefined {
  return DATATYPE_BY_ORT_TYPE[ortType];
}

/**
 * A tensor as a KServe v2 request carries it: `data` a flat JSON array, or (binary extension,
 * once checked) a typed array.
 */
export interface RequestTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[] | TensorArray;
}

const INTEGER_RANGES: Partial<Record<Datatype, [number, number]>> = {
  UINT8: [0, 255],
  INT8: [-128, 127],
  UINT16: [0, 65535],
  INT16: [-32768, 32767],
  UINT32: [0, 4294967295],
  INT32: [-2147483648, 2147483647],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkElements(name: string, data: unknown[], datatype: Datatype): void {
  const range = INTEGER_RANGES[datatype];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (datatype === 'BOOL') {
      if (typeof v !== 'boolean') throw invalidTensor(`input "${name}": element ${i} is ${JSON.stringify(v)}, BOOL data must be true or false`);
    } else if (datatype === 'BYTES') {
      if (typeof v !== 'string') throw invalidTensor(`input "${name}": element ${i} is ${JSON.stringify(v)}, BYTES data must be strings`);
    } else if (typeof v !== 'number') {
      throw invalidTensor(`input "${name}": element ${i} is ${JSON.stringify(v)}, ${datatype} data must be numbers`);
    } else if (range && (!Number.isInteger(v) || v < range[0] || v > range[1])) {
      throw invalidTensor(`input "${name}": element ${i} is ${v}, not an integer in the ${datatype} range`);
    }
  }
}

/**
 * Checks a request's input tensors against a signature and returns them in signature order.
 * Throws OUTPOST_ERR_TENSOR_INVALID with a message naming the tensor and the problem.
 */
export function validateInputs(signature: ModelSignature, inputs: unknown): RequestTensor[] {
  if (!Array.isArray(inputs)) throw invalidTensor('"inputs" must be an array of tensors');
  const byName = new Map<string, RequestTensor>();
  for (const input of inputs) {
    const t = input as Partial<RequestTensor> | null;
    if (typeof t !== 'object' || t === null || typeof t.name !== 'string') throw invalidTensor('every input needs a "name"');
    const spec = signature.inputs.find((s) => s.name === t.name);
    if (!spec) throw invalidTensor(`unknown input "${t.name}": the model takes ${signature.inputs.map((s) => `"${s.name}"`).join(', ')}`);
    if (byName.has(t.name)) throw invalidTensor(`input "${t.name}" is given twice`);
    if (t.datatype !== spec.datatype) throw invalidTensor(`input "${t.name}": datatype ${JSON.stringify(t.datatype)} does not match the model's ${spec.datatype}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw invalidTensor(`input "${t.name}": "shape" must be an array of non-negative integers ([] for a scalar)`);
    }
    if (t.shape.length !== spec.shape.length) {
      throw invalidTensor(`input "${t.name}": shape [${t.shape.join(',')}] has rank ${t.shape.length}, the model expects [${spec.shape.join(',')}]`);
    }
    spec.shape.forEach((d, i) => {
      if (d !== -1 && t.shape![i] !== d) {
        throw invalidTensor(`input "${t.name}": shape [${t.shape!.join(',')}] does not match the model's [${spec.shape.join(',')}] at dimension ${i}`);
      }
    });
    const expected = elementCount(t.shape);
    // onnxruntime fails (500) on many models given an empty tensor: it is the caller's mistake.
    if (expected === 0 && t.shape.length > 0) throw invalidTensor(`input "${t.name}": shape [${t.shape.join(',')}] has no elements`);
    if (!Number.isSafeInteger(expected)) throw invalidTensor(`input "${t.name}": shape [${t.shape.join(',')}] has more elements than any request can carry`);
    // Binary extension: the bytes after the JSON header (see kserve-binary.ts).
    const raw = (t as { raw?: unknown }).raw;
    if (raw instanceof Uint8Array) {
      if (t.data !== undefined) throw invalidTensor(`input "${t.name}": give "data" or binary_data_size, not both`);
      byName.set(t.name, { name: t.name, datatype: spec.datatype, shape: t.shape, data: fromTensorBytes(t.name, spec.datatype, raw, expected) });
      continue;
    }
    // JSON data its parser already read into the datatype's typed array (the agent's
    // parseJsonInferBody does so only for elements checkElements accepts): the same checks.
    const typed = ArrayBuffer.isView(t.data) && spec.datatype !== 'BYTES' && t.data instanceof TYPED_ARRAY[spec.datatype];
    if (!typed && !Array.isArray(t.data)) throw invalidTensor(`input "${t.name}": "data" must be a flat, row-major array`);
    const data = t.data as unknown[] | TensorArray;
    if (data.length !== expected) {
      throw invalidTensor(`input "${t.name}": shape [${t.shape.join(',')}] needs ${expected} elements, got ${data.length}`);
    }
    if (typed) {
      byName.set(t.name, t as RequestTensor);
      continue;
    }
    checkElements(t.name, data as unknown[], spec.datatype);
    byName.set(t.name, t as RequestTensor);
  }
  return signature.inputs.map((spec) => {
    const t = byName.get(spec.name);
    if (!t) throw invalidTensor(`missing input "${spec.name}" (${spec.datatype} [${spec.shape.join(',')}])`);
    return t;
  });
}

/** Bytes one element takes in the binary extension. */
const ELEMENT_BYTES: Record<Exclude<Datatype, 'BYTES'>, number> = { BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, UINT32: 4, INT32: 4, INT64: 8, UINT64: 8, FP16: 2, FP32: 4, FP64: 8 };
/** The most a JSON number takes with its comma and some space ("-1.2345678901234567e-308, "). */
const JSON_BYTES_PER_ELEMENT = 32;
/** Room for the JSON header around the data: names, shapes, parameters. */
const REQUEST_OVERHEAD_BYTES = 64 * 1024;

/**
 * The largest body a legal request to this signature can need, JSON or binary, with a dynamic
 * first dimension up to `maxRows` rows; null when a dynamic inner dimension or a BYTES input
 * leaves it unbounded. A request body larger than this cannot be valid, so it is refused before
 * it is read.
 */
export function largestLegalRequest(signature: ModelSignature, maxRows: number): { bytes: number; why: string } | null {
  let elements = 0;
  let binary = 0;
  for (const input of signature.inputs) {
    if (input.datatype === 'BYTES' || input.shape.some((d, i) => d === -1 && i > 0)) return null;
    const n = elementCount(input.shape.map((d) => (d === -1 ? maxRows : d)));
    elements += n;
    binary += n * ELEMENT_BYTES[input.datatype];
  }
  const bytes = Math.max(elements * JSON_BYTES_PER_ELEMENT, binary) + REQUEST_OVERHEAD_BYTES;
  const rows = signature.inputs.some((i) => i.shape[0] === -1) ? `${maxRows} rows of ` : '';
  return { bytes, why: `the most a request for ${rows}this model's inputs can need (${formatSignature({ inputs: signature.inputs, outputs: [] }).replace(/ -> outputs $/, '')})` };
}

export function formatSignature(signature: ModelSignature): string {
  const f = (t: TensorSpec) => `${t.name}: ${t.datatype}[${t.shape.join(',')}]`;
  return `inputs ${signature.inputs.map(f).join('; ')} -> outputs ${signature.outputs.map(f).join('; ')}`;
}

/**
 * A valid input for every tensor of a signature (zero values; a dynamic first dimension
 * `rows`, other dynamic dimensions 1): the self-test and the warm-up.
 */
export function sampleInputs(signature: ModelSignature, rows = 1): RequestTensor[] {
  return signature.inputs.map((spec) => {
    const shape = spec.shape.map((d, i) => (d === -1 ? (i === 0 ? rows : 1) : d));
    const zero = spec.datatype === 'BOOL' ? false : spec.datatype === 'BYTES' ? '' : 0;
    return { name: spec.name, datatype: spec.datatype, shape, data: new Array(elementCount(shape)).fill(zero) };
  });
}
