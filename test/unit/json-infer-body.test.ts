// The JSON infer codec: parseJsonInferBody is JSON.parse (its value, or its SyntaxError) except
// that input data validation would accept comes back as the typed array toOrtTensor makes; and
// the reply writer's bytes are JSON.stringify's of today's toJsonTensor output.

import t from 'tap';
import fc from 'fast-check';
import { OutpostError, floatToHalf, toOrtTensor, validateInputs, type Datatype, type ModelSignature, type RequestTensor } from '@outpost/shared';
import { parseJsonInferBody } from '../../packages/agent/dist/serve/json-infer-body.js';
import { jsonInferReply, jsonInferReplyChunks } from '../../packages/agent/dist/serve/json-reply.js';
import { toJsonTensor, type OutputTensor } from '../../packages/agent/dist/runtime/tensors.js';
import type { Reply } from '../../packages/agent/dist/serve/router.js';

const RUNS = { numRuns: 400 };
const NUMERIC: Datatype[] = ['UINT8', 'INT8', 'UINT16', 'INT16', 'UINT32', 'INT32', 'INT64', 'UINT64', 'FP16', 'FP32', 'FP64'];
const ALL: Datatype[] = ['BOOL', ...NUMERIC, 'BYTES'];
const RANGE: Partial<Record<Datatype, [number, number]>> = {
  UINT8: [0, 255],
  INT8: [-128, 127],
  UINT16: [0, 65535],
  INT16: [-32768, 32767],
  UINT32: [0, 4294967295],
  INT32: [-2147483648, 2147483647],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

// ---- the reference: what validation accepts and what toOrtTensor makes of it ----

function accepted(datatype: unknown, data: unknown[]): boolean {
  if (typeof datatype !== 'string' || !ALL.includes(datatype as Datatype) || datatype === 'BYTES') return false;
  if (datatype === 'BOOL') return data.every((v) => typeof v === 'boolean');
  const range = RANGE[datatype as Datatype];
  return data.every((v) => typeof v === 'number' && (!range || (Number.isInteger(v) && v >= range[0] && v <= range[1])));
}

function converted(datatype: Datatype, data: unknown[]): unknown {
  return toOrtTensor({ name: 'x', datatype, shape: [data.length], data } as RequestTensor).data;
}

function sameValue(a: unknown, b: unknown, path = '$'): string | null {
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return `${path}: ${String(a?.constructor?.name)} vs ${String(b?.constructor?.name)}`;
    const x = a as unknown as ArrayLike<unknown>;
    const y = b as unknown as ArrayLike<unknown>;
    if (x.length !== y.length) return `${path}: length ${x.length} vs ${y.length}`;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return `${path}[${i}]: ${String(x[i])} vs ${String(y[i])}`;
    return null;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return `${path}: array mismatch`;
    for (let i = 0; i < a.length; i++) {
      const d = sameValue(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.join('\0') !== kb.join('\0')) return `${path}: keys ${ka.join(',')} vs ${kb.join(',')}`;
    for (const k of ka) {
      const d = sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return Object.is(a, b) ? null : `${path}: ${String(a)} vs ${String(b)}`;
}

/**
 * The parser's answer against JSON.parse's: equal, except that an input's data may be (and
 * under `mustConvert`, must be) the reference conversion when validation would accept it.
 */
function check(body: Buffer, mustConvert = false): string | null {
  let plain: unknown;
  let plainError: Error | null = null;
  try {
    plain = JSON.parse(body.toString('utf8'));
  } catch (err) {
    plainError = err as Error;
  }
  let mine: unknown;
  try {
    mine = parseJsonInferBody(body);
  } catch (err) {
    if (!plainError) return `threw ${String(err)}, JSON.parse did not`;
    if (!(err instanceof SyntaxError) || (err as Error).message !== plainError.message) return `threw ${String(err)}, JSON.parse threw ${String(plainError)}`;
    return null;
  }
  if (plainError) return `returned, JSON.parse threw ${plainError.message}`;
  const inputs = (plain as { inputs?: unknown } | null)?.inputs;
  const mineInputs = (mine as { inputs?: unknown } | null)?.inputs;
  if (Array.isArray(inputs) && Array.isArray(mineInputs) && typeof plain === 'object' && !Array.isArray(plain)) {
    for (let i = 0; i < inputs.length; i++) {
      const p = inputs[i] as { datatype?: unknown; data?: unknown } | null;
      const m = mineInputs[i] as { data?: unknown } | null;
      if (!p || typeof p !== 'object' || !m || typeof m !== 'object') continue;
      if (ArrayBuffer.isView(m.data)) {
        if (!Array.isArray(p.data) || !accepted(p.datatype, p.data)) return `inputs[${i}] converted though validation refuses it`;
        const d = sameValue(m.data, converted(p.datatype as Datatype, p.data), `$.inputs[${i}].data`);
        if (d) return d;
        m.data = p.data; // for the comparison of the rest
      } else if (mustConvert && Array.isArray(p.data) && p.data.length > 0 && accepted(p.datatype, p.data)) return `inputs[${i}] (${String(p.datatype)}) not converted`;
    }
  }
  return sameValue(mine, plain);
}

// ---- generators ----

/** A JSON number literal of any shape the grammar allows. */
const digits = (min: number, max: number) => fc.array(fc.constantFrom(...'0123456789'), { minLength: min, maxLength: max }).map((d) => d.join(''));
const literal = fc.oneof(
  fc.tuple(fc.boolean(), fc.oneof(fc.constant('0'), fc.tuple(fc.constantFrom(...'123456789'), digits(0, 24)).map(([a, b]) => a + b)), fc.option(digits(1, 24)), fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 4))))
    .map(([neg, int, frac, exp]) => `${neg ? '-' : ''}${int}${frac !== null ? `.${frac}` : ''}${exp ? exp.join('') : ''}`),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => JSON.stringify(v)),
  fc.float({ noNaN: true, noDefaultInfinity: true }).map((v) => pythonRepr(v)),
  fc.integer({ min: -70000, max: 70000 }).map(String),
  fc.constantFrom('0', '-0', '-0.0', '1e400', '-1e400', '1e-400', '4294967295', '4294967296', '9007199254740991', '9007199254740993', '-9007199254740992', '0.1', '1.5', '255.0', '2.5e1', '1E2', '0.000001e6'),
);
const ws = fc.constantFrom('', '', '', ' ', '\n', '\t', '\r\n  ');

/** Python's json.dumps of a float (repr): exponent from 1e16 and below 1e-4, two exponent digits at least. */
function pythonRepr(v: number): string {
  if (Object.is(v, -0)) return '-0.0';
  const a = Math.abs(v);
  if (v !== 0 && (a >= 1e16 || a < 1e-4)) {
    const [m, e] = v.toExponential().split('e') as [string, string];
    const exp = Number(e);
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const s = String(v);
  return Number.isInteger(v) ? `${s}.0` : s;
}

/** Data for a datatype: mostly what validation takes, sometimes not. */
function dataFor(datatype: Datatype): fc.Arbitrary<string[]> {
  const range = RANGE[datatype];
  const good: fc.Arbitrary<string> =
    datatype === 'BOOL'
      ? fc.constantFrom('true', 'false')
      : datatype === 'BYTES'
        ? fc.string({ maxLength: 5 }).map((s) => JSON.stringify(s))
        : range
          ? fc.oneof(fc.integer({ min: Math.max(range[0], -1e15), max: Math.min(range[1], 1e15) }).map(String), fc.constantFrom(String(range[0]), String(range[1]), `${range[1]}.0`, `${range[0]}e0`))
          : literal;
  const odd = fc.oneof(literal, fc.constantFrom('true', 'null', '"1"', '[1]', '{}', '[]', '1.5', String((range?.[1] ?? 0) + 1), String((range?.[0] ?? 0) - 1)));
  return fc.array(fc.oneof({ weight: 30, arbitrary: good }, { weight: 1, arbitrary: odd }), { minLength: 0, maxLength: 40 });
}

const join = (items: string[], w: string[]) => items.map((x, i) => `${w[i % w.length]}${x}${w[(i + 1) % w.length]}`).join(',');

/** An input object's members, in random order, with the odd extra. */
const inputObject = fc
  .tuple(
    fc.constantFrom(...ALL),
    fc.array(fc.nat(4), { maxLength: 4 }),
    fc.boolean(),
    fc.array(ws, { minLength: 1, maxLength: 4 }),
    fc.integer({ min: 0, max: 100 }),
  )
  .chain(([datatype, shape, declared, w, oddity]) =>
    dataFor(datatype).chain((data) =>
      fc.shuffledSubarray(['name', 'shape', 'datatype', 'data', 'parameters'], { minLength: 5, maxLength: 5 }).map((order) => {
        const members: Record<string, string> = {
          name: '"x"',
          shape: JSON.stringify(declared ? shape : [data.length]),
          datatype: oddity === 1 ? '32' : oddity === 2 ? '"FP\\u0033\\u0032"' : JSON.stringify(datatype),
          data: `[${join(data, w)}]`,
          parameters: oddity === 3 ? '{"data":[1,2],"inputs":[{"data":[3]}]}' : '{"x":"[1,2]","y":"\\"]"}',
        };
        const parts = order.map((k) => `${JSON.stringify(k)}${w[0]}:${w[1 % w.length]}${members[k]}`);
        if (oddity === 4) parts.push('"data":[9]');
        if (oddity === 5) parts.push('"d\\u0061ta":"no"');
        if (oddity === 6) parts.push(`"datatype":"INT8"`);
        if (oddity === 7) parts.unshift('"__proto__":{"data":[1]}');
        return `{${join(parts, w)}}`;
      }),
    ),
  );

const document = fc
  .tuple(fc.array(inputObject, { minLength: 0, maxLength: 3 }), fc.array(ws, { minLength: 1, maxLength: 3 }), fc.integer({ min: 0, max: 30 }), fc.shuffledSubarray(['id', 'inputs', 'outputs', 'parameters'], { minLength: 4, maxLength: 4 }))
  .map(([inputs, w, oddity, order]) => {
    const members: Record<string, string> = {
      id: '"req-1"',
      inputs: `[${join(oddity === 1 ? [...inputs, '7', 'null', '[1,2]'] : inputs, w)}]`,
      outputs: '[{"name":"y","parameters":{"binary_data":false}}]',
      parameters: '{"inputs":[{"data":[1]}],"s":"\\\\"}',
    };
    const parts = order.map((k) => `"${k}":${w[0]}${members[k]}`);
    if (oddity === 2) parts.push('"inputs":[]');
    if (oddity === 3) parts.push('"\\u0069nputs":5');
    if (oddity === 4) return `[${parts.join(',')}]`;
    return `${w[0]}{${join(parts, w)}}${w[w.length - 1]}`;
  });

// ---- the parser ----

t.test('the parser gives JSON.parse with data converted as validation would', async () => {
  fc.assert(
    fc.property(document, (doc) => {
      const problem = check(Buffer.from(doc, 'utf8'));
      if (problem) throw new Error(`${problem}\n${doc}`);
    }),
    RUNS,
  );
});

t.test('the common shape converts every array validation accepts', async () => {
  const common = fc.tuple(fc.constantFrom(...ALL), fc.constantFrom(', ', ','), fc.integer({ min: 1, max: 60 })).chain(([datatype, sep, n]) =>
    dataFor(datatype).map((data) => {
      const body = JSON.stringify({ inputs: [{ name: 'x', shape: [data.length], datatype, data: [] }] }).replace('"data":[]', `"data":[${data.join(sep)}]`);
      return { body, datatype, n };
    }),
  );
  fc.assert(
    fc.property(common, ({ body }) => {
      const problem = check(Buffer.from(body), true);
      if (problem) throw new Error(`${problem}\n${body}`);
    }),
    RUNS,
  );
});

t.test('numbers parse to exactly what JSON.parse gives, for every datatype', async () => {
  fc.assert(
    fc.property(fc.array(literal, { minLength: 1, maxLength: 30 }), fc.constantFrom(...NUMERIC), (lits, datatype) => {
      const body = `{"inputs":[{"name":"x","datatype":"${datatype}","shape":[${lits.length}],"data":[${lits.join(',')}]}]}`;
      const problem = check(Buffer.from(body));
      if (problem) throw new Error(`${problem}\n${body}`);
      const after = `{"inputs":[{"name":"x","shape":[${lits.length}],"data":[${lits.join(',')}],"datatype":"${datatype}"}]}`;
      const problem2 = check(Buffer.from(after));
      if (problem2) throw new Error(`${problem2}\n${after}`);
    }),
    { numRuns: 1500 },
  );
  // float32 rounding boundaries: decimal literals near the midpoint of two floats
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0x7f7ffffe }), fc.integer({ min: -3, max: 3 }), (bits, nudge) => {
      u32[0] = bits;
      const a = f32[0]!;
      u32[0] = bits + 1;
      const mid = (a + f32[0]!) / 2;
      const lits = [mid, mid + nudge * Number.EPSILON * mid, a].map((v) => String(v));
      const body = `{"inputs":[{"name":"x","datatype":"FP32","shape":[3],"data":[${lits.join(',')}]}]}`;
      const problem = check(Buffer.from(body), true);
      if (problem) throw new Error(`${problem}\n${body}`);
    }),
    { numRuns: 3000 },
  );
});

t.test('invalid JSON fails exactly as JSON.parse fails', async (t) => {
  const mutated = fc.tuple(document, fc.nat(), fc.constantFrom('delete', 'insert', 'truncate', 'replace'), fc.constantFrom(...'{}[],:"\\ 0-.eE+tx\u00e9\u0001'))
    .map(([doc, at, how, ch]) => {
      const i = doc.length === 0 ? 0 : at % doc.length;
      if (how === 'delete') return doc.slice(0, i) + doc.slice(i + 1);
      if (how === 'insert') return doc.slice(0, i) + ch + doc.slice(i);
      if (how === 'truncate') return doc.slice(0, i);
      return doc.slice(0, i) + ch + doc.slice(i + 1);
    });
  fc.assert(
    fc.property(mutated, (doc) => {
      const problem = check(Buffer.from(doc, 'utf8'));
      if (problem) throw new Error(`${problem}\n${doc}`);
    }),
    { numRuns: 1500 },
  );
  for (const doc of ['', ' ', '{', '{"inputs":[{"datatype":"FP32","data":[1,2,]}]}', '{"inputs":[{"datatype":"FP32","data":[01]}]}', '{"inputs":[{"datatype":"FP32","data":[1.]}]}', '{"inputs":[{"datatype":"FP32","data":[.5]}]}', '{"inputs":[{"datatype":"FP32","data":[1e]}]}', '{"inputs":[{"datatype":"FP32","data":[+1]}]}', '{"inputs":[{"datatype":"FP32","data":[1]}]} x', '\ufeff{"inputs":[]}', '{"inputs":[{"datatype":"BOOL","data":[tru]}]}', '{"inputs":[{"datatype":"BOOL","data":[truex]}]}', '{"inputs":[{"datatype":"FP32","data":[1 2]}]}', '{"inputs":[{"datatype":"FP32","data":[1]}],}', '{"inputs":[{"datatype":"FP32","data":[1],"x":"\u0001"}]}', '{"inputs":[{"datatype":"FP32","data":[-]}]}', '{"inputs":[{"datatype":"FP32","data":[NaN]}]}', '{"inputs":[{"datatype":"FP32","data":[1]}]}\u0000']) {
    t.equal(check(Buffer.from(doc, 'utf8')), null, JSON.stringify(doc));
  }
  // invalid UTF-8 decodes to U+FFFD, as body.toString does
  t.equal(check(Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xc3]), Buffer.from('","inputs":[{"datatype":"FP32","data":[1,2]}]}')])), null);
  t.equal(check(Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xe2, 0x82]), Buffer.from('","inputs":[{"datatype":"FP32","data":[1,2]}]}')])), null);
});

t.test('validation takes the typed arrays exactly as it takes the arrays', async (t) => {
  const sig: ModelSignature = {
    inputs: ALL.filter((d) => d !== 'BYTES').map((datatype, i) => ({ name: `t${i}`, datatype, shape: [-1, 2] })),
    outputs: [],
  };
  const outcome = (inputs: unknown) => {
    try {
      return validateInputs(sig, inputs).map((r) => toOrtTensor(r));
    } catch (err) {
      if (!(err instanceof OutpostError)) throw err;
      return `${err.code}: ${err.message}`;
    }
  };
  const request = fc.array(fc.tuple(fc.nat(sig.inputs.length - 1), fc.array(fc.nat(3), { minLength: 1, maxLength: 3 })), { minLength: 1, maxLength: 12 }).chain((picks) =>
    fc.tuple(...picks.map(([i, shape]) => dataFor(sig.inputs[i]!.datatype).map((data) => ({ name: `t${i}`, datatype: sig.inputs[i]!.datatype, shape, data })))),
  );
  fc.assert(
    fc.property(request, (tensors) => {
      const body = JSON.stringify({ inputs: tensors.map((x) => ({ ...x, data: [] })) }).replace(/"data":\[\]/g, () => `"data":[${tensors.shift()!.data.join(',')}]`);
      const a = outcome((JSON.parse(body) as { inputs: unknown }).inputs);
      const b = outcome((parseJsonInferBody(Buffer.from(body)) as { inputs: unknown }).inputs);
      const problem = sameValue(b, a);
      if (problem) throw new Error(`${problem}\n${body}\n${JSON.stringify(a)}`);
    }),
    RUNS,
  );
  // typed arrays of another type than the datatype's are refused as before
  const one: ModelSignature = { inputs: [{ name: 'x', datatype: 'FP32', shape: [2] }], outputs: [] };
  t.throws(() => validateInputs(one, [{ name: 'x', datatype: 'FP32', shape: [2], data: new Float64Array(2) }]), /"data" must be a flat, row-major array/);
  t.throws(() => validateInputs(one, [{ name: 'x', datatype: 'FP32', shape: [2], data: new Float32Array(3) }]), /needs 2 elements, got 3/);
  const bytes: ModelSignature = { inputs: [{ name: 'x', datatype: 'BYTES', shape: [2] }], outputs: [] };
  t.throws(() => validateInputs(bytes, [{ name: 'x', datatype: 'BYTES', shape: [2], data: new Uint8Array(2) }]), /"data" must be a flat, row-major array/);
  t.equal(validateInputs(one, [{ name: 'x', datatype: 'FP32', shape: [2], data: new Float32Array([1, 2]) }])[0]!.data.constructor, Float32Array);
});

t.test('hostile bodies', async (t) => {
  // 60 MB of data: one array of 15 million floats
  const n = 15_000_000;
  const big = Buffer.alloc(200 + 4 * n);
  let at = big.write(`{"inputs":[{"name":"x","datatype":"FP32","shape":[${n}],"data":[`);
  big.fill('0.5,', at, at + 4 * n, 'latin1');
  at += 4 * n;
  at += big.write(']}]}', at - 1) - 1;
  const body = big.subarray(0, at);
  t.ok(body.length > 60_000_000);
  const started = performance.now();
  const parsed = parseJsonInferBody(body) as { inputs: Array<{ data: Float32Array }> };
  const ms = performance.now() - started;
  t.equal(parsed.inputs[0]!.data.length, n);
  t.ok(parsed.inputs[0]!.data instanceof Float32Array && parsed.inputs[0]!.data[n - 1] === 0.5 && parsed.inputs[0]!.data[0] === 0.5);
  t.ok(ms < 5000, `60 MB in ${ms.toFixed(0)} ms`);

  // deep nesting, inside data and elsewhere: whatever JSON.parse does (value or error)
  for (const depth of [1000, 100_000]) {
    const nested = '['.repeat(depth) + '1' + ']'.repeat(depth);
    for (const doc of [`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":${nested}}]}`, `{"parameters":${nested},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"p":${'['.repeat(depth)}}`]) {
      let expected: string;
      try {
        JSON.parse(doc);
        expected = 'ok';
      } catch (err) {
        expected = `${(err as Error).name}: ${(err as Error).message}`;
      }
      let got: string;
      try {
        const r = parseJsonInferBody(Buffer.from(doc)) as { inputs: Array<{ data: unknown }> };
        got = 'ok';
        // (check() compares recursively: not at this depth)
        const data = r.inputs[0]!.data;
        if (depth < 10_000) t.equal(check(Buffer.from(doc)), null);
        else t.ok(doc.includes('"data":[1]') ? data instanceof Float32Array && data[0] === 1 : Array.isArray(data));
      } catch (err) {
        got = `${(err as Error).name}: ${(err as Error).message}`;
      }
      t.equal(got, expected, `depth ${depth}`);
    }
  }

  // numbers of 10,000 digits
  const long = ['1'.repeat(10_000), `0.${'0'.repeat(9_999)}1`, `${'9'.repeat(10_000)}e-9990`, `-0.${'3'.repeat(10_000)}`, `1${'0'.repeat(9_999)}e-9999`, `1e${'0'.repeat(10_000)}1`];
  for (const datatype of ['FP32', 'FP64', 'FP16', 'INT32', 'INT64']) {
    for (const lit of long) {
      const doc = `{"inputs":[{"name":"x","datatype":"${datatype}","shape":[2],"data":[${lit},2]}]}`;
      t.equal(check(Buffer.from(doc)), null, `${datatype} ${lit.slice(0, 12)}…`);
    }
  }
});

// ---- the reply writer ----

const text = (chunks: Array<string | Uint8Array>) => Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c))).toString('utf8');

const head = fc.oneof(
  fc.record({ model_name: fc.string(), model_version: fc.string() }),
  fc.record({ model_name: fc.constant('m'), model_version: fc.constant('1'), id: fc.string() }),
  fc.constant({}),
);

function tensorOf(datatype: Datatype): fc.Arbitrary<OutputTensor> {
  const n = { maxLength: 50 };
  const data: fc.Arbitrary<OutputTensor['data']> = (() => {
    switch (datatype) {
      case 'FP32':
        return fc.array(fc.float(), n).map((v) => Float32Array.from(v));
      case 'FP64':
        return fc.array(fc.double(), n).map((v) => Float64Array.from(v));
      case 'FP16':
        return fc.array(fc.integer({ min: 0, max: 65535 }), n).map((v) => Uint16Array.from(v));
      case 'INT64':
        return fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), n).map((v) => BigInt64Array.from(v));
      case 'UINT64':
        return fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), n).map((v) => BigUint64Array.from(v));
      case 'BYTES':
        return fc.array(fc.string({ unit: 'binary' }), n);
      case 'BOOL':
        return fc.array(fc.integer({ min: 0, max: 255 }), n).map((v) => Uint8Array.from(v));
      default: {
        const [min, max] = RANGE[datatype]!;
        const Ctor = { UINT8: Uint8Array, INT8: Int8Array, UINT16: Uint16Array, INT16: Int16Array, UINT32: Uint32Array, INT32: Int32Array }[datatype as 'UINT8']!;
        return fc.array(fc.integer({ min, max }), n).map((v) => Ctor.from(v));
      }
    }
  })();
  return fc.tuple(data, fc.string(), fc.array(fc.nat(5), { maxLength: 3 })).map(([d, name, shape]) => ({ name, datatype, shape, data: d }));
}

t.test('the reply writer gives JSON.stringify of toJsonTensor, byte for byte', async (t) => {
  fc.assert(
    fc.property(head, fc.array(fc.constantFrom(...ALL).chain(tensorOf), { maxLength: 4 }), (h, outputs) => {
      const expected = JSON.stringify({ ...h, outputs: outputs.map(toJsonTensor) });
      const got = text(jsonInferReplyChunks(h, outputs));
      if (got !== expected) throw new Error(`${got}\n!==\n${expected}`);
    }),
    { numRuns: 1000 },
  );
  // every half, NaN and infinities included
  const halves = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const all: OutputTensor = { name: 'h', datatype: 'FP16', shape: [65536], data: halves };
  t.equal(text(jsonInferReplyChunks({ model_name: 'm' }, [all])), JSON.stringify({ model_name: 'm', outputs: [toJsonTensor(all)] }));
  const specials: OutputTensor = { name: 'f', datatype: 'FP32', shape: [5], data: Float32Array.from([Number.NaN, Infinity, -Infinity, -0, 3.4e38]) };
  t.equal(text(jsonInferReplyChunks({}, [specials])), '{"outputs":[{"name":"f","datatype":"FP32","shape":[5],"data":[null,null,null,0,3.3999999521443642e+38]}]}');
  // a head with its own "outputs" (not a reply server.ts makes) still gives JSON.stringify's bytes
  t.equal(text(jsonInferReplyChunks({ outputs: 1, model_name: 'm' }, [specials])), JSON.stringify({ outputs: [toJsonTensor(specials)], model_name: 'm' }));
  const reply = jsonInferReply({ model_name: 'm', model_version: '1' }, []);
  const asRouterReply: Reply = reply; // what server.ts returns
  t.ok(asRouterReply);
  t.same(reply.headers, { 'content-type': 'application/json; charset=utf-8' });
  t.equal(text(reply.chunks), '{"model_name":"m","model_version":"1","outputs":[]}');
  // a big FP16 float to the table and FP32 floats of every kind
  fc.assert(
    fc.property(fc.array(fc.float(), { minLength: 1, maxLength: 2000 }), (v) => {
      const o: OutputTensor = { name: 'y', datatype: 'FP32', shape: [v.length], data: Float32Array.from(v) };
      return text(jsonInferReplyChunks({ model_name: 'm' }, [o])) === JSON.stringify({ model_name: 'm', outputs: [toJsonTensor(o)] });
    }),
    { numRuns: 100 },
  );
});

t.test('floatToHalf of the parsed float32 is floatToHalf of the double', async () => {
  fc.assert(
    fc.property(fc.double({ noNaN: true }), (v) => floatToHalf(Math.fround(v)) === floatToHalf(v)),
    { numRuns: 2000 },
  );
});
