// Bounds checked on a ModelInferRequest's protobuf bytes before protobufjs decodes them. The
// decoder makes a JS object for every entry of a repeated field (with every default filled
// in): a 4 MiB message of 2-byte empty `inputs` entries becomes two million objects, hundreds
// of MB of heap, before any check of the agent's could run. This scan walks the wire format
// (tags and lengths only, nothing copied) and counts what decoding would make.
//
// Field numbers from Triton's grpc_service.proto: ModelInferRequest { parameters = 4,
// inputs = 5, outputs = 6, raw_input_contents = 7 }, InferInputTensor { shape = 3,
// parameters = 4, contents = 5 }, InferRequestedOutputTensor { parameters = 2 },
// InferTensorContents { bool 1, int 2, int64 3, uint 4, uint64 5, fp32 6, fp64 7, bytes 8 }.

/** What one request may carry; the reason names the bound. */
export const GRPC_WIRE_LIMITS = {
  /** Inputs, outputs, raw_input_contents entries and parameters, each. */
  entries: 64,
  /** Dimensions of one input's shape. */
  rank: 16,
  /** Elements of one input's `contents` (large tensors belong in raw_input_contents). */
  contents: 1 << 20,
};

const VARINT = 0;
const FIXED64 = 1;
const LENGTH = 2;
const FIXED32 = 5;

/** The end of the varint at `p` (past its last byte); throws past 10 bytes or the end. */
function varintEnd(b: Uint8Array, p: number, end: number): number {
  for (let i = 0; i < 10; i++, p++) {
    if (p >= end) throw new Error('the message ends inside a number');
    if ((b[p]! & 0x80) === 0) return p + 1;
  }
  throw new Error('a number longer than 10 bytes');
}

/** The varint at `p` as a double (exact up to 2^53; larger lengths overrun the message anyway). */
function varint(b: Uint8Array, p: number, end: number): [value: number, next: number] {
  const next = varintEnd(b, p, end);
  let value = 0;
  for (let i = next - 1; i >= p; i--) value = value * 128 + (b[i]! & 0x7f);
  return [value, next];
}

/** Visits each field of the message in b[start, end): its number, wire type and value's span. */
function fields(b: Uint8Array, start: number, end: number, visit: (field: number, type: number, from: number, to: number) => void): void {
  let p = start;
  while (p < end) {
    const [key, at] = varint(b, p, end);
    const field = Math.floor(key / 8);
    const type = key % 8;
    let from = at;
    let to: number;
    if (type === VARINT) to = varintEnd(b, at, end);
    else if (type === FIXED64) to = at + 8;
    else if (type === FIXED32) to = at + 4;
    else if (type === LENGTH) {
      const [length, body] = varint(b, at, end);
      from = body;
      to = body + length;
    } else throw new Error(`wire type ${type} of field ${field} is not one protobuf 3 writes`);
    if (to > end) throw new Error(`field ${field} runs past the end of its message`);
    visit(field, type, from, to);
    p = to;
  }
}

/** Elements of a repeated scalar field's value: one unpacked, or as many as a packed run holds. */
function elements(b: Uint8Array, type: number, from: number, to: number, width: 0 | 4 | 8): number {
  if (type !== LENGTH) return 1;
  if (width > 0) return Math.ceil((to - from) / width);
  let n = 0;
  for (let p = from; p < to; p++) if ((b[p]! & 0x80) === 0) n++;
  return n;
}

const CONTENT_WIDTH: Record<number, 0 | 4 | 8> = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 4, 7: 8 };

/** Why the request is refused before it is decoded, or undefined when it is within the bounds. */
export function wireRefusal(b: Uint8Array, limits = GRPC_WIRE_LIMITS): string | undefined {
  try {
    const count: Record<number, number> = {};
    const over = (what: string, n: number, limit: number) => {
      if (n > limit) throw new Error(`${what}: more than ${limit}`);
    };
    fields(b, 0, b.length, (field, type, from, to) => {
      count[field] = (count[field] ?? 0) + 1;
      if (field === 4) over('request parameters', count[field], limits.entries);
      if (field === 6) over('requested outputs', count[field], limits.entries);
      if (field === 7) over('raw_input_contents entries', count[field], limits.entries);
      if (field === 6 && type === LENGTH) {
        let params = 0;
        fields(b, from, to, (f) => f === 2 && over('parameters of an output', ++params, limits.entries));
      }
      if (field !== 5) return;
      over('inputs', count[field], limits.entries);
      if (type !== LENGTH) return;
      let rank = 0;
      let params = 0;
      fields(b, from, to, (f, t, s, e) => {
        if (f === 3) over("dimensions of an input's shape", (rank += elements(b, t, s, e, 0)), limits.rank);
        else if (f === 4) over('parameters of an input', ++params, limits.entries);
        else if (f === 5 && t === LENGTH) {
          let n = 0;
          fields(b, s, e, (cf, ct, cs, ce) => {
            if (cf >= 1 && cf <= 8) over("elements of an input's contents (send large tensors in raw_input_contents)", (n += cf === 8 ? 1 : elements(b, ct, cs, ce, CONTENT_WIDTH[cf]!)), limits.contents);
          });
        }
      });
    });
    return undefined;
  } catch (err) {
    return `the request is refused before decoding: ${(err as Error).message}`;
  }
}
