// One process of simulated federated clients for bench/federated/run.ts: K devices, each on the
// agent's own MQTT session (packages/agent/dist/connection.js: status with `training: true`, the
// retained desired jobs, job log batches, retained job reports, heartbeats). For each federated
// assignment a client does what the agent's JobRunner and a training script do together, in
// this process instead of a child process per run (100 Node start-ups a round would swamp two
// cores): it downloads the job's bundle once and the round's global model (GET
// /v1/artifacts/{sha}, sha256 checked), makes an update (the same bytes with every float
// weight nudged in place, at the offsets readModelWeights gives), prints `outpost:metric
// num_examples=N loss=…` as a job log line, uploads the update as model.onnx (POST
// /v1/jobs/{id}/outputs), and reports its run succeeded, as the agent reports: starting,
// running, then the end once the output is safe on the relay. It tells the driver what each
// update took and when it was reported.

import { createHash } from 'node:crypto';
import { ONNX_FLOAT, createLogger, readModelWeights, type DesiredJobs, type HealthMessage, type JobAssignment, type JobRunReport } from '@outpost/shared';
import { connect, type Connection } from '../../packages/agent/dist/connection.js';
import type { SimDevice } from '../fleet/worker.js';

export interface ClientsStart {
  devices: SimDevice[];
  heartbeatMs: number;
  /** Seed for the noise and the example counts (each device adds its index). */
  seed: number;
}

/** One update, as the driver gets it. Times are Date.now() on this machine (the relay's clock too). */
export interface UpdateDone {
  kind: 'update';
  deviceId: string;
  jobId: string;
  rank: number;
  round: number;
  /** The assignment arrived (retained `jobs` message). */
  assignedAt: number;
  /** The global model was downloaded and checked. */
  downloadedAt: number;
  /** The update was made (weights perturbed). */
  trainedAt: number;
  /** The upload was answered 201. */
  uploadedAt: number;
  /** The `succeeded` report went out. */
  reportedAt: number;
  bytesDown: number;
  bytesUp: number;
  numExamples: number;
  downloadRetries: number;
}

export type ClientsMessage = UpdateDone | { kind: 'status'; connected: number } | { kind: 'error'; deviceId: string; jobId: string; rank: number; error: string };

const log = createLogger({ name: 'fed-sim', level: process.env.SIM_LOG_LEVEL ?? 'silent' });
/** The agent keeps this many finished runs in its reports. */
const KEEP_FINISHED = 50;
let connected = 0;

function health(): HealthMessage {
  return { ts: Date.now(), uptimeS: process.uptime(), cpuPercent: 5, memory: { rssBytes: 60e6, usedBytes: 1e9, totalBytes: 4e9 }, disk: { freeBytes: 1e10, totalBytes: 3e10 }, models: {} };
}

/** xorshift32: cheap noise, so 25 clients perturbing 1.3 M floats each stay well under a second. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** Every float weight of the model nudged in place by up to ±scale (little-endian float32, raw or packed). */
export function perturb(buf: Buffer, random: () => number, scale = 1e-3): number {
  let n = 0;
  for (const init of readModelWeights(buf).initializers) {
    if (init.dataType !== ONNX_FLOAT || !init.values) continue;
    const view = new DataView(buf.buffer, buf.byteOffset + init.values.offset, init.values.length);
    for (let i = 0; i + 4 <= init.values.length; i += 4) view.setFloat32(i, view.getFloat32(i, true) + (random() - 0.5) * 2 * scale, true);
    n += init.values.length / 4;
  }
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Client {
  readonly #d: SimDevice;
  readonly #conn: Connection;
  readonly #random: () => number;
  readonly #auth: Record<string, string>;
  readonly #runs = new Map<string, { report: JobRunReport; assigned: boolean }>();
  /** Bundles this device has (the agent's ArtifactCache keeps them across runs). */
  readonly #bundles = new Set<string>();

  constructor(d: SimDevice, seed: number) {
    this.#d = d;
    this.#random = rng(seed);
    this.#auth = { authorization: `Bearer ${d.secret}` };
    let first = true;
    this.#conn = connect({
      url: d.mqttUrl,
      deviceId: d.deviceId,
      secret: d.secret,
      log,
      agentVersion: 'fed-sim',
      training: true,
      datasets: [],
      onDesired: () => {},
      onDesiredJobs: (desired) => this.#setDesired(desired),
      onConnectionChange: (up) => {
        if (up && first) {
          first = false;
          connected++;
        }
      },
    });
  }

  heartbeat(): void {
    this.#conn.publishHealth(health());
  }

  #report(): void {
    this.#conn.publishJobsReported({ runs: [...this.#runs.values()].map((r) => r.report) });
  }

  #setDesired(desired: DesiredJobs): void {
    const wanted = new Set(desired.jobs.map((a) => `${a.jobId}:${a.rank}`));
    for (const run of this.#runs.values()) run.assigned = wanted.has(`${run.report.jobId}:${run.report.rank}`);
    for (const a of desired.jobs) if (!this.#runs.has(`${a.jobId}:${a.rank}`)) void this.#start(a, Date.now());
    const finished = [...this.#runs.entries()].filter(([, r]) => !r.assigned && ['succeeded', 'failed', 'canceled'].includes(r.report.state));
    for (const [key] of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.#runs.delete(key);
  }

  #update(key: string, report: JobRunReport): void {
    const run = this.#runs.get(key);
    if (run) run.report = report;
    this.#report();
  }

  /** GET an artifact, its sha256 checked; waits and asks again while the relay is busy (503). */
  async #download(sha256: string): Promise<{ buf: Buffer; retries: number }> {
    for (let retries = 0; ; retries++) {
      const res = await fetch(`${this.#d.relayUrl}/v1/artifacts/${sha256}`, { headers: this.#auth });
      if (res.status === 503 || res.status === 429) {
        await res.arrayBuffer();
        if (retries > 60) throw new Error(`artifact ${sha256}: the relay stayed busy`);
        await sleep(500 + this.#random() * 1000);
        continue;
      }
      if (!res.ok) throw new Error(`artifact ${sha256}: ${res.status} ${await res.text()}`);
      const buf = Buffer.from(await res.arrayBuffer());
      const actual = createHash('sha256').update(buf).digest('hex');
      if (actual !== sha256) throw new Error(`artifact ${sha256}: the bytes hash to ${actual}`);
      return { buf, retries };
    }
  }

  async #upload(a: JobAssignment, body: Buffer): Promise<void> {
    const url = `${this.#d.relayUrl}/v1/jobs/${a.jobId}/outputs?rank=${a.rank}&path=model.onnx`;
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(url, { method: 'POST', headers: { ...this.#auth, 'content-type': 'application/octet-stream', 'content-length': String(body.length) }, body });
      if (res.ok) return void (await res.arrayBuffer());
      const text = await res.text();
      if (res.status < 500 || attempt >= 5) throw new Error(`uploading model.onnx: ${res.status} ${text}`);
      await sleep(1000 * 2 ** attempt);
    }
  }

  async #start(a: JobAssignment, assignedAt: number): Promise<void> {
    const key = `${a.jobId}:${a.rank}`;
    const base = { jobId: a.jobId, rank: a.rank };
    this.#runs.set(key, { report: { ...base, state: 'starting' }, assigned: true });
    this.#report();
    try {
      if (!a.federated) throw new Error('this simulated client only runs federated rounds');
      let bytesDown = 0;
      let retries = 0;
      if (!this.#bundles.has(a.bundleSha256)) {
        const bundle = await this.#download(a.bundleSha256);
        bytesDown += bundle.buf.length;
        retries += bundle.retries;
        this.#bundles.add(a.bundleSha256);
      }
      const global = await this.#download(a.federated.globalModelSha256);
      bytesDown += global.buf.length;
      retries += global.retries;
      const downloadedAt = Date.now();
      if (!this.#runs.get(key)?.assigned) return this.#update(key, { ...base, state: 'canceled', error: 'canceled before it started' });
      this.#update(key, { ...base, state: 'running' });
      // "Training": the global model's bytes with its weights moved a little, and a weight.
      const update = global.buf;
      perturb(update, this.#random);
      const numExamples = 50 + Math.floor(this.#random() * 451);
      const loss = (1 / a.federated.round + this.#random() * 0.1).toFixed(4);
      const trainedAt = Date.now();
      this.#conn.publishJobLog({ jobId: a.jobId, rank: a.rank, lines: [{ ts: Date.now(), stream: 'stdout', text: `outpost:metric num_examples=${numExamples} loss=${loss}` }] });
      await this.#upload(a, update);
      const uploadedAt = Date.now();
      this.#update(key, { ...base, state: 'succeeded', exitCode: 0 });
      const reportedAt = Date.now();
      process.send!({ kind: 'update', deviceId: this.#d.deviceId, jobId: a.jobId, rank: a.rank, round: a.federated.round, assignedAt, downloadedAt, trainedAt, uploadedAt, reportedAt, bytesDown, bytesUp: update.length, numExamples, downloadRetries: retries } satisfies UpdateDone);
    } catch (err) {
      const error = (err as Error).message.slice(0, 2000);
      this.#update(key, { ...base, state: 'failed', exitCode: null, error });
      process.send!({ kind: 'error', deviceId: this.#d.deviceId, jobId: a.jobId, rank: a.rank, error } satisfies ClientsMessage);
    }
  }
}

process.once('message', (msg: ClientsStart) => {
  const clients = msg.devices.map((d, i) => new Client(d, msg.seed * 1000 + i + 1));
  // Heartbeats spread over the interval, as a real fleet's would be.
  for (const c of clients) setTimeout(() => setInterval(() => c.heartbeat(), msg.heartbeatMs), Math.random() * msg.heartbeatMs);
  setInterval(() => process.send!({ kind: 'status', connected } satisfies ClientsMessage), 250);
});
// The driver went away (even killed): so do its clients.
process.on('disconnect', () => process.exit(0));
