// A KServe v2 JSON infer reply, written as the chunks of exactly the bytes that
// JSON.stringify({ ...head, outputs: outputs.map(toJsonTensor) }) gives, without Array.from of
// each typed array (slow: it goes through the iterator) and without building the whole reply as
// one value: the small parts go through JSON.stringify, each tensor's data is written on its own
// (integers and booleans as bytes digit by digit, FP16 from a table of its 65,536 values, floats
// through JSON.stringify of a plain array: V8's number printing is the exact one, and no JS
// shortest-digits printer beats it).

import { halfToFloat } from '@outpost/shared';
import { toJsonTensor, type OutputTensor } from '../runtime/tensors.js';

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** A JSON reply as the Router takes raw chunks: the same bytes and content-type as `{ json: { ...head, outputs: outputs.map(toJsonTensor) } }`. */
export function jsonInferReply(head: Record<string, unknown>, outputs: readonly OutputTensor[]): { headers: Record<string, string>; chunks: Array<string | Uint8Array> } {
  return { headers: { 'content-type': JSON_CONTENT_TYPE }, chunks: jsonInferReplyChunks(head, outputs) };
}

/** The chunks of JSON.stringify({ ...head, outputs: outputs.map(toJsonTensor) }), joined. */
export function jsonInferReplyChunks(head: Record<string, unknown>, outputs: readonly OutputTensor[]): Array<string | Uint8Array> {
  if (Object.hasOwn(head, 'outputs') || typeof (head as { toJSON?: unknown }).toJSON === 'function') {
    return [JSON.stringify({ ...head, outputs: outputs.map(toJsonTensor) })];
  }
  const h = JSON.stringify(head);
  const chunks: Array<string | Uint8Array> = [h.length > 2 ? `${h.slice(0, -1)},"outputs":[` : '{"outputs":['];
  outputs.forEach((o, i) => {
    const meta = JSON.stringify({ name: o.name, datatype: o.datatype, shape: o.shape });
    chunks.push(`${i > 0 ? ',' : ''}${meta.slice(0, -1)},"data":`, jsonTensorData(o), '}');
  });
  chunks.push(']}');
  return chunks;
}

/** JSON.stringify(toJsonTensor(t).data), as a string or its bytes. */
export function jsonTensorData(t: OutputTensor): string | Uint8Array {
  const { datatype, data } = t;
  if (datatype === 'BYTES' || Array.isArray(data)) return JSON.stringify(toJsonTensor(t).data);
  const n = data.length;
  if (datatype === 'BOOL') {
    const out = Buffer.allocUnsafe(n * 6 + 2);
    let p = 0;
    out[p++] = 0x5b;
    for (let i = 0; i < n; i++) {
      if (i > 0) out[p++] = 0x2c;
      if (data[i] !== 0) {
        out[p] = 0x74; out[p + 1] = 0x72; out[p + 2] = 0x75; out[p + 3] = 0x65; // true
        p += 4;
      } else {
        out[p] = 0x66; out[p + 1] = 0x61; out[p + 2] = 0x6c; out[p + 3] = 0x73; out[p + 4] = 0x65; // false
        p += 5;
      }
    }
    out[p++] = 0x5d;
    return out.subarray(0, p);
  }
  if (datatype === 'FP16' && data instanceof Uint16Array) {
    const { bytes, at } = halfTable();
    const out = Buffer.allocUnsafe(n * (HALF_LONGEST + 1) + 2);
    let p = 0;
    out[p++] = 0x5b;
    for (let i = 0; i < n; i++) {
      if (i > 0) out[p++] = 0x2c;
      const h = data[i]!;
      for (let k = at[h]!, end = at[h + 1]!; k < end; k++) out[p++] = bytes[k]!;
    }
    out[p++] = 0x5d;
    return out.subarray(0, p);
  }
  if ((datatype === 'INT64' || datatype === 'UINT64') && (data instanceof BigInt64Array || data instanceof BigUint64Array)) {
    // Number(bigint), from the two 32-bit halves: high * 2^32 is exact, so the sum rounds once, as Number() does.
    const lo = new Uint32Array(data.buffer, data.byteOffset, n * 2);
    const hi = data instanceof BigInt64Array ? new Int32Array(data.buffer, data.byteOffset, n * 2) : lo;
    const out = Buffer.allocUnsafe(n * 22 + 2);
    let p = 0;
    out[p++] = 0x5b;
    for (let i = 0; i < n; i++) {
      if (i > 0) out[p++] = 0x2c;
      p = writeNumber(out, p, LITTLE_ENDIAN ? hi[2 * i + 1]! * 4294967296 + lo[2 * i]! : Number(data[i]!));
    }
    out[p++] = 0x5d;
    return out.subarray(0, p);
  }
  if (data instanceof Int8Array || data instanceof Uint8Array || data instanceof Int16Array || data instanceof Uint16Array || data instanceof Int32Array || data instanceof Uint32Array) {
    const out = Buffer.allocUnsafe(n * 12 + 2);
    let p = 0;
    out[p++] = 0x5b;
    for (let i = 0; i < n; i++) {
      if (i > 0) out[p++] = 0x2c;
      p = writeNumber(out, p, data[i]!);
    }
    out[p++] = 0x5d;
    return out.subarray(0, p);
  }
  if (data instanceof Float32Array || data instanceof Float64Array) {
    const plain: number[] = []; // packed (pushed, not preallocated): JSON.stringify's fast path
    for (let i = 0; i < n; i++) plain.push(data[i]!);
    return JSON.stringify(plain); // V8's shortest round-trip digits; NaN and ±Infinity print as null, as they do today
  }
  return JSON.stringify(toJsonTensor(t).data);
}

const DIGITS = new Uint8Array(24);

/** An integer-valued double as JSON.stringify prints it: digits for safe integers, String() past them. */
function writeNumber(out: Buffer, p: number, v: number): number {
  if (v < 0) {
    out[p++] = 0x2d;
    v = -v;
  }
  if (v < 10) {
    out[p++] = 0x30 + v;
    return p;
  }
  if (v > Number.MAX_SAFE_INTEGER) return p + out.write(String(v), p, 'latin1');
  let k = 0;
  if (v < 2147483648) {
    while (v > 0) {
      const q = (v / 10) | 0;
      DIGITS[k++] = v - q * 10;
      v = q;
    }
  } else {
    while (v > 0) {
      const q = Math.floor(v / 10);
      DIGITS[k++] = v - q * 10;
      v = q;
    }
  }
  while (k > 0) out[p++] = 0x30 + DIGITS[--k]!;
  return p;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The longest JSON of a half ("-0.000060975551605224609" and the like). */
let HALF_LONGEST = 0;
let HALF_TABLE: { bytes: Uint8Array; at: Uint32Array } | null = null;
/** JSON of halfToFloat(h) for every half h, as bytes with offsets (built on first use, a few ms). */
function halfTable(): { bytes: Uint8Array; at: Uint32Array } {
  if (HALF_TABLE === null) {
    const strings = Array.from({ length: 65536 }, (_, h) => JSON.stringify(halfToFloat(h)));
    const at = new Uint32Array(65537);
    for (let h = 0; h < 65536; h++) {
      at[h + 1] = at[h]! + strings[h]!.length;
      HALF_LONGEST = Math.max(HALF_LONGEST, strings[h]!.length);
    }
    HALF_TABLE = { bytes: Buffer.from(strings.join(''), 'latin1'), at };
  }
  return HALF_TABLE;
}
