// A KServe v2 JSON infer request body, parsed the way JSON.parse parses it, except that each
// `inputs[i].data` that is a flat array of numbers (or of true/false for BOOL) that validation
// would accept comes back as the typed array onnxruntime takes (TYPED_ARRAY of its declared
// datatype: FP16 as half bits, INT64 as BigInt64Array, BOOL as bytes), read straight from the
// bytes. JSON.parse of half a megabyte of numbers and the copy into a typed array cost several
// milliseconds; this costs a fraction.
//
// Design: a scanner walks the document's structure (top-level object, "inputs", each input
// object; everything else is skipped, not checked), and parses each input's "data" array strictly
// (JSON number grammar) into doubles. When the input object closes and its datatype is known,
// the doubles become the typed array — only when every element is one validateInputs accepts
// for that datatype and the conversion is exactly toOrtTensor's. The rest of the document, with
// each converted array replaced by `[]`, goes to JSON.parse, and the typed arrays take the
// placeholders' places. Anything the scanner does not expect (a duplicate key, escapes it cannot
// resolve, a datatype it does not convert, invalid JSON) means no conversion, and in doubt the
// whole body goes to JSON.parse: its value, or its SyntaxError, is the answer.
//
// Why this is exactly JSON.parse: a converted span is a valid JSON array, and replacing one JSON
// value with another leaves a document valid or invalid alike; a failure of the skeleton's
// JSON.parse re-runs JSON.parse on the whole body, whose error (with its positions) is thrown.
//
// Numbers are JSON.parse's doubles exactly (then rounded as Float32Array/FP16/BigInt64Array do):
// up to 2^53 as an integer significand with at most 22 decimals, one correctly rounded division
// (Clinger's fast path); 16–19 digits (Python's floats) approximately, then made exact: for FP32
// and FP16 by checking that every double near the approximation rounds to the same float32, for
// FP64 and integers in double-double arithmetic (exactDouble); whatever is left unsure, and
// longer literals or larger exponents, by Number() of the literal.

import { endianness } from 'node:os';
import { floatToHalf, type Datatype, type NumericArray } from '@outpost/shared';

/** Parses a JSON infer request body: JSON.parse's value (or SyntaxError), with input data as typed arrays when validation would accept them. */
export function parseJsonInferBody(body: Buffer): unknown {
  const spans = new Scanner(body).scan();
  if (spans === null || spans.length === 0) return plainParse(body);
  const parts: string[] = [];
  let at = 0;
  for (const s of spans) {
    parts.push(body.toString('utf8', at, s.start), '[]');
    at = s.end;
  }
  parts.push(body.toString('utf8', at, body.length));
  let doc: unknown;
  try {
    doc = JSON.parse(parts.join(''));
  } catch {
    return plainParse(body); // throws the body's own SyntaxError
  }
  const inputs = (doc as { inputs?: unknown }).inputs;
  for (const s of spans) {
    const t = Array.isArray(inputs) ? (inputs[s.index] as { data?: unknown } | null) : undefined;
    // Cannot happen when the scanner read the structure right; if it did not, JSON.parse decides.
    if (typeof t !== 'object' || t === null || !Array.isArray(t.data) || t.data.length !== 0) return plainParse(body);
    t.data = s.data;
  }
  return doc;
}

function plainParse(body: Buffer): unknown {
  return JSON.parse(body.toString('utf8'));
}

interface Span {
  /** Position in the top-level "inputs" array. */
  index: number;
  start: number;
  end: number;
  data: NumericArray;
}

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const LBRACKET = 0x5b, RBRACKET = 0x5d, LBRACE = 0x7b, RBRACE = 0x7d;
const MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e, ZERO = 0x30;

/** Relative distance an approximate value may be from the exact one, with room to spare (see scanNumber). */
const MARGIN = 2 ** -47;
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i); // exact doubles up to 1e22
const LITTLE_ENDIAN = endianness() === 'LE';

/** Why the scan stops and hands the body to JSON.parse. */
class Bail extends Error {}
const BAIL = new Bail();

/** A parsed data array: doubles (or 0/1 for booleans), with the elements whose double is not yet exact. */
interface Numbers {
  kind: 'number' | 'bool';
  count: number;
  values: Float64Array;
  /** Elements whose value is still approximate (16–19 significant digits; datatype not yet known): index, start, end of the literal. */
  approx: number[];
  /** Elements that need Number() of their literal (more digits, large exponents). */
  slow: number[];
  /** Approximate values already checked for float32 (and the unsure ones put in slow). */
  f32: boolean;
  /** The data array's span, for slices of element literals. */
  start: number;
  end: number;
}

class Scanner {
  private p = 0;
  /** The body, for slices and searches; b, a plain Uint8Array view of it, for indexing (faster than a Buffer's). */
  private readonly buf: Buffer;
  private readonly b: Uint8Array;
  private readonly n: number;
  private latin1: string | null = null;
  /** Where the body's last "]" is (-1: none; -2: not looked for yet). */
  private lastClose = -2;
  private latin1Start = 0;

  constructor(body: Buffer) {
    this.buf = body;
    this.b = new Uint8Array(body.buffer, body.byteOffset, body.length);
    this.n = body.length;
  }

  /** The data arrays to replace, or null when the body should go to JSON.parse whole. */
  scan(): Span[] | null {
    try {
      return this.document();
    } catch (err) {
      if (err instanceof Bail) return null;
      throw err;
    }
  }

  private ws(): number {
    const b = this.b;
    let p = this.p;
    while (p < this.n) {
      const c = b[p]!;
      if (c !== SPACE && c !== LF && c !== CR && c !== TAB) break;
      p++;
    }
    this.p = p;
    return p < this.n ? b[p]! : -1;
  }

  private expect(c: number): void {
    if (this.ws() !== c) throw BAIL;
    this.p++;
  }

  private document(): Span[] {
    const spans: Span[] = [];
    this.expect(LBRACE);
    let seenInputs = false;
    if (this.ws() === RBRACE) this.p++;
    else {
      for (;;) {
        const key = this.key();
        this.expect(COLON);
        if (key === 'inputs') {
          if (seenInputs) throw BAIL; // JSON.parse keeps the last one: not worth following
          seenInputs = true;
          if (this.ws() === LBRACKET) this.inputs(spans);
          else this.skipValue();
        } else this.skipValue();
        const c = this.ws();
        this.p++;
        if (c === COMMA) continue;
        if (c === RBRACE) break;
        throw BAIL;
      }
    }
    if (this.ws() !== -1) throw BAIL;
    return spans;
  }

  private inputs(spans: Span[]): void {
    this.p++; // [
    if (this.ws() === RBRACKET) {
      this.p++;
      return;
    }
    for (let index = 0; ; index++) {
      if (this.ws() === LBRACE) this.input(index, spans);
      else this.skipValue();
      const c = this.ws();
      this.p++;
      if (c === COMMA) continue;
      if (c === RBRACKET) return;
      throw BAIL;
    }
  }

  private input(index: number, spans: Span[]): void {
    this.p++; // {
    let datatype: string | null = null;
    let datatypes = 0;
    let datas = 0;
    let numbers: Numbers | null = null;
    if (this.ws() === RBRACE) {
      this.p++;
      return;
    }
    for (;;) {
      const key = this.key();
      this.expect(COLON);
      const c = this.ws();
      if (key === 'datatype') {
        datatypes++;
        datatype = c === QUOTE ? this.key() : (this.skipValue(), null);
      } else if (key === 'data') {
        datas++;
        numbers = c === LBRACKET ? this.numbers(datatypes === 1 ? datatype : null) : null;
        if (numbers === null) this.skipValue();
      } else this.skipValue();
      const d = this.ws();
      this.p++;
      if (d === COMMA) continue;
      if (d === RBRACE) break;
      throw BAIL;
    }
    if (numbers === null || datatypes !== 1 || datas !== 1 || datatype === null) return;
    const data = this.convert(numbers, datatype);
    if (data) spans.push({ index, start: numbers.start, end: numbers.end, data });
  }

  /** A string token (key or datatype) at p, decoded; escapes and non-ASCII go through JSON.parse. */
  private key(): string {
    if (this.ws() !== QUOTE) throw BAIL;
    const b = this.b;
    const start = this.p;
    let p = start + 1;
    let plain = true;
    for (;;) {
      if (p >= this.n) throw BAIL;
      const c = b[p]!;
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        plain = false;
        p += 2;
        continue;
      }
      if (c < 0x20) throw BAIL;
      if (c >= 0x80) plain = false;
      p++;
    }
    this.p = p + 1;
    if (plain) return this.buf.toString('latin1', start + 1, p);
    try {
      return JSON.parse(this.buf.toString('utf8', start, p + 1)) as string;
    } catch {
      throw BAIL;
    }
  }

  /** Skips one value (not checking it: the skeleton's JSON.parse does). */
  private skipValue(): void {
    const b = this.b;
    let c = this.ws();
    if (c === QUOTE) {
      this.skipString();
      return;
    }
    if (c !== LBRACKET && c !== LBRACE) {
      // a literal or a number: up to the next delimiter
      let p = this.p;
      while (p < this.n) {
        c = b[p]!;
        if (c === COMMA || c === RBRACKET || c === RBRACE || c === SPACE || c === LF || c === CR || c === TAB) break;
        p++;
      }
      if (p === this.p) throw BAIL;
      this.p = p;
      return;
    }
    let depth = 0;
    let p = this.p;
    while (p < this.n) {
      c = b[p]!;
      if (c === QUOTE) {
        this.p = p;
        this.skipString();
        p = this.p;
        continue;
      }
      if (c === LBRACKET || c === LBRACE) depth++;
      else if (c === RBRACKET || c === RBRACE) {
        if (--depth === 0) {
          this.p = p + 1;
          return;
        }
      }
      p++;
    }
    throw BAIL;
  }

  private skipString(): void {
    const b = this.buf;
    let p = this.p + 1;
    for (;;) {
      const q = b.indexOf(QUOTE, p);
      if (q === -1) throw BAIL;
      let k = q - 1;
      while (b[k] === BACKSLASH) k--;
      p = q + 1;
      if ((q - 1 - k) % 2 === 0) break;
    }
    this.p = p;
  }

  /**
   * A flat array of JSON numbers, or of true/false, at p, read strictly by the JSON grammar;
   * null (p unmoved) for anything else.
   */
  private numbers(known: string | null): Numbers | null {
    // FP32 and FP16 declared before the data: approximate values are checked here (see float32).
    const f32 = known === 'FP32' || known === 'FP16';
    // FP64 declared before: approximate values made exact here (see exactDouble).
    const f64 = known === 'FP64';
    const b = this.b;
    const start = this.p;
    // The element loops read without bounds checks up to a "]": there must be one ahead.
    if (this.lastClose === -2) this.lastClose = this.buf.lastIndexOf(RBRACKET);
    if (this.lastClose < start + 1) return null;
    let p = start + 1;
    let values = new Float64Array(1024);
    let count = 0;
    const approx: number[] = [];
    const slow: number[] = [];
    let kind: 'number' | 'bool';
    let c = b[p]!;
    while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]!;
    if (c === RBRACKET) return null; // [] stays as JSON.parse gives it
    if (c === 0x74 || c === 0x66) {
      // true / false
      kind = 'bool';
      for (;;) {
        if (count === values.length) values = grow(values, count === 1024 ? estimate(start, p, b.indexOf(RBRACKET, p), count) : 0);
        if (c === 0x74 && b[p + 1] === 0x72 && b[p + 2] === 0x75 && b[p + 3] === 0x65) {
          values[count++] = 1;
          p += 4;
        } else if (c === 0x66 && b[p + 1] === 0x61 && b[p + 2] === 0x6c && b[p + 3] === 0x73 && b[p + 4] === 0x65) {
          values[count++] = 0;
          p += 5;
        } else return null;
        c = b[p]!;
        while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]!;
        p++;
        if (c === RBRACKET) break;
        if (c !== COMMA) return null;
        c = b[p]!;
        while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]!;
      }
    } else {
      kind = 'number';
      for (;;) {
        if (count === values.length) values = grow(values, count === 1024 ? estimate(start, p, b.indexOf(RBRACKET, p), count) : 0);
        // Inline fast path: -?(0|[1-9][0-9]*)(\.[0-9]+)? with at most 19 significant digits and
        // 22 decimals, no exponent; anything else goes to scanNumber.
        let to = p;
        let c1 = b[to]!;
        const neg = c1 === MINUS;
        if (neg) c1 = b[++to]!;
        let d = c1 - ZERO;
        let m = 0;
        let sig = 0;
        let frac = 0;
        let fast = false;
        if (d === 0) {
          d = b[++to]! - ZERO;
          fast = d >>> 0 > 9; // else a leading zero
        } else if (d >>> 0 <= 9) {
          do {
            m = m * 10 + d;
            sig++;
            d = b[++to]! - ZERO;
          } while (d >>> 0 <= 9);
          fast = true;
        }
        if (fast && d === DOT - ZERO) {
          d = b[++to]! - ZERO;
          fast = d >>> 0 <= 9;
          while (d >>> 0 <= 9) {
            m = m * 10 + d;
            if (m !== 0) sig++;
            frac++;
            d = b[++to]! - ZERO;
          }
        }
        let v: number;
        let cls: number;
        if (fast && d !== 0x65 - ZERO && d !== 0x45 - ZERO && sig <= 19 && frac <= 22) {
          // exact while m stays an integer below 2^53 (Clinger's fast path); past it, m*10+d
          // rounded at most 8 times: within 2^-49.8 of the value, MARGIN allows 2^-47
          v = frac === 0 ? m : m / POW10[frac]!;
          if (neg) v = -v;
          cls = m <= 9007199254740991 ? EXACT : APPROX;
        } else {
          to = scanNumber(b, p);
          if (to < 0) return null;
          v = numberValue;
          cls = numberClass;
        }
        if (cls === APPROX && f64) {
          // exact now (no second pass), or by Number() later
          const x = exactDouble(b, p);
          if (x === x) v = x;
          else slow.push(count, p, to);
        } else if (cls !== EXACT) {
          if (cls === SLOW) slow.push(count, p, to);
          else if (!f32) approx.push(count, p, to);
          else if (Math.fround(v * (1 - MARGIN)) !== Math.fround(v * (1 + MARGIN))) slow.push(count, p, to);
        }
        values[count++] = v;
        p = to;
        c = b[p]!;
        while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]!;
        p++;
        if (c === COMMA) {
          c = b[p]!;
          while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p]!;
          continue;
        }
        if (c === RBRACKET) break;
        return null;
      }
    }
    this.p = p;
    return { kind: kind!, count, values, approx, slow, f32, start, end: p };
  }

  /** The literal of an element, as JSON.parse reads it. */
  private exact(nums: Numbers, from: number, to: number): number {
    let s = this.latin1;
    if (s === null || this.latin1Start !== nums.start) {
      s = this.latin1 = this.buf.toString('latin1', nums.start, nums.end);
      this.latin1Start = nums.start;
    }
    return Number(s.slice(from - nums.start, to - nums.start));
  }

  /** The exact doubles (what JSON.parse gives) of a number array, in place. */
  private exactAll(nums: Numbers): Float64Array {
    const { values, approx, slow } = nums;
    const b = this.b;
    for (let k = 0; k < approx.length; k += 3) {
      const v = exactDouble(b, approx[k + 1]!);
      values[approx[k]!] = v === v ? v : this.exact(nums, approx[k + 1]!, approx[k + 2]!);
    }
    for (let k = 0; k < slow.length; k += 3) values[slow[k]!] = this.exact(nums, slow[k + 1]!, slow[k + 2]!);
    return values;
  }

  /** The typed array toOrtTensor would make of these values under this datatype, or null when validation would refuse one (or the datatype is not converted). */
  private convert(nums: Numbers, datatype: string): NumericArray | null {
    const { count } = nums;
    if (datatype === 'BOOL') {
      if (nums.kind !== 'bool') return null;
      const out = new Uint8Array(count);
      const v = nums.values;
      for (let i = 0; i < count; i++) out[i] = v[i]!;
      return out;
    }
    if (nums.kind !== 'number' || (nums.f32 && datatype !== 'FP32' && datatype !== 'FP16')) return null;
    switch (datatype as Datatype) {
      case 'FP64': {
        const v = this.exactAll(nums);
        return v.length === count ? v : v.slice(0, count);
      }
      case 'FP32':
        return this.float32(nums);
      case 'FP16': {
        const f = this.float32(nums);
        const out = new Uint16Array(count);
        for (let i = 0; i < count; i++) out[i] = floatToHalf(f[i]!);
        return out;
      }
      case 'UINT8':
        return integers(this.exactAll(nums), count, new Uint8Array(count), 0, 255);
      case 'INT8':
        return integers(this.exactAll(nums), count, new Int8Array(count), -128, 127);
      case 'UINT16':
        return integers(this.exactAll(nums), count, new Uint16Array(count), 0, 65535);
      case 'INT16':
        return integers(this.exactAll(nums), count, new Int16Array(count), -32768, 32767);
      case 'UINT32':
        return integers(this.exactAll(nums), count, new Uint32Array(count), 0, 4294967295);
      case 'INT32':
        return integers(this.exactAll(nums), count, new Int32Array(count), -2147483648, 2147483647);
      case 'INT64':
        return int64(this.exactAll(nums), count, new BigInt64Array(count), Number.MIN_SAFE_INTEGER);
      case 'UINT64':
        return int64(this.exactAll(nums), count, new BigUint64Array(count), 0);
      default:
        return null; // BYTES, or not a datatype: validation says what is wrong
    }
  }

  /**
   * Float32Array.from of the exact doubles. An approximate double (16–19 digits, off by at most
   * a few units in the last place) rounds to the float32 of the exact one when every double
   * within 2^-49 of it (relative) rounds the same; only the rest need Number().
   */
  private float32(nums: Numbers): Float32Array {
    const { count, values, approx, slow } = nums;
    const out = new Float32Array(count);
    out.set(count === values.length ? values : values.subarray(0, count));
    for (let k = 0; k < approx.length; k += 3) {
      const i = approx[k]!;
      const v = values[i]!;
      if (Math.fround(v * (1 - MARGIN)) !== Math.fround(v * (1 + MARGIN))) out[i] = this.exact(nums, approx[k + 1]!, approx[k + 2]!);
    }
    for (let k = 0; k < slow.length; k += 3) out[slow[k]!] = this.exact(nums, slow[k + 1]!, slow[k + 2]!);
    return out;
  }
}

const EXACT = 0, APPROX = 1, SLOW = 2;
/** What scanNumber read: the value (exact, or approximate: see Numbers), and which. */
let numberValue = 0;
let numberClass = EXACT;

/**
 * The JSON number at p (JSON's grammar, strictly): its end, or -1. The value goes to
 * numberValue: exact when it has at most 15 significant digits and a decimal exponent within
 * ±22 (one correctly rounded operation on exact operands, as in Clinger's fast path), within a
 * few units in the last place with 16–19 digits (APPROX), NaN beyond (SLOW).
 */
function scanNumber(b: Uint8Array, p: number): number {
  // No bounds checks: the caller made sure a "]" follows, and every loop stops at one.
  let c = b[p]!;
  let neg = false;
  if (c === MINUS) {
    neg = true;
    c = b[++p]!;
  }
  // The first 15 significant digits exactly in hi, the next 4 in lo.
  let hi = 0;
  let lo = 0;
  let loDigits = 0;
  let sig = 0;
  let fracDigits = 0;
  let d = c - ZERO;
  if (d === 0) {
    d = b[++p]! - ZERO;
    if (d >>> 0 <= 9) return -1; // leading zero
  } else if (d >>> 0 <= 9) {
    do {
      hi = hi * 10 + d;
      sig++;
      d = b[++p]! - ZERO;
    } while (d >>> 0 <= 9 && sig < 15);
    while (d >>> 0 <= 9) {
      if (sig < 19) {
        lo = lo * 10 + d;
        loDigits++;
      }
      sig++;
      d = b[++p]! - ZERO;
    }
  } else return -1;
  if (d === DOT - ZERO) {
    d = b[++p]! - ZERO;
    if (d >>> 0 > 9) return -1;
    if (sig === 0) {
      while (d === 0) {
        fracDigits++; // leading zeros: only the scale
        d = b[++p]! - ZERO;
      }
    }
    while (d >>> 0 <= 9 && sig < 15) {
      hi = hi * 10 + d;
      sig++;
      fracDigits++;
      d = b[++p]! - ZERO;
    }
    while (d >>> 0 <= 9) {
      if (sig < 19) {
        lo = lo * 10 + d;
        loDigits++;
        fracDigits++;
      }
      sig++;
      d = b[++p]! - ZERO;
    }
  }
  let exp = 0;
  c = d + ZERO;
  if (c === 0x65 || c === 0x45) {
    c = b[++p]!;
    let expNeg = false;
    if (c === MINUS || c === PLUS) {
      expNeg = c === MINUS;
      c = b[++p]!;
    }
    d = c - ZERO;
    if (d >>> 0 > 9) return -1;
    do {
      if (exp < 100000) exp = exp * 10 + d;
      d = b[++p]! - ZERO;
    } while (d >>> 0 <= 9);
    if (expNeg) exp = -exp;
  }
  // Past 19 significant digits the value is not kept (the slow path reads the literal).
  const e10 = exp - fracDigits;
  let v = 0;
  numberClass = EXACT;
  if (sig > 0) {
    if (sig > 19 || e10 > 22 || e10 < -22) {
      numberClass = SLOW;
      v = Number.NaN;
    } else {
      const m = loDigits === 0 ? hi : hi * POW10[loDigits]! + lo;
      if (sig > 15) numberClass = APPROX;
      if (e10 === 0) v = m;
      else if (e10 > 0) v = m * POW10[e10]!;
      else v = m / POW10[-e10]!;
    }
  }
  numberValue = neg ? -v : v;
  numberHi = hi;
  numberLo = lo;
  numberLoDigits = loDigits;
  numberE10 = e10;
  return p;
}

// The decimal scanNumber read last: numberHi * 10^numberLoDigits + numberLo, times 10^numberE10.
let numberHi = 0;
let numberLo = 0;
let numberLoDigits = 0;
let numberE10 = 0;

const SPLIT = 134217729; // 2^27 + 1
let productLow = 0;
/** a * b exactly, as the returned double plus productLow (Dekker). */
function twoProduct(a: number, b: number): number {
  const p = a * b;
  const a1 = a * SPLIT;
  const ah = a1 - (a1 - a);
  const al = a - ah;
  const b1 = b * SPLIT;
  const bh = b1 - (b1 - b);
  const bl = b - bh;
  productLow = ah * bh - p + ah * bl + al * bh + al * bl;
  return p;
}

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
const HIGH = LITTLE_ENDIAN ? 1 : 0;

/**
 * The correctly rounded double of the literal at p (16–19 significant digits, decimal exponent
 * within ±22: scanNumber's APPROX), from the exact significand in double-double arithmetic; NaN
 * when the value is too near a rounding midpoint to be sure (then Number() decides).
 */
function exactDouble(b: Uint8Array, p: number): number {
  scanNumber(b, p);
  const v = numberValue;
  const hi = numberHi;
  const lo = numberLo;
  const e10 = numberE10;
  // The significand M = hi * 10^k + lo exactly, as mh + ml (integers: the low parts are small).
  const ph = twoProduct(hi, POW10[numberLoDigits]!);
  const pl = productLow;
  const s = ph + lo;
  const bb = s - ph;
  const t = ph - (s - bb) + (lo - bb);
  const low = t + pl;
  const mh = s + low;
  const ml = low - (mh - s);
  let y: number;
  let z: number;
  if (e10 >= 0) {
    const P = POW10[e10]!;
    const a = twoProduct(mh, P);
    const r = productLow + ml * P;
    y = a + r;
    z = r - (y - a);
  } else {
    const P = POW10[-e10]!;
    const y0 = mh / P;
    const u = twoProduct(y0, P);
    const corr = (mh - u - productLow + ml) / P;
    y = y0 + corr;
    z = corr - (y - y0);
  }
  // y is right when the rest z is clearly within half a unit in its last place.
  F64[0] = y;
  const exp = (U32[HIGH]! >>> 20) & 0x7ff;
  if (exp < 60 || exp === 0x7ff || (U32[1 - HIGH]! === 0 && (U32[HIGH]! & 0xfffff) === 0)) return Number.NaN; // tiny, infinite, or a power of two
  const halfUlp = 2 ** (exp - 1076);
  if (!(Math.abs(z) < halfUlp * (1 - 2 ** -20))) return Number.NaN;
  return v < 0 ? -y : y;
}

/**
 * Room for the elements of an array whose first `count` took p - start bytes, up to `end`, the
 * first "]" after them (a flat array of numbers or booleans holds none before its own end), at
 * least 2 bytes each: sized by the array, not by what follows it in the body.
 */
function estimate(start: number, p: number, end: number, count: number): number {
  const most = Math.ceil((end - start) / 2) + 1;
  return Math.min(most, Math.ceil(((end - start) / (p - start)) * count * 1.05) + 16);
}

function grow(values: Float64Array<ArrayBuffer>, room: number): Float64Array<ArrayBuffer> {
  const grown = new Float64Array(Math.max(values.length * 2, room));
  grown.set(values);
  return grown;
}

function integers<T extends Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array>(v: Float64Array, count: number, out: T, min: number, max: number): T | null {
  for (let i = 0; i < count; i++) {
    const x = v[i]!;
    if (!Number.isInteger(x) || x < min || x > max) return null;
    out[i] = x;
  }
  return out;
}

/** BigInt(v) of safe integers, written as two 32-bit halves (no BigInt per element) on little-endian machines. */
function int64<T extends BigInt64Array | BigUint64Array>(v: Float64Array, count: number, out: T, min: number): T | null {
  const words = LITTLE_ENDIAN ? new Uint32Array(out.buffer, out.byteOffset, count * 2) : null;
  for (let i = 0; i < count; i++) {
    const x = v[i]!;
    if (!Number.isInteger(x) || x < min || x > Number.MAX_SAFE_INTEGER) return null;
    if (words) {
      const high = Math.floor(x / 4294967296);
      words[2 * i] = x - high * 4294967296;
      words[2 * i + 1] = high >>> 0;
    } else out[i] = BigInt(x);
  }
  return out;
}

// Warm-up: every path of the scanner runs once on a small body before any request. Without it
// the first big array compiles (on-stack replacement) before its loop's exit ever ran, and V8
// reuses that code, deoptimizing at the exit on every later request (~2x slower).
for (const datatype of ['FP32', 'FP64', 'FP16', 'INT32', 'UINT8', 'INT64', 'BOOL', 'BYTES']) {
  const data = datatype === 'BOOL' ? '[true, false]' : '[1, -0.5, 1e-3, 0.10000000149011612, 1.2345678901234567e-7, 1e300, 123456789012345678901]';
  parseJsonInferBody(Buffer.from(`{"id":"w","inputs":[{"name":"x","datatype":"${datatype}","shape":[2],"data":${data},"parameters":{"a":[{"b":"\\""}]}}],"outputs":[{"name":"y"}]}`));
}
