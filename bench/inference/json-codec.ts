// The JSON tensor codec against today's path, in one process, side by side: ms per request body
// parsed (parse + validateInputs + toOrtTensor) and per reply body written, medians over rounds.
// The request is PaddleOCR's classifier input (FP32 [1,3,48,192] of uniform noise) as a Python
// client writes it (json.dumps of a list of floats: shortest repr, ", " between them); the
// binary extension's parse of the same tensor is the reference.
//
//   npx tsx bench/inference/json-codec.ts [--rounds 200]
//
// Rows: old = JSON.parse + validate + toOrtTensor / JSON.stringify({ ...head, outputs:
// outputs.map(toJsonTensor) }); new = parseJsonInferBody + validate + toOrtTensor /
// jsonInferReplyChunks; binary = parseBinaryBody + validate + toOrtTensor / encodeBinaryBody.
// Each reply row includes Buffer.byteLength of its chunks, as the router computes it.

import { parseArgs } from 'node:util';
import { encodeBinaryBody, parseBinaryBody, toOrtTensor, toTensorBytes, validateInputs, type Datatype, type ModelSignature, type NumericArray } from '@outpost/shared';
import { parseJsonInferBody } from '../../packages/agent/dist/serve/json-infer-body.js';
import { jsonInferReplyChunks } from '../../packages/agent/dist/serve/json-reply.js';
import { toJsonTensor, type OutputTensor } from '../../packages/agent/dist/runtime/tensors.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '200' } } });
const ROUNDS = Number(args.rounds);

/** Python's repr of a float (what json.dumps writes): exponent form from 1e16 and below 1e-4. */
function pythonRepr(v: number): string {
  const a = Math.abs(v);
  if (v !== 0 && (a >= 1e16 || a < 1e-4)) {
    const [m, e] = v.toExponential().split('e') as [string, string];
    const exp = Number(e);
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return Number.isInteger(v) ? `${v}.0` : String(v);
}

let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};

interface Case {
  label: string;
  datatype: Datatype;
  shape: number[];
  data: NumericArray;
  literal: (v: number | bigint) => string;
}

const classifier = Float32Array.from({ length: 3 * 48 * 192 }, () => random() * 2 - 1);
const cases: Case[] = [
  { label: 'FP32 [1,3,48,192] (classifier)', datatype: 'FP32', shape: [1, 3, 48, 192], data: classifier, literal: (v) => pythonRepr(Number(v)) },
  { label: 'FP32 [1,3,48,192] 4 decimals', datatype: 'FP32', shape: [1, 3, 48, 192], data: classifier, literal: (v) => Number(v).toFixed(4) },
  { label: 'FP64 [1,3,48,192]', datatype: 'FP64', shape: [1, 3, 48, 192], data: Float64Array.from(classifier, () => random()), literal: (v) => pythonRepr(Number(v)) },
  { label: 'UINT8 [1,3,224,224] (image)', datatype: 'UINT8', shape: [1, 3, 224, 224], data: Uint8Array.from({ length: 3 * 224 * 224 }, () => Math.floor(random() * 256)), literal: String },
  { label: 'INT64 [1,512] (token ids)', datatype: 'INT64', shape: [1, 512], data: BigInt64Array.from({ length: 512 }, () => BigInt(Math.floor(random() * 30000))), literal: String },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Medians (ms) of fns run interleaved, round after round, after a warm-up. */
function measure(fns: Record<string, () => unknown>): Record<string, number> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (let r = -20; r < ROUNDS; r++) {
    for (const [k, f] of Object.entries(fns)) {
      const t0 = performance.now();
      f();
      const dt = performance.now() - t0;
      if (r >= 0) times[k]!.push(dt);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

const byteLength = (chunks: Array<string | Uint8Array>) => chunks.reduce((n, c) => n + (typeof c === 'string' ? Buffer.byteLength(c) : c.byteLength), 0);
const fmt = (ms: number) => ms.toFixed(3).padStart(8);

console.log(`json-codec: medians over ${ROUNDS} rounds, ms (node ${process.version})\n`);
console.log(`${'tensor'.padEnd(32)} ${'body KB'.padStart(8)} | ${'parse old'.padStart(9)} ${'new'.padStart(8)} ${'binary'.padStart(8)} | ${'reply old'.padStart(9)} ${'new'.padStart(8)} ${'binary'.padStart(8)}`);
for (const c of cases) {
  const signature: ModelSignature = { inputs: [{ name: 'x', datatype: c.datatype, shape: [-1, ...c.shape.slice(1)] }], outputs: [] };
  const values = Array.from(c.data as ArrayLike<number | bigint>, c.literal);
  const body = Buffer.from(`{"inputs": [{"name": "x", "shape": [${c.shape.join(', ')}], "datatype": "${c.datatype}", "data": [${values.join(', ')}]}]}`);
  const blob = toTensorBytes(c.data);
  const { chunks: binChunks, headerLength } = encodeBinaryBody({ inputs: [{ name: 'x', shape: c.shape, datatype: c.datatype, parameters: { binary_data_size: blob.length } }] }, [blob]);
  const binBody = Buffer.concat(binChunks);
  const feed = (inputs: unknown) => toOrtTensor(validateInputs(signature, inputs)[0]!);

  // the same answer both ways
  const a = feed((JSON.parse(body.toString('utf8')) as { inputs: unknown }).inputs).data;
  const b = feed((parseJsonInferBody(body) as { inputs: unknown }).inputs).data;
  if (a.length !== b.length || Array.from(a as ArrayLike<unknown>).some((v, i) => !Object.is(v, (b as ArrayLike<unknown>)[i]))) throw new Error(`${c.label}: the parsers disagree`);

  const parse = measure({
    old: () => feed((JSON.parse(body.toString('utf8')) as { inputs: unknown }).inputs),
    new: () => feed((parseJsonInferBody(body) as { inputs: unknown }).inputs),
    binary: () => feed(parseBinaryBody(binBody, headerLength, 'inputs').inputs),
  });

  const head = { model_name: 'cls', model_version: '1' };
  const outputs: OutputTensor[] = [{ name: 'y', datatype: c.datatype, shape: c.shape, data: c.data }];
  if (JSON.stringify({ ...head, outputs: outputs.map(toJsonTensor) }) !== Buffer.concat(jsonInferReplyChunks(head, outputs).map((c) => (typeof c === 'string' ? Buffer.from(c) : c))).toString()) throw new Error(`${c.label}: the replies differ`);
  const reply = measure({
    old: () => byteLength([JSON.stringify({ ...head, outputs: outputs.map(toJsonTensor) })]),
    new: () => byteLength(jsonInferReplyChunks(head, outputs)),
    binary: () => {
      const bytes = toTensorBytes(outputs[0]!.data);
      return byteLength(encodeBinaryBody({ ...head, outputs: [{ name: 'y', datatype: c.datatype, shape: c.shape, parameters: { binary_data_size: bytes.length } }] }, [bytes]).chunks);
    },
  });
  console.log(`${c.label.padEnd(32)} ${(body.length / 1024).toFixed(0).padStart(8)} | ${fmt(parse.old!).padStart(9)} ${fmt(parse.new!)} ${fmt(parse.binary!)} | ${fmt(reply.old!).padStart(9)} ${fmt(reply.new!)} ${fmt(reply.binary!)}`);
}

// The classifier's own reply: FP32 [1,2].
const small: OutputTensor[] = [{ name: 'softmax', datatype: 'FP32', shape: [1, 2], data: Float32Array.from([0.25, 0.75]) }];
const head = { model_name: 'cls', model_version: '1' };
const r = measure({ old: () => byteLength([JSON.stringify({ ...head, outputs: small.map(toJsonTensor) })]), new: () => byteLength(jsonInferReplyChunks(head, small)) });
console.log(`\nclassifier reply FP32 [1,2]: old ${r.old!.toFixed(4)} ms, new ${r.new!.toFixed(4)} ms`);
