// The weights of an ONNX model (its graph's initializers), read straight from the protobuf
// bytes with where each one's values lie in the file, so a federated update can be checked
// against the global model and averaged into a copy of it without re-encoding anything: an
// update has the same shapes and types, so the averaged values take exactly the same bytes.
// Only what ONNX files use is read: ModelProto.graph (7), GraphProto.initializer (5), and a
// TensorProto's dims (1), data_type (2), float_data (4), name (8), raw_data (9), data_location (14).

import { createHash } from 'node:crypto';

/** TensorProto.DataType values this reads values of. */
export const ONNX_FLOAT = 1;

export interface Initializer {
  name: string;
  dataType: number;
  dims: number[];
  /** Where the values are: raw little-endian bytes (raw_data) or packed float_data; offset and length in bytes. */
  values: { encoding: 'raw' | 'packed-float'; offset: number; length: number } | null;
  /** The whole TensorProto's bytes: what a non-float initializer is compared by. */
  span: { offset: number; length: number };
}

export interface ModelWeights {
  initializers: Initializer[];
  /** sha256 of the graph without its initializers: equal for two files of one architecture. */
  graphHash: string;
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++]!;
      // Beyond 2^53 a JS number loses digits; no field read here is that large when valid.
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new Error('varint too long');
    }
  }

  /** The next field: its number, wire type, and for length-delimited ones where its bytes are. */
  field(): { no: number; wire: number; start: number; end: number } {
    const key = this.varint();
    const no = Math.floor(key / 8);
    const wire = key % 8;
    const start = this.pos;
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else if (wire === 2) {
      const len = this.varint();
      const s = this.pos;
      this.pos += len;
      if (this.pos > this.end) throw new Error('truncated field');
      return { no, wire, start: s, end: this.pos };
    } else throw new Error(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new Error('truncated field');
    return { no, wire, start, end: this.pos };
  }
}

function readTensor(buf: Uint8Array, start: number, end: number): Initializer {
  const r = new Reader(buf, start, end);
  const t: Initializer = { name: '', dataType: 0, dims: [], values: null, span: { offset: start, length: end - start } };
  while (r.pos < end) {
    const f = r.field();
    if (f.no === 1) {
      if (f.wire === 2) {
        const p = new Reader(buf, f.start, f.end);
        while (p.pos < f.end) t.dims.push(p.varint());
      } else t.dims.push(new Reader(buf, f.start, f.end).varint());
    } else if (f.no === 2) t.dataType = new Reader(buf, f.start, f.end).varint();
    else if (f.no === 8) t.name = new TextDecoder().decode(buf.subarray(f.start, f.end));
    else if (f.no === 9 && f.wire === 2) t.values = { encoding: 'raw', offset: f.start, length: f.end - f.start };
    else if (f.no === 4 && f.wire === 2) t.values = { encoding: 'packed-float', offset: f.start, length: f.end - f.start };
    else if (f.no === 4) throw new Error(`initializer ${t.name || '?'}: unpacked float_data is not supported`);
    else if (f.no === 14 && new Reader(buf, f.start, f.end).varint() === 1) throw new Error(`initializer ${t.name || '?'}: weights in external data files are not supported`);
  }
  return t;
}

/** Reads a model's initializers and graph hash; throws on a file that is not a readable ONNX model. */
export function readModelWeights(buf: Uint8Array): ModelWeights {
  const top = new Reader(buf, 0, buf.length);
  let graph: { start: number; end: number } | undefined;
  while (top.pos < buf.length) {
    const f = top.field();
    if (f.no === 7 && f.wire === 2) graph = f;
  }
  if (!graph) throw new Error('no graph in the file: is it an ONNX model?');
  const initializers: Initializer[] = [];
  const hash = createHash('sha256');
  const g = new Reader(buf, graph.start, graph.end);
  while (g.pos < graph.end) {
    const fieldStart = g.pos;
    const f = g.field();
    if (f.no === 5 && f.wire === 2) initializers.push(readTensor(buf, f.start, f.end));
    else hash.update(buf.subarray(fieldStart, f.end));
  }
  return { initializers, graphHash: hash.digest('hex') };
}

/** The float values of a FLOAT initializer, as stored (little-endian float32 either way). */
export function floatValues(buf: Uint8Array, init: Initializer): Float32Array {
  const v = init.values;
  if (!v) return new Float32Array(0);
  if (v.length % 4 !== 0) throw new Error(`initializer ${init.name}: ${v.length} bytes is not a whole number of floats`);
  // A copy in an ArrayBuffer of its own: a Buffer's slice shares (unaligned) memory.
  const copy = new Uint8Array(buf.subarray(v.offset, v.offset + v.length));
  return new Float32Array(copy.buffer, 0, v.length / 4);
}

const count = (dims: number[]) => dims.reduce((n, d) => n * d, 1);

/**
 * Why `update` cannot be averaged into `global`, or null when it can: the same graph, the same
 * initializer names, types and shapes, every float finite, every non-float initializer unchanged.
 */
export function updateProblem(globalBuf: Uint8Array, global: ModelWeights, updateBuf: Uint8Array, update: ModelWeights): string | null {
  if (update.graphHash !== global.graphHash) return 'its graph differs from the global model\'s (only the weights may change)';
  const mine = new Map(update.initializers.map((i) => [i.name, i]));
  if (mine.size !== update.initializers.length) return 'it has two initializers of one name';
  for (const g of global.initializers) {
    const u = mine.get(g.name);
    if (!u) return `initializer ${g.name} is missing`;
    if (u.dataType !== g.dataType) return `initializer ${g.name} has data type ${u.dataType}, the global model ${g.dataType}`;
    if (u.dims.join('x') !== g.dims.join('x')) return `initializer ${g.name} has shape [${u.dims.join(', ')}], the global model [${g.dims.join(', ')}]`;
    if (g.dataType === ONNX_FLOAT) {
      const values = floatValues(updateBuf, u);
      if (values.length !== count(g.dims)) return `initializer ${g.name} holds ${values.length} values for shape [${g.dims.join(', ')}]`;
      const bad = values.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) return `initializer ${g.name} has a non-finite value (${values[bad]}) at index ${bad}`;
    } else if (!sameBytes(globalBuf, g, updateBuf, u)) return `initializer ${g.name} (not float) changed: only float weights are averaged`;
  }
  if (update.initializers.length !== global.initializers.length) {
    const extra = update.initializers.map((i) => i.name).filter((n) => !global.initializers.some((g) => g.name === n)).join(', ');
    return `it has initializers the global model does not (${extra.length > 300 ? `${extra.slice(0, 300)}…` : extra})`;
  }
  return null;
}

function sameBytes(a: Uint8Array, ai: Initializer, b: Uint8Array, bi: Initializer): boolean {
  if (ai.span.length !== bi.span.length) return false;
  const x = a.subarray(ai.span.offset, ai.span.offset + ai.span.length);
  const y = b.subarray(bi.span.offset, bi.span.offset + bi.span.length);
  return x.every((v, i) => v === y[i]);
}

export interface WeightedUpdate {
  buf: Uint8Array;
  weights: ModelWeights;
  /** How many examples the client trained on: its update's weight. */
  numExamples: number;
}

/**
 * FedAvg, one update at a time: the float initializers' sums weighted by `numExamples` (in
 * float64), so a round holds the global model, one float64 sum per weight and one update, never
 * every update at once. Every update must have passed updateProblem.
 */
export class WeightedAverage {
  readonly #sums = new Map<string, Float64Array>();
  #total = 0;
  #count = 0;

  constructor(
    readonly globalBuf: Uint8Array,
    readonly global: ModelWeights,
  ) {
    for (const g of global.initializers) if (g.dataType === ONNX_FLOAT && g.values) this.#sums.set(g.name, new Float64Array(g.values.length / 4));
  }

  add(buf: Uint8Array, weights: ModelWeights, numExamples: number): void {
    if (!(numExamples > 0)) throw new Error('an update needs a positive number of examples');
    const byName = new Map(weights.initializers.map((i) => [i.name, i]));
    for (const [name, sum] of this.#sums) {
      const values = floatValues(buf, byName.get(name)!);
      for (let i = 0; i < sum.length; i++) sum[i]! += values[i]! * numExamples;
    }
    this.#total += numExamples;
    this.#count++;
  }

  /** A copy of the global model's bytes with the averages in place of its float weights. */
  result(): Uint8Array {
    if (this.#count === 0) throw new Error('nothing to average: no update with examples');
    const out = new Uint8Array(this.globalBuf); // a copy: a Buffer's slice() would share the global's bytes
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (const g of this.global.initializers) {
      const sum = this.#sums.get(g.name);
      if (!sum) continue;
      for (let i = 0; i < sum.length; i++) view.setFloat32(g.values!.offset + 4 * i, sum[i]! / this.#total, true);
    }
    return out;
  }
}

/** FedAvg of updates held at once (WeightedAverage one by one). */
export function federatedAverage(globalBuf: Uint8Array, global: ModelWeights, updates: readonly WeightedUpdate[]): Uint8Array {
  const avg = new WeightedAverage(globalBuf, global);
  for (const u of updates) avg.add(u.buf, u.weights, u.numExamples);
  return avg.result();
}
