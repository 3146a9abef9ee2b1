// KServe v2 request tensors as onnxruntime takes them: typed arrays by datatype (float16 as raw
// bits, INT64 as BigInt64Array). The agent's session threads and the relay's model probe (its
// push-time self-test) both feed onnxruntime from here.

import { ORT_TYPE_BY_DATATYPE, type Datatype, type RequestTensor } from './signature.js';
import { TYPED_ARRAY, type TensorArray } from './kserve-binary.js';

/** What onnxruntime's Tensor constructor takes: a type name, its dimensions and its data. */
export interface OrtTensorData {
  type: string;
  dims: readonly number[];
  data: TensorArray;
}

/** IEEE 754 half precision, as onnxruntime-node stores float16 (raw bits in a Uint16Array). */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf or NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    if ((mant >> (shift - 1)) & 1) half += 1; // round half up
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >> 13);
  if (mant & 0x1000) half += 1; // round; may carry into the exponent, which is still correct
  return half;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

type OrtData = TensorArray;

/** JSON values as the typed array the datatype lives in (TYPED_ARRAY); only the values need converting. */
function toOrtData(datatype: Datatype, data: unknown[]): OrtData {
  if (datatype === 'BYTES') return data as string[];
  if (datatype === 'FP16') return Uint16Array.from(data as number[], floatToHalf);
  if (datatype === 'INT64') return BigInt64Array.from(data as number[], (v) => BigInt(v));
  if (datatype === 'UINT64') return BigUint64Array.from(data as number[], (v) => BigInt(v));
  if (datatype === 'BOOL') return Uint8Array.from(data as boolean[], (v) => (v ? 1 : 0));
  return (TYPED_ARRAY[datatype] as unknown as { from(values: ArrayLike<number>): OrtData }).from(data as number[]);
}


/** A checked request tensor (see validateInputs) as onnxruntime will take it; binary data is used as is. */
export function toOrtTensor(t: RequestTensor): OrtTensorData {
  const datatype = t.datatype as Datatype;
  const data = ArrayBuffer.isView(t.data) ? (t.data as TensorArray) : toOrtData(datatype, t.data as unknown[]);
  return { type: ORT_TYPE_BY_DATATYPE[datatype], dims: t.shape, data };
}

