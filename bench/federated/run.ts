// bench/federated: a federated job of R rounds on N simulated clients of an M MB model, against
// one real relay (packages/relay/dist, started by bench/dashboard/fleet.ts's startBenchFleet:
// loopback, a temp data dir, --insecure as the other fleet benches run it). The clients
// (bench/federated/clients.ts, a few forked processes) are enrolled through the HTTP API,
// attached for training (POST /v1/targets/{id}/attach), connect on the agent's own MQTT session
// saying they accept training, and follow their retained desired jobs: per round each downloads
// the global model, uploads an update (model.onnx, its float weights perturbed), prints
// num_examples as a metric line and reports its run succeeded; the relay checks each update and
// averages them (FedAvg) into the next global model.
//
// Prints per round and as medians over the rounds, on the relay's clock: the round's wall time
// from its startedAt (GET /v1/jobs/{id}) until it was aggregated (the fleet stream's `job.round`
// event; the record's own finishedAt is taken when the verdict is in, before the averaging, and
// is shown beside it); when the relay published the last client's jobs and when the clients got
// them; the time from the last client's `succeeded` report to the aggregation (the relay's
// checking and averaging at the end); the relay's CPU (/proc utime+stime, all its threads) over
// the round and over that close; the simulators' and every other process's CPU; the relay's RSS
// (sampled every 50 ms) and VmHWM; the bytes moved. Then, with the relay stopped, the same
// aggregation in a process of its own on the last round's very files (aggregate.ts): pure
// (readModelWeights + updateProblem + add on updates in memory, result) and as the relay does
// it (each file read to check, read again to add, the result hashed and written), and the
// relay's cost over each.
//
//   npx pnpm@10 run build
//   npx tsx bench/federated/run.ts [--clients 100] [--rounds 3] [--model-mb 5] [--workers 4]
//   npx tsx bench/federated/run.ts --relay-nodelay     # TCP_NODELAY on the relay's accepted sockets (a preload)
//   ... [--relay-log FILE] [--sim-log FILE] [--profile DIR] [--dump FILE.json] [--settle 35] [--reps 3]

import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packBundle, readModelWeights, type JobSummary, type RoundSummary } from '@outpost/shared';
import { WebSocket } from 'ws';
import { buildModel, seededRandom } from '../../test/fixtures/onnx-builder.js';
import { startBenchFleet, until, type BenchFleet } from '../dashboard/fleet.js';
import { cpuSeconds, memory } from '../proc-stats.js';
import type { SimDevice } from '../fleet/worker.js';
import type { ClientsMessage, ClientsStart, UpdateDone } from './clients.js';
import type { AggregateJob, AggregateResult } from './aggregate.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    'model-mb': { type: 'string', default: '5' },
    /** Simulator processes the clients are spread over. */
    workers: { type: 'string', default: '4' },
    heartbeat: { type: 'string', default: '10' },
    /** Each round's deadline (the job's roundDeadlineSeconds). */
    deadline: { type: 'string', default: '600' },
    /** Seconds after the relay's start before the job is submitted (its first artifact check runs at 30 s). */
    settle: { type: 'string', default: '35' },
    /** Repetitions of the in-process aggregation (medians are printed). */
    reps: { type: 'string', default: '3' },
    /** Appends the relay's log (level debug) to this file. */
    'relay-log': { type: 'string' },
    /** The simulated clients' logs (level info) to this file. */
    'sim-log': { type: 'string' },
    /** Writes the relay's V8 CPU profile into this folder. */
    profile: { type: 'string' },
    /** A diagnostic: TCP_NODELAY on the relay's accepted sockets (relay-preload.mjs), its code untouched. */
    'relay-nodelay': { type: 'boolean', default: false },
    /** Writes every figure's raw data (rounds, client timestamps, stream events, samples) to this JSON file. */
    dump: { type: 'string' },
  },
});
const N = Number(values.clients);
const ROUNDS = Number(values.rounds);
const MODEL_MB = Number(values['model-mb']);
const WORKERS = Math.max(1, Math.min(N, Number(values.workers)));
const HEARTBEAT_MS = Number(values.heartbeat) * 1000;
const DEADLINE_S = Number(values.deadline);
const REPS = Math.max(1, Number(values.reps));
const SETTLE_S = Number(values.settle);
for (const [k, v] of Object.entries({ clients: N, rounds: ROUNDS, 'model-mb': MODEL_MB, workers: WORKERS, deadline: DEADLINE_S })) if (!(v > 0)) throw new Error(`--${k} must be a number above 0`);

const CLIENTS = new URL('./clients.ts', import.meta.url).pathname;
const AGGREGATE = new URL('./aggregate.ts', import.meta.url).pathname;
const MODEL_NAME = 'fedbench';
const LABEL = 'fedbench=client';
const say = (s: string) => process.stdout.write(`${s}\n`);
const MB = 1e6;
const MiB = 1024 * 1024;

// Everything this run starts, stopped on any way out (an error, Ctrl-C, a normal end).
const dir = mkdtempSync(join(tmpdir(), 'outpost-federated-bench-'));
const children: ChildProcess[] = [];
let fleet: BenchFleet | undefined;
let cleaned = false;
/** Set once the measuring is over and the processes are stopped on purpose. */
let stopping = false;
const cleanup = () => {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  fleet?.stop();
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => process.exit(130));

const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const max = (xs: number[]) => xs.reduce((m, x) => Math.max(m, x), Number.NEGATIVE_INFINITY);
const s1 = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

interface Sample {
  t: number;
  /** The relay's CPU seconds, RSS and VmHWM (MiB). */
  cpu: number;
  rss: number;
  hwm: number;
  /** CPU seconds of the simulator processes, this driver, and every process on the machine. */
  sims: number;
  driver: number;
  machine: number;
}

/** CPU seconds every core has spent busy since boot (/proc/stat: all but idle and iowait). */
function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - f[3]! - f[4]!) / 100;
}
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** GET /v1/jobs/{id} of a federated job. */
type JobView = JobSummary & { rounds?: RoundSummary[] };

async function main(): Promise<void> {
  say(`bench/federated: ${N} clients in ${WORKERS} processes, ${ROUNDS} rounds of FedAvg, a ${MODEL_MB} MB model`);
  // The model: x [batch, 1280] · W [1280, K], W about MODEL_MB MB of FLOAT weights (raw_data).
  const cols = Math.max(1, Math.round((MODEL_MB * MiB) / 4 / 1280));
  const rnd = seededRandom(7);
  const W = new Float32Array(1280 * cols);
  for (let i = 0; i < W.length; i++) W[i] = rnd() - 0.5;
  const model = Buffer.from(
    buildModel({
      name: MODEL_NAME,
      inputs: [{ name: 'x', type: 'FP32', shape: ['batch', 1280] }],
      outputs: [{ name: 'y', type: 'FP32', shape: ['batch', cols] }],
      initializers: [{ name: 'W', type: 'FP32', dims: [1280, cols], values: W }],
      nodes: [{ op: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] }],
    }),
  );
  const floats = readModelWeights(model).initializers.reduce((n, i) => n + (i.dataType === 1 ? (i.values?.length ?? 0) / 4 : 0), 0);
  say(`model: ${(model.length / MB).toFixed(2)} MB, ${floats.toLocaleString('en-US')} FLOAT weights (W [1280, ${cols}])`);

  // The relay alone: startBenchFleet's own simulated devices (bench/fleet/worker.ts) do not
  // train, so it enrolls none here and these clients are enrolled below.
  // startBenchFleet spawns the relay before its first await: NODE_OPTIONS set around the call
  // reach the relay alone (a preload for --profile and --relay-nodelay, relay-preload.mjs).
  const env = { NODE_OPTIONS: process.env.NODE_OPTIONS, OUTPOST_BENCH_PROFILE_DIR: process.env.OUTPOST_BENCH_PROFILE_DIR, OUTPOST_BENCH_NODELAY: process.env.OUTPOST_BENCH_NODELAY };
  if (values.profile || values['relay-nodelay']) {
    process.env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import ${new URL('./relay-preload.mjs', import.meta.url).href}`.trim();
    if (values.profile) {
      mkdirSync(values.profile, { recursive: true });
      process.env.OUTPOST_BENCH_PROFILE_DIR = values.profile;
    }
    if (values['relay-nodelay']) process.env.OUTPOST_BENCH_NODELAY = '1';
  }
  const spawnedAt = Date.now();
  const starting = startBenchFleet({ devices: 0, workers: 0, heartbeatMs: 0, ...(values['relay-log'] ? { relayLog: values['relay-log'] } : {}), say: () => {} }, (started) => (fleet = started));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  fleet = await starting;
  const f = fleet;
  const api = async <T>(method: string, path: string, body?: unknown, raw?: Buffer, bearer = f.token): Promise<T> => {
    const res = await fetch(`${f.httpUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body !== undefined || raw ? { 'content-type': raw ? 'application/octet-stream' : 'application/json' } : {}) },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  // Enroll through the real API, 100 at a time, and attach each for training (what `outpost-relay targets attach ID --training` posts).
  let t = performance.now();
  const devices: SimDevice[] = [];
  const [lk, lv] = LABEL.split('=') as [string, string];
  for (let i = 0; i < N; i += 100) {
    devices.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, N - i) }, async () => {
          const { token: enrollToken } = await api<{ token: string }>('POST', '/v1/tokens/enroll', { labels: { [lk]: lv } });
          const { deviceId, secret, mqttUrl } = await api<SimDevice>('POST', '/v1/enroll', {}, undefined, enrollToken);
          await api('POST', `/v1/targets/${deviceId}/attach`);
          return { deviceId, secret, mqttUrl, relayUrl: f.httpUrl };
        }),
      )),
    );
  }
  say(`enrolled and attached ${N} devices through the HTTP API in ${s1(performance.now() - t)}`);

  // The clients, in WORKERS processes.
  const updates: UpdateDone[] = [];
  const errors: string[] = [];
  const connected = new Array<number>(WORKERS).fill(0);
  const simLog = values['sim-log'] ? openSync(values['sim-log'], 'a') : 'ignore';
  t = performance.now();
  for (let w = 0; w < WORKERS; w++) {
    const child = fork(CLIENTS, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...(values['sim-log'] ? { SIM_LOG_LEVEL: 'info' } : {}) }, stdio: ['ignore', simLog, simLog, 'ipc'] });
    children.push(child);
    child.on('message', (m: ClientsMessage) => {
      if (m.kind === 'status') connected[w] = m.connected;
      else if (m.kind === 'update') updates.push(m);
      else errors.push(`${m.deviceId} rank ${m.rank}: ${m.error}`);
    });
    child.once('exit', (code, signal) => {
      if (!cleaned && !stopping) errors.push(`simulator process ${w} exited (${code ?? signal})`);
    });
    child.send({ devices: devices.filter((_, i) => i % WORKERS === w), heartbeatMs: HEARTBEAT_MS, seed: w + 1 } satisfies ClientsStart);
  }
  const ids = new Set(devices.map((d) => d.deviceId));
  let ready = 0;
  await until('every client online and able to train', async () => {
    if (errors.length) throw new Error(errors.join('; '));
    const { targets } = await api<{ targets: Array<{ name: string; online: boolean; trains: boolean }> }>('GET', '/v1/targets');
    ready = targets.filter((x) => ids.has(x.name) && x.online && x.trains).length;
    return ready >= N ? true : undefined;
  }, 120_000, 250).catch((err: Error) => {
    throw new Error(`${err.message}: ${ready} of ${N} ready at the relay, ${connected.reduce((a, b) => a + b, 0)} connected`);
  });
  say(`all ${N} clients online at the relay, attached and accepting training, in ${s1(performance.now() - t)}`);

  // The initial model, a trivial bundle (the simulated clients do the work in-process), the job.
  await api('POST', `/v1/models/${MODEL_NAME}/versions`, undefined, model);
  const bundleDir = join(dir, 'bundle');
  mkdirSync(bundleDir);
  writeFileSync(join(bundleDir, 'train.sh'), '#!/bin/sh\n# bench/federated: the simulated clients train in-process (bench/federated/clients.ts)\necho "outpost:metric num_examples=1"\n', { mode: 0o755 });
  await packBundle(bundleDir, join(dir, 'bundle.tar.gz'));
  const bundle = await api<{ sha256: string }>('POST', '/v1/bundles', undefined, readFileSync(join(dir, 'bundle.tar.gz')));

  // The relay's CPU and memory, the simulators' CPU and the whole machine's, sampled through the job.
  const pid = f.relayPid;
  const simPids = children.map((c) => c.pid!);
  const samples: Sample[] = [];
  const take = () => {
    const m = memory(pid);
    const cpu = process.cpuUsage();
    samples.push({ t: Date.now(), cpu: cpuSeconds(pid), rss: m.rssMiB, hwm: m.peakMiB, sims: simPids.reduce((n, p) => n + cpuSeconds(p), 0), driver: (cpu.user + cpu.system) / 1e6, machine: machineBusySeconds() });
  };
  take();
  const idle = samples[0]!;
  say(`relay before the job: RSS ${idle.rss.toFixed(0)} MiB (VmHWM ${idle.hwm.toFixed(0)} MiB), CPU so far ${idle.cpu.toFixed(1)} s; load average ${loadAverage()}`);
  const sampler = setInterval(take, 50);

  // The fleet stream: the relay's own times (each event's ts) of each run's end and each round's aggregation.
  const events: Array<{ type: string; ts: number; jobId?: string; rank?: number; state?: string; round?: RoundSummary }> = [];
  const ws = new WebSocket(`${f.httpUrl.replace(/^http/, 'ws')}/v1/fleet/stream`, { headers: { authorization: `Bearer ${f.token}` } });
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { type: string; ts: string; jobId?: string; rank?: number; state?: string; round?: RoundSummary };
    if (m.type === 'job.run' || m.type === 'job.round') events.push({ ...m, ts: Date.parse(m.ts) });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });

  // The relay hashes every stored file 30 s after it starts (artifact-checks.ts, then every 6 h):
  // the job waits for that pass, which would otherwise hash the rounds' updates as they come.
  const settle = spawnedAt + SETTLE_S * 1000 - Date.now();
  if (settle > 0) {
    say(`waiting ${s1(settle)} for the relay's first artifact check (30 s after its start) to pass`);
    await new Promise((r) => setTimeout(r, settle));
  }
  const submitted = Date.now();
  const job0 = await api<JobView>('POST', '/v1/jobs', {
    bundleSha256: bundle.sha256,
    target: LABEL,
    command: 'sh train.sh',
    federated: { rounds: ROUNDS, minClients: N, initialModel: { name: MODEL_NAME }, roundDeadlineSeconds: DEADLINE_S },
  });
  say(`job ${job0.id} submitted: ${ROUNDS} rounds, minClients ${N}, deadline ${DEADLINE_S} s a round`);
  let job = job0;
  let told = '';
  await until('the job to end', async () => {
    if (errors.length) throw new Error(`simulated clients failed: ${errors.slice(0, 5).join('; ')}${errors.length > 5 ? ` (+${errors.length - 5})` : ''}`);
    job = await api<JobView>('GET', `/v1/jobs/${job0.id}`);
    const current = job.rounds?.at(-1);
    const line = current ? `round ${current.round} (attempt ${current.attempt}) ${current.state}` : (job.federated?.waiting ?? job.state);
    if (line !== told) {
      told = line;
      say(`  ${((Date.now() - submitted) / 1000).toFixed(1).padStart(6)} s  ${line}; updates reported so far ${updates.filter((u) => u.jobId === job0.id).length}`);
    }
    return ['succeeded', 'failed', 'canceled'].includes(job.state) ? true : undefined;
  }, ROUNDS * (DEADLINE_S + 120) * 1000, 1000);
  clearInterval(sampler);
  take();
  ws.close();
  const loadAfter = loadAverage();
  if (job.state !== 'succeeded') {
    for (const r of job.rounds ?? []) say(`  round ${r.round}.${r.attempt} ${r.state}: ${r.error ?? ''} ${r.dropped.slice(0, 3).map((d) => `${d.client}: ${d.reason}`).join('; ')}`);
    throw new Error(`the job ${job.state}: ${job.error}`);
  }

  // Per round: the relay's round records and stream events, the clients' timestamps, the samples.
  const at = (t: number, k: 'cpu' | 'sims' | 'driver' | 'machine') => {
    const i = samples.findIndex((x) => x.t >= t);
    if (i <= 0) return (i === 0 ? samples[0]! : samples.at(-1)!)[k];
    const a = samples[i - 1]!;
    const b = samples[i]!;
    return a[k] + ((b[k] - a[k]) * (t - a.t)) / Math.max(1, b.t - a.t);
  };
  const within = (from: number, to: number) => samples.filter((x) => x.t >= from && x.t <= to);
  const aggregatedRounds = (job.rounds ?? []).filter((r) => r.state === 'aggregated');
  const rows = aggregatedRounds.map((r) => {
    const start = Date.parse(r.startedAt!);
    const verdict = Date.parse(r.finishedAt!);
    const aggregated = events.find((e) => e.type === 'job.round' && e.jobId === job.id && e.round?.round === r.round && e.round.attempt === r.attempt && e.round.state === 'aggregated')?.ts ?? Number.NaN;
    const ranks = new Set(r.clients.map((c) => c.rank));
    const ups = updates.filter((u) => u.jobId === job.id && ranks.has(u.rank));
    const lastReport = max(ups.map((u) => u.reportedAt));
    // The relay emits each client's `starting` run event just before it publishes that client's jobs.
    const publishing = max(events.filter((e) => e.type === 'job.run' && e.jobId === job.id && e.state === 'starting' && ranks.has(e.rank!)).map((e) => e.ts)) - start;
    const lastRecorded = max(events.filter((e) => e.type === 'job.run' && e.jobId === job.id && e.state === 'succeeded' && ranks.has(e.rank!)).map((e) => e.ts));
    const cpu = at(aggregated, 'cpu') - at(start, 'cpu');
    const wall = aggregated - start;
    return {
      round: r.round,
      attempt: r.attempt,
      participants: r.participants.length,
      wallMs: wall,
      verdictMs: verdict - start,
      publishingMs: publishing,
      assignedMedianMs: median(ups.map((u) => u.assignedAt - start)),
      assignedMs: max(ups.map((u) => u.assignedAt)) - start,
      closeMs: aggregated - lastReport,
      recordedMs: lastRecorded - lastReport,
      averagingMs: aggregated - verdict,
      cpuS: cpu,
      cpuPct: (100 * cpu) / (wall / 1000),
      cpuCloseS: at(aggregated, 'cpu') - at(lastReport, 'cpu'),
      simsPct: (100 * (at(aggregated, 'sims') - at(start, 'sims'))) / (wall / 1000),
      // Counted in ticks from two sources: a few % either way is noise.
      otherPct: Math.max(0, (100 * (at(aggregated, 'machine') - at(start, 'machine') - (at(aggregated, 'sims') - at(start, 'sims')) - cpu - (at(aggregated, 'driver') - at(start, 'driver')))) / (wall / 1000)),
      rssMaxMiB: max(within(start, aggregated).map((x) => x.rss)),
      hwmMiB: (within(aggregated, aggregated + 500)[0] ?? samples.at(-1)!).hwm,
      upBytes: ups.reduce((n, u) => n + u.bytesUp, 0),
      downBytes: ups.reduce((n, u) => n + u.bytesDown, 0),
      downloadMs: median(ups.map((u) => u.downloadedAt - u.assignedAt)),
      uploadMs: median(ups.map((u) => u.uploadedAt - u.trainedAt)),
      retries: ups.reduce((n, u) => n + u.downloadRetries, 0),
    };
  });
  const lastRound = aggregatedRounds.at(-1)!;
  const registerMs = Date.parse(job.finishedAt!) - (events.find((e) => e.type === 'job.round' && e.round?.round === lastRound.round && e.round.state === 'aggregated')?.ts ?? Number.NaN);
  if (values.dump) writeFileSync(values.dump, JSON.stringify({ job, updates, events, samples, rows }));

  say('');
  say("| round | clients | wall: start → aggregated (record: → verdict) | the relay's last publish; assignments received: median, last | last report → aggregated (→ recorded, verdict → aggregated) | relay CPU (% of a core) | relay CPU, last report → aggregated | simulators, other processes (% of a core) | relay RSS max, VmHWM | uploaded, downloaded | client download, upload (median) |");
  say('|---|---|---|---|---|---|---|---|---|---|---|');
  const row = (x: (typeof rows)[number], label: string) =>
    say(`| ${label} | ${x.participants} | ${s1(x.wallMs)} (${s1(x.verdictMs)}) | ${s1(x.publishingMs)}; ${s1(x.assignedMedianMs)}, ${s1(x.assignedMs)} | ${s1(x.closeMs)} (${s1(x.recordedMs)}, ${s1(x.averagingMs)}) | ${x.cpuS.toFixed(2)} s (${x.cpuPct.toFixed(0)}%) | ${x.cpuCloseS.toFixed(2)} s | ${x.simsPct.toFixed(0)}%, ${x.otherPct.toFixed(0)}% | ${x.rssMaxMiB.toFixed(0)}, ${x.hwmMiB.toFixed(0)} MiB | ${(x.upBytes / MB).toFixed(0)}, ${(x.downBytes / MB).toFixed(0)} MB${x.retries ? ` (${x.retries} busy retries)` : ''} | ${s1(x.downloadMs)}, ${s1(x.uploadMs)} |`);
  for (const x of rows) row(x, `${x.round}${x.attempt > 1 ? ` (attempt ${x.attempt})` : ''}`);
  const med = Object.fromEntries(Object.keys(rows[0]!).map((k) => [k, median(rows.map((x) => x[k as keyof (typeof rows)[number]] as number))])) as (typeof rows)[number];
  row(med, 'median');
  say('');
  const last = samples.at(-1)!;
  say(`relay: RSS ${idle.rss.toFixed(0)} MiB before the job, ${last.rss.toFixed(0)} MiB after, VmHWM ${last.hwm.toFixed(0)} MiB; CPU over the whole job ${(last.cpu - idle.cpu).toFixed(1)} s; the final model registered ${s1(registerMs)} after the last round's aggregation; load average after ${loadAfter}`);
  say(`relay CPU per client update: ${((med.cpuS * 1000) / N).toFixed(1)} ms (a download served, an upload stored and hashed, its messages, its check, its share of the average)`);
  // The same aggregation with nothing else: the last round's global model and its updates as the relay stored them.
  stopping = true;
  for (const c of children.splice(0)) c.kill('SIGKILL');
  // SIGTERM when profiling: a process writes its profile only when it exits on its own.
  process.kill(pid, values.profile ? 'SIGTERM' : 'SIGKILL');
  await until('the relay to exit', () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch {
      return true;
    }
  }, 30_000, 20);
  const artifact = (sha: string) => join(f.dataDir, 'artifacts', sha);
  const rankOf = new Map(lastRound.clients.map((c) => [c.deviceId, c.rank]));
  const inputs = lastRound.participants.map((p) => {
    const out = job.outputs.find((o) => o.rank === rankOf.get(p.deviceId) && o.path === 'model.onnx')!;
    return { file: artifact(out.sha256), numExamples: p.numExamples };
  });
  const aggregate = async (mode: AggregateJob['mode']) => {
    const child = fork(AGGREGATE, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    const answer = new Promise<AggregateResult>((resolve, reject) => {
      child.once('message', (m: { ok: boolean; result?: AggregateResult; error?: string }) => (m.ok ? resolve(m.result!) : reject(new Error(m.error))));
      child.once('exit', (code) => reject(new Error(`the aggregation process exited (${code})`)));
    });
    child.send({ mode, globalFile: artifact(lastRound.globalSha256), updateFiles: inputs.map((i) => i.file), numExamples: inputs.map((i) => i.numExamples), reps: REPS } satisfies AggregateJob);
    return answer;
  };
  const pure = await aggregate('pure');
  const asRelay = await aggregate('relay');
  const per = (r: AggregateResult, k: string) => r.steps[k]! / REPS;
  say('');
  say(`in-process FedAvg of round ${lastRound.round}'s ${inputs.length} updates (the relay's own files, page cache), a process of its own, median of ${REPS}:`);
  say(`| aggregation | wall | CPU | per update | steps per round (ms) | RSS at start → peak (VmHWM) | peak heap, external |`);
  say(`|---|---|---|---|---|---|---|`);
  say(`| pure: readModelWeights + updateProblem + add, result() | ${s1(median(pure.ms))} | ${s1(median(pure.cpuMs))} | ${(median(pure.ms) / inputs.length).toFixed(1)} ms | weights ${per(pure, 'weights').toFixed(0)}, check ${per(pure, 'check').toFixed(0)}, add ${per(pure, 'add').toFixed(0)}, result ${per(pure, 'result').toFixed(0)} | ${pure.baseRssMiB.toFixed(0)} → ${pure.peakRssMiB.toFixed(0)} MiB | ${pure.peakHeapMiB.toFixed(0)}, ${pure.peakExternalMiB.toFixed(0)} MiB |`);
  say(`| as the relay: read + check each, read + add each, result, hash + write | ${s1(median(asRelay.ms))} | ${s1(median(asRelay.cpuMs))} | ${(median(asRelay.ms) / inputs.length).toFixed(1)} ms | check pass ${(per(asRelay, 'checkRead') + per(asRelay, 'check')).toFixed(0)} (reads ${per(asRelay, 'checkRead').toFixed(0)}), average pass ${(per(asRelay, 'read') + per(asRelay, 'weights') + per(asRelay, 'add')).toFixed(0)} (reads ${per(asRelay, 'read').toFixed(0)}, add ${per(asRelay, 'add').toFixed(0)}), result ${per(asRelay, 'result').toFixed(0)}, store ${per(asRelay, 'store').toFixed(0)} | ${asRelay.baseRssMiB.toFixed(0)} → ${asRelay.peakRssMiB.toFixed(0)} MiB | ${asRelay.peakHeapMiB.toFixed(0)}, ${asRelay.peakExternalMiB.toFixed(0)} MiB |`);
  const averagePassMs = (per(asRelay, 'read') + per(asRelay, 'weights') + per(asRelay, 'add') + per(asRelay, 'result') + per(asRelay, 'store'));
  say('');
  say(`relay ÷ in-process: CPU per round ${(med.cpuS / (median(pure.cpuMs) / 1000)).toFixed(1)}× the pure aggregation (${(med.cpuS / (median(asRelay.cpuMs) / 1000)).toFixed(1)}× the relay's way in-process); last report → aggregated ${(med.closeMs / averagePassMs).toFixed(1)}× the in-process averaging pass (read, add, result, store: ${averagePassMs.toFixed(0)} ms), verdict → aggregated ${(med.averagingMs / averagePassMs).toFixed(1)}×`);
  say(`relay VmHWM over its RSS before the job: +${(last.hwm - idle.rss).toFixed(0)} MiB; the pure aggregation's peak over its start: +${(pure.peakRssMiB - pure.baseRssMiB).toFixed(0)} MiB (as the relay does it: +${(asRelay.peakRssMiB - asRelay.baseRssMiB).toFixed(0)} MiB)`);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench/federated failed: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
