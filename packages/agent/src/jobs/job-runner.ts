// Training jobs on the device, when its owner allows them (`--accept-training`). Follows the
// relay's retained desired jobs: starts assigned runs, kills runs no longer assigned, streams
// their output over MQTT, uploads their outputs over HTTP, and reports each run's state.
// A job runs in its own process group with capped output, so it cannot take the agent down.

import { createReadStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { background, backoffMs, hostRendezvous, joinRendezvous, listOutputs, localAddressToward, type RendezvousPoint, startJobRun, tlsFetch, type ClientTls, type DesiredJobs, type JobAssignment, type JobLine, type JobLogBatch, type JobProcess, type JobRunReport, type JobsReported, type Logger } from '@outpost/shared';
import { ArtifactCache } from '../artifact-cache.js';

export interface JobRunnerOptions {
  dataDir: string;
  relayUrl: string;
  secret: string;
  /** The relay's CA and the device's certificate (then the secret is not sent). */
  tls?(): ClientTls | undefined;
  acceptTraining: boolean;
  datasets: Record<string, string>;
  /** The address other ranks of an N-node job reach this device at (default: the one toward the relay). */
  advertiseAddress?: string;
  log: Logger;
  report(state: JobsReported): void;
  publishLog(batch: JobLogBatch): void;
}

interface Run {
  report: JobRunReport;
  process?: JobProcess;
  assigned: boolean;
  /** Stops a run still meeting its other ranks (no longer assigned). */
  abort: AbortController;
  /** Rank 0's point, kept in each report of the run. */
  rendezvous?: RendezvousPoint;
  /** For a rank above 0: rank 0's point once the relay sent it (it may come while the bundle downloads). */
  master?: RendezvousPoint;
  /** A rank above 0 waiting for rank 0's point: called when the relay sends it. */
  onMaster?: (point: RendezvousPoint) => void;
}

/** The agent's scorer, run as a scoring job's process (built next to this file). */
const SCORE_PROGRAM = fileURLToPath(new URL('./score-child.js', import.meta.url));

/** MQTT payloads stay well under the broker's 256 KiB cap. */
const MAX_BATCH_BYTES = 64 * 1024;
const KEEP_FINISHED = 50;

export class JobRunner {
  readonly #opts: JobRunnerOptions;
  readonly #bundles: ArtifactCache;
  /** Federated rounds' global models and scoring jobs' models, fetched as bundles are (only those of this device's runs). */
  readonly #jobModels: ArtifactCache;
  readonly #runs = new Map<string, Run>();

  constructor(opts: JobRunnerOptions) {
    this.#opts = opts;
    this.#bundles = new ArtifactCache(join(opts.dataDir, 'job-bundles'), () => opts.tls?.());
    this.#jobModels = new ArtifactCache(join(opts.dataDir, 'job-models'), () => opts.tls?.());
  }

  get reported(): JobsReported {
    return { runs: [...this.#runs.values()].map((r) => r.report) };
  }

  setDesired(desired: DesiredJobs): void {
    const wanted = new Set(desired.jobs.map((a) => `${a.jobId}:${a.rank}`));
    for (const a of desired.jobs) {
      const master = a.rendezvous?.master;
      const run = master && this.#runs.get(`${a.jobId}:${a.rank}`);
      if (run && !run.master) {
        run.master = master;
        run.onMaster?.(master);
      }
    }
    for (const [key, run] of this.#runs) {
      run.assigned = wanted.has(key);
      if (!run.assigned && !run.process) run.abort.abort();
      if (!run.assigned && run.process && (run.report.state === 'running' || run.report.state === 'starting')) {
        this.#opts.log.info({ jobId: run.report.jobId, rank: run.report.rank }, 'job run no longer assigned: killing it');
        run.process.cancel('canceled');
      }
    }
    for (const a of desired.jobs) if (!this.#runs.has(`${a.jobId}:${a.rank}`)) background(this.#opts.log, `job ${a.jobId} rank ${a.rank}`, this.#start(a));
    this.#prune();
    // A global model is one round's, a scoring model one job's: those of runs over go (a run copies its global model before it starts).
    background(this.#opts.log, 'removing old job models', this.#jobModels.prune(new Set(desired.jobs.flatMap((a) => (a.federated ? [a.federated.globalModelSha256] : a.score ? [a.score.modelSha256] : [])))));
  }

  #update(key: string, report: JobRunReport): void {
    const run = this.#runs.get(key);
    if (run) run.report = run.rendezvous ? { ...report, rendezvous: run.rendezvous } : report;
    this.#opts.report(this.reported);
  }

  async #start(a: JobAssignment): Promise<void> {
    const key = `${a.jobId}:${a.rank}`;
    const base = { jobId: a.jobId, rank: a.rank };
    this.#runs.set(key, { report: { ...base, state: 'starting' }, assigned: true, abort: new AbortController() });
    if (!this.#opts.acceptTraining) return this.#update(key, { ...base, state: 'failed', error: 'this device does not accept training jobs (outpost-agent start --accept-training)' });
    let dataDir: string | undefined;
    if (a.dataset) {
      dataDir = this.#opts.datasets[a.dataset];
      if (!dataDir) return this.#update(key, { ...base, state: 'failed', error: `this device has no dataset "${a.dataset}"` });
    }
    const root = join(this.#opts.dataDir, 'jobs', `${a.jobId}-${a.rank}`);
    const auth: Record<string, string> = this.#opts.tls?.()?.cert ? {} : { authorization: `Bearer ${this.#opts.secret}` };
    try {
      this.#opts.report(this.reported);
      const fetchModel = (sha: string) => this.#jobModels.ensure(`${this.#opts.relayUrl}/v1/artifacts/${sha}`, sha, auth);
      // A scoring job runs the agent's own scorer on the model: no bundle, no user code.
      const scoreModel = a.score && (await fetchModel(a.score.modelSha256));
      const bundle = a.score ? undefined : await this.#bundles.ensure(`${this.#opts.relayUrl}/v1/artifacts/${a.bundleSha256}`, a.bundleSha256, auth);
      const f = a.federated;
      const globalModel = f && (await fetchModel(f.globalModelSha256));
      const run = this.#runs.get(key)!;
      if (!run.assigned) return this.#update(key, { ...base, state: 'canceled', error: 'canceled before it started' });
      const meeting = a.rendezvous ? await this.#meet(a, key, run) : {};
      if (!run.assigned) return this.#update(key, { ...base, state: 'canceled', error: 'canceled before it started' });
      const started = await startJobRun({
        root,
        jobId: a.jobId,
        rank: a.rank,
        worldSize: a.worldSize,
        ...(bundle ? { bundleFile: bundle } : {}),
        command: scoreModel ? `${JSON.stringify(process.execPath)} ${JSON.stringify(SCORE_PROGRAM)}` : a.command,
        env: { ...a.env, ...meeting, ...(scoreModel ? { OUTPOST_SCORE_MODEL: scoreModel, OUTPOST_SCORE_FORMAT: a.score!.format } : {}) },
        dataDir,
        timeoutMs: a.timeoutMs,
        ...(f && globalModel ? { federated: { globalModelFile: globalModel, round: f.round, proximalMu: f.proximalMu } } : {}),
        // A device's uplink is narrow: cap what one job may print.
        maxLinesPerSec: 200,
        maxLineBytes: 2048,
        onLines: (lines) => this.#sendLines(a, lines),
      });
      run.process = started.process;
      this.#update(key, { ...base, state: 'running' });
      this.#opts.log.info({ jobId: a.jobId, rank: a.rank }, 'job run started');
      const result = await started.process.result;
      // The run is reported only once its outputs are safe on the relay (retried while it is away).
      for (const o of listOutputs(started.outputDir)) await this.#upload(a, o, auth, () => this.#runs.get(key)?.assigned ?? false);
      this.#update(key, { ...base, state: result.state, exitCode: result.exitCode, ...(result.error ? { error: result.error } : {}) });
      this.#opts.log.info({ jobId: a.jobId, rank: a.rank, state: result.state }, 'job run ended');
    } catch (err) {
      // Stopped while meeting the other ranks or fetching: the relay ended it, not a failure here.
      if (this.#runs.get(key)?.abort.signal.aborted) return this.#update(key, { ...base, state: 'canceled', error: 'canceled before it started' });
      this.#update(key, { ...base, state: 'failed', error: (err as Error).message.slice(0, 2000) });
      this.#opts.log.warn({ jobId: a.jobId, rank: a.rank, err: (err as Error).message }, 'job run failed');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  /**
   * An N-node job's rendezvous: rank 0 reserves a port, reports it and waits for every other rank
   * to check in; the others wait for the relay to pass on rank 0's point, then check in. Every
   * rank gets the point as OUTPOST_MASTER_ADDR/PORT and MASTER_ADDR/PORT (torch.distributed).
   */
  async #meet(a: JobAssignment, key: string, run: Run): Promise<Record<string, string>> {
    const r = a.rendezvous!;
    const signal = run.abort.signal;
    let point: RendezvousPoint;
    if (a.rank === 0) {
      const addr = this.#opts.advertiseAddress ?? (await localAddressToward(new URL(this.#opts.relayUrl).hostname));
      const hosted = await hostRendezvous({ addr, secret: r.secret, worldSize: a.worldSize, timeoutMs: r.timeoutMs, signal });
      point = { addr, port: hosted.port };
      run.rendezvous = point;
      this.#update(key, { jobId: a.jobId, rank: 0, state: 'starting' });
      this.#opts.log.info({ jobId: a.jobId, addr, port: hosted.port, ranks: a.worldSize }, 'rank 0 waits for the other ranks');
      try {
        await hosted.ready;
      } finally {
        await hosted.close();
      }
    } else {
      point =
        run.master ??
        r.master ??
        (await new Promise<RendezvousPoint>((resolve, reject) => {
          run.onMaster = resolve;
          signal.addEventListener('abort', () => reject(new Error('canceled while waiting for rank 0')), { once: true });
        }));
      run.onMaster = undefined;
      await joinRendezvous({ point, rank: a.rank, secret: r.secret, timeoutMs: r.timeoutMs, signal });
    }
    return { OUTPOST_MASTER_ADDR: point.addr, OUTPOST_MASTER_PORT: String(point.port), MASTER_ADDR: point.addr, MASTER_PORT: String(point.port) };
  }

  /**
   * Uploads one output file, trying again with doubling backoff (1 s up to a minute) while the
   * relay cannot be reached or answers 5xx; a refusal (4xx) is final. Gives up only when the
   * run is no longer assigned (the relay ended it).
   */
  async #upload(a: JobAssignment, o: { path: string; file: string; size: number }, auth: Record<string, string>, assigned: () => boolean): Promise<void> {
    const url = `${this.#opts.relayUrl}/v1/jobs/${a.jobId}/outputs?rank=${a.rank}&path=${encodeURIComponent(o.path)}`;
    for (let attempt = 0; ; attempt++) {
      let problem: string;
      try {
        const res = await tlsFetch(this.#opts.tls?.())(url, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(o.size) },
          body: Readable.toWeb(createReadStream(o.file)) as ReadableStream,
          duplex: 'half',
        } as RequestInit);
        if (res.ok) return;
        problem = `the relay answered ${res.status} ${await res.text()}`;
        if (res.status < 500) throw new Error(`uploading output ${o.path} failed: ${problem}`);
      } catch (err) {
        if ((err as Error).message.startsWith('uploading output')) throw err;
        problem = `cannot reach the relay (${((err as { cause?: { code?: string } }).cause?.code) ?? (err as Error).message})`;
      }
      if (!assigned()) throw new Error(`uploading output ${o.path} stopped: the run is no longer assigned to this device`);
      const delay = backoffMs(attempt + 1, { baseMs: 1000, maxMs: 60_000 });
      this.#opts.log.warn({ jobId: a.jobId, rank: a.rank, output: o.path, problem, retryInS: Math.round(delay / 1000) }, 'job output upload failed; retrying');
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  #sendLines(a: JobAssignment, lines: JobLine[]): void {
    let batch: JobLine[] = [];
    let bytes = 0;
    for (const l of lines) {
      if (bytes + l.text.length > MAX_BATCH_BYTES && batch.length) {
        this.#opts.publishLog({ jobId: a.jobId, rank: a.rank, lines: batch });
        batch = [];
        bytes = 0;
      }
      batch.push(l);
      bytes += l.text.length + 40;
    }
    if (batch.length) this.#opts.publishLog({ jobId: a.jobId, rank: a.rank, lines: batch });
  }

  /** Forget old finished runs that the relay no longer assigns. */
  #prune(): void {
    const finished = [...this.#runs.entries()].filter(([, r]) => !r.assigned && ['succeeded', 'failed', 'canceled'].includes(r.report.state));
    for (const [key] of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.#runs.delete(key);
  }

  close(): void {
    for (const run of this.#runs.values()) run.process?.cancel('the agent is shutting down');
  }
}
