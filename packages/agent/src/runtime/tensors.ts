// Conversions between KServe v2 tensors (JSON arrays, or typed arrays from the binary
// extension) and onnxruntime tensors.

import { ORT_TYPE_BY_DATATYPE, OutpostError, halfToFloat, type Datatype, type TensorArray } from '@outpost/shared';
import type { WireTensor } from './worker-protocol.js';

// The request side lives in shared (the relay's probe runs models too).
export { floatToHalf, halfToFloat, toOrtTensor } from '@outpost/shared';

/** A model output, as onnxruntime gave it. */
export interface OutputTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorArray;
}

/** A KServe v2 JSON response tensor. */
export interface ResponseTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Array<number | boolean | string>;
}

const DATATYPE: Record<string, Datatype> = Object.fromEntries(Object.entries(ORT_TYPE_BY_DATATYPE).map(([k, v]) => [v, k as Datatype]));

export function fromOrtTensor(name: string, tensor: WireTensor): OutputTensor {
  const datatype = DATATYPE[tensor.type];
  if (!datatype) throw new OutpostError('OUTPOST_ERR_INFERENCE_FAILED', `output "${name}" has type ${tensor.type}, which KServe v2 cannot carry`);
  return { name, datatype, shape: [...tensor.dims], data: tensor.data as TensorArray };
}

export function toJsonTensor(t: OutputTensor): ResponseTensor {
  const { name, datatype, shape } = t;
  const raw = t.data;
  let data: Array<number | boolean | string>;
  if (datatype === 'INT64' || datatype === 'UINT64') data = Array.from(raw as BigInt64Array, Number);
  else if (datatype === 'BOOL') data = Array.from(raw as Uint8Array, (v) => v !== 0);
  else if (datatype === 'FP16') data = Array.from(raw as Uint16Array, halfToFloat);
  else if (datatype === 'BYTES') data = raw as string[];
  else data = Array.from(raw as Float32Array);
  return { name, datatype, shape, data };
}
