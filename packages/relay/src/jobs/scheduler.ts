// The job scheduler: jobs wait in the queue in submission order, one at a time per target
// (`local`, or a device), and a job for N nodes starts only when N matching training devices
// are free at once. The queue lives in the store, so it survives a relay restart.
// Runs on `local` are child processes of the relay; runs on devices are published to the
// device as its retained desired jobs, and come back as reports, log batches and uploads.

import { randomBytes } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import {
  OutpostError,
  background,
  cleanUpLeftoverRuns,
  guardedTimeout,
  deviceTopic,
  listOutputs,
  probeModel,
  startJobRun,
  type DesiredJobs,
  type JobLine,
  type JobProcess,
  type JobRunReport,
  parseLabels,
  type Labels,
} from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import { DeferredWrites } from './deferred-writes.js';
import type { FleetContext } from '../fleet/context.js';
import type { DeviceRecord, JobRecord, JobSpec, JobState, JobTarget } from '../store/records.js';
import { jobView, summarizeMetrics, describeTarget } from './job-views.js';
import { matchesSelector } from '../fleet/deployments.js';
import { requireDevice } from '../fleet/devices.js';
import { RunIngest, type RunQuotas } from './run-ingest.js';
import { PUBLISH_CONCURRENCY, eachBounded } from '../fleet/bounded.js';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface SubmitRequest {
  bundleSha256: string;
  target: string;
  nodes?: number;
  command: string;
  env?: Record<string, string>;
  dataset?: string;
  timeoutMs?: number;
  registerModel?: { name: string; output: string };
}

export interface SchedulerOptions {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  /** Where `local` runs get their folders. */
  workRoot: string;
  /** Datasets on the relay host, for jobs on `local`. */
  localDatasets?: Record<string, string>;
  maxOutputBytes?: number;
  /** Log lines, metric points and output files one run may send. */
  runQuotas?: Partial<RunQuotas>;
}

/** Why a device cannot take training jobs, or null when it can. */
export function trainingProblem(d: DeviceRecord): string | null {
  const missing: string[] = [];
  if (!d.trainingAttached) missing.push(`it is not attached for training (outpost-relay targets attach ${d.id} --training)`);
  if (!d.acceptsTraining) missing.push(`its agent does not accept training jobs (on the device: outpost-agent start --accept-training)`);
  return missing.length ? `device ${d.id} cannot train: ${missing.join('; and ')}` : null;
}

function parseTarget(text: string): JobTarget {
  if (text === 'local') return { kind: 'local' };
  if (!text.includes('=')) return { kind: 'device', deviceId: text };
  try {
    return { kind: 'selector', selector: parseLabels(text) };
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `target "${text}": ${(err as Error).message}; use local, a device id, or a selector k=v,...`);
  }
}

const matches = (d: DeviceRecord, selector: Labels) => matchesSelector(d.labels, selector);

export class JobScheduler {
  readonly #opts: SchedulerOptions;
  readonly #ctx: FleetContext;
  readonly #local = new Map<string, JobProcess>();
  readonly #watchdogs = new Map<string, NodeJS.Timeout>();
  readonly #ingest: RunIngest;
  readonly #deferred: DeferredWrites;
  #closed = false;
  #started = false;
  /** Jobs being ended now. */
  readonly #ending = new Set<string>();
  /** The scheduling passes under way, for close() to wait on. */
  #passing: Promise<void> = Promise.resolve();
  /** A scheduling pass is under way; `#tickAgain`: another was asked for meanwhile. */
  #ticking = false;
  #tickAgain = false;

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
    this.#ctx = opts.ctx;
    this.#deferred = new DeferredWrites(opts.ctx.log);
    this.#ingest = new RunIngest({ ctx: opts.ctx, artifacts: opts.artifacts, quotas: { ...opts.runQuotas, ...(opts.maxOutputBytes ? { outputBytes: opts.maxOutputBytes } : {}) } });
    // A device came online, or changed labels or capabilities; a job was queued or ended (here
    // or, with several relays, on another): queued jobs may fit now.
    opts.ctx.events.on((e) => {
      if (e.type === 'device.status' || e.type === 'device.updated' || e.type === 'job.created' || e.type === 'job.state') this.tick();
    });
  }

  /** After a restart: local runs died with the old process; device runs go on. */
  async start(): Promise<void> {
    const { store, log } = this.#ctx;
    // A relay killed with local runs going left their processes (and folders) behind: end them.
    const leftovers = await cleanUpLeftoverRuns(this.#opts.workRoot);
    if (leftovers > 0) log.warn({ runs: leftovers }, `ended ${leftovers} local job run(s) a previous relay left running, and removed their folders`);
    for (const job of await store.jobs.inState('running')) {
      for (const r of job.runs) if (r.target === 'local' && !TERMINAL.has(r.state)) await this.#runUpdate(job.id, r.rank, 'failed', null, 'the relay restarted while this run was going');
      this.#armWatchdog((await store.jobs.get(job.id))!);
    }
    await this.republish();
    this.#started = true;
    this.tick();
  }

  /** Publishes the job runs of every device that has some again (a broker that lost its retained messages). */
  async republish(): Promise<void> {
    await eachBounded([...await this.#devicesWithRuns()], PUBLISH_CONCURRENCY, (id) => this.#publishJobs(id));
  }

  async summary(id: string) {
    const { store } = this.#ctx;
    const job = await this.require(id);
    return jobView(job, await store.jobs.metricSummary(id), await store.jobs.outputs(id));
  }

  async require(id: string): Promise<JobRecord> {
    const job = await this.#ctx.store.jobs.get(id);
    if (!job) throw new OutpostError('OUTPOST_ERR_JOB_NOT_FOUND', `no job "${id}": list them with outpost-relay jobs list`);
    return job;
  }

  async submit(req: SubmitRequest): Promise<JobRecord> {
    const { store } = this.#ctx;
    const bundleSize = await this.#opts.artifacts.size(req.bundleSha256);
    if (bundleSize === undefined) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `no bundle ${req.bundleSha256}: upload it first (POST /v1/bundles)`);
    if (!req.command.trim()) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a job needs a command (--command "...")');
    const target = parseTarget(req.target);
    const nodes = req.nodes ?? 1;
    if (target.kind !== 'selector' && nodes !== 1) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--nodes ${nodes} needs a selector target (k=v,...), not ${req.target}`);
    if (req.registerModel) {
      if (!MODEL_NAME.test(req.registerModel.name)) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `"${req.registerModel.name}" is not a model name`);
      const out = posix.normalize(req.registerModel.output);
      if (posix.isAbsolute(out) || out.startsWith('..')) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--output must be a path inside OUTPOST_OUTPUT_DIR, not ${req.registerModel.output}`);
      req.registerModel.output = out;
    }
    if (target.kind === 'local') {
      if (req.dataset && !this.#opts.localDatasets?.[req.dataset]) throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', `the relay host has no dataset "${req.dataset}" (outpost-relay start --dataset ${req.dataset}=PATH)`);
    } else if (target.kind === 'device') {
      // Named by id or name; the job keeps the id.
      const d = await requireDevice(this.#ctx, target.deviceId, 'use local, a device id or name, or a selector k=v,...');
      target.deviceId = d.id;
      const problem = trainingProblem(d);
      if (problem) throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', problem);
      if (req.dataset && !d.datasets.includes(req.dataset)) throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', `device ${d.id} has no dataset "${req.dataset}" (outpost-agent start --dataset ${req.dataset}=PATH)`);
    } else {
      const matching = (await store.devices.list()).filter((d) => matches(d, target.selector));
      const able = matching.filter((d) => trainingProblem(d) === null && (!req.dataset || d.datasets.includes(req.dataset)));
      if (able.length < nodes) {
        const why = matching.map((d) => trainingProblem(d) ?? (req.dataset && !d.datasets.includes(req.dataset) ? `device ${d.id} has no dataset "${req.dataset}"` : null)).filter(Boolean);
        throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', `${able.length} of ${matching.length} devices matching ${req.target} can run this job; it needs ${nodes}${why.length ? `: ${why.join('; ')}` : ''}`);
      }
    }
    const spec: JobSpec = {
      bundleSha256: req.bundleSha256,
      bundleSize,
      target,
      nodes,
      command: req.command,
      env: req.env ?? {},
      ...(req.dataset ? { dataset: req.dataset } : {}),
      ...(req.timeoutMs ? { timeoutMs: req.timeoutMs } : {}),
      ...(req.registerModel ? { registerModel: req.registerModel } : {}),
    };
    const job = await store.jobs.create(`job_${randomBytes(6).toString('hex')}`, spec, this.#ctx.now());
    this.#ctx.log.info({ jobId: job.id, target: describeTarget(target), nodes }, 'job queued');
    this.#ctx.events.emit({ type: 'job.created', job: jobView(job, [], []) });
    this.tick();
    return (await store.jobs.get(job.id))!;
  }

  /** Starts every queued job whose targets are free, in submission order. */
  /**
   * Starts the queued jobs that fit now. One pass runs at a time (a pass reads the store, then
   * claims targets); a tick during a pass runs one more after it, so none is lost.
   */
  tick(): void {
    // Before start() (which ticks at its end) the queue is not ready: a previous run's leftovers may still be there.
    if (this.#closed || !this.#started) return;
    if (this.#ticking) {
      this.#tickAgain = true;
      return;
    }
    this.#ticking = true;
    this.#passing = this.#passes();
    background(this.#ctx.log, 'starting queued jobs', this.#passing);
  }

  /** Settles when no pass runs (tests, close). */
  async #passes(): Promise<void> {
    try {
      do {
        this.#tickAgain = false;
        await this.#pass();
      } while (this.#tickAgain && !this.#closed);
    } finally {
      this.#ticking = false;
    }
  }

  async #pass(): Promise<void> {
    const { store } = this.#ctx;
    // Called on every device status change: with nothing queued, do nothing (10k devices connecting).
    const queued = await store.jobs.inState('queued');
    if (queued.length === 0) return;
    const busy = await store.jobs.busyTargets();
    const held = new Set<string>();
    const devices = await store.devices.list();
    for (const job of queued) {
      const candidates = this.#candidates(job, devices);
      const free = candidates.filter((c) => !busy.has(c) && !held.has(c));
      if (free.length >= job.spec.nodes) {
        const chosen = free.slice(0, job.spec.nodes);
        for (const c of chosen) busy.add(c);
        if (this.#closed || !this.#started) return;
        const started = await this.#claim(job, chosen);
        if (started) background(this.#ctx.log, `starting job ${job.id}`, this.#start(started, chosen));
      } else {
        // Later jobs may not jump the queue on the targets this one waits for.
        for (const c of candidates) held.add(c);
      }
    }
  }

  #candidates(job: JobRecord, devices: DeviceRecord[]): string[] {
    const t = job.spec.target;
    if (t.kind === 'local') return ['local'];
    const ok = (d: DeviceRecord) => d.online && trainingProblem(d) === null && (!job.spec.dataset || d.datasets.includes(job.spec.dataset));
    if (t.kind === 'device') return devices.filter((d) => d.id === t.deviceId && ok(d)).map((d) => d.id);
    return devices.filter((d) => matches(d, t.selector) && ok(d)).map((d) => d.id);
  }

  /** Gives a queued job its runs and makes it running, unless it left the queue meanwhile (canceled). */
  async #claim(job: JobRecord, targets: string[]): Promise<JobRecord | undefined> {
    const now = this.#ctx.now();
    return this.#ctx.store.transaction(async (tx) => {
      if ((await tx.jobs.get(job.id))?.state !== 'queued') return undefined;
      await tx.jobs.addRuns(job.id, targets.map((target, rank) => ({ rank, target })), now);
      await tx.jobs.setState(job.id, 'running', now);
      return tx.jobs.get(job.id);
    });
  }

  async #start(started: JobRecord, targets: string[]): Promise<void> {
    const { events, log } = this.#ctx;
    const job = started;
    events.emit({ type: 'job.state', jobId: job.id, state: 'running', error: null });
    log.info({ jobId: job.id, targets }, 'job started');
    this.#armWatchdog(started);
    for (const [rank, target] of targets.entries()) {
      if (target === 'local') background(log, `running job ${job.id} on local`, this.#runLocal(started, rank, targets.length));
      else await this.#publishJobs(target);
    }
  }

  /** Devices enforce their own timeouts; this catches a device that went silent. */
  #armWatchdog(job: JobRecord): void {
    if (!job.spec.timeoutMs || !job.startedAt) return;
    const left = job.startedAt + job.spec.timeoutMs + 30_000 - this.#ctx.now();
    const timer = guardedTimeout(this.#ctx.log, `job ${job.id} watchdog`, Math.max(0, left), async () => {
      this.#watchdogs.delete(job.id);
      const now = await this.#ctx.store.jobs.get(job.id);
      if (now?.state === 'running') return this.#endJob(now, 'failed', `timed out after ${Math.round(job.spec.timeoutMs! / 1000)} s`);
    });
    this.#watchdogs.set(job.id, timer);
  }

  async #runLocal(job: JobRecord, rank: number, worldSize: number): Promise<void> {
    const key = `${job.id}:${rank}`;
    const root = join(this.#opts.workRoot, job.id, String(rank));
    // Closed before it began: the next start ends the run it left pending.
    if (this.#closed) return;
    try {
      const run = await startJobRun({
        root,
        jobId: job.id,
        rank,
        worldSize,
        bundleFile: this.#opts.artifacts.path(job.spec.bundleSha256),
        command: job.spec.command,
        env: job.spec.env,
        dataDir: job.spec.dataset ? this.#opts.localDatasets?.[job.spec.dataset] : undefined,
        timeoutMs: job.spec.timeoutMs,
        onLines: (lines) => background(this.#ctx.log, `storing job ${job.id}'s log lines`, this.onLogs('local', job.id, rank, lines)),
      });
      this.#local.set(key, run.process);
      // Closed while it was being set up: close() went through #local before it was there.
      if (this.#closed) run.process.cancel('the relay shut down while this run was starting');
      await this.#runUpdate(job.id, rank, 'running');
      const result = await run.process.result;
      // close() or follow() has recorded how this run ended.
      if (this.#closed || this.#local.get(key) !== run.process) return;
      // Its last lines are still being stored: the run takes nothing once it has ended.
      await this.#ingest.settled(job.id, rank);
      for (const o of listOutputs(run.outputDir)) await this.addOutput('local', job.id, rank, o.path, createReadStream(o.file));
      await this.#runUpdate(job.id, rank, result.state, result.exitCode, result.error ?? null);
    } catch (err) {
      if (!this.#closed) await this.#runUpdate(job.id, rank, 'failed', null, (err as Error).message);
    } finally {
      this.#local.delete(key);
      rmSync(root, { recursive: true, force: true });
    }
  }

  async #devicesWithRuns(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const job of await this.#ctx.store.jobs.inState('running')) for (const r of job.runs) if (r.target !== 'local') ids.add(r.target);
    return ids;
  }

  async desiredJobsFor(deviceId: string): Promise<DesiredJobs> {
    const jobs: DesiredJobs['jobs'] = [];
    for (const job of await this.#ctx.store.jobs.inState('running')) {
      for (const r of job.runs) {
        if (r.target !== deviceId || TERMINAL.has(r.state)) continue;
        jobs.push({
          jobId: job.id,
          rank: r.rank,
          worldSize: job.runs.length,
          bundleSha256: job.spec.bundleSha256,
          command: job.spec.command,
          env: job.spec.env,
          ...(job.spec.dataset ? { dataset: job.spec.dataset } : {}),
          ...(job.spec.timeoutMs ? { timeoutMs: job.spec.timeoutMs } : {}),
        });
      }
    }
    return { revision: this.#ctx.now(), jobs };
  }

  /** One publish per device at a time across every relay, each reading after the one before: the retained list is the newest. */
  async #publishJobs(deviceId: string): Promise<void> {
    await this.#ctx.store.exclusive(`jobs:${deviceId}`, async () => this.#ctx.mqtt.publishRetained(deviceTopic(deviceId, 'jobs'), await this.desiredJobsFor(deviceId)));
  }

  /** A device's report of its runs; only runs assigned to that device count. */
  async onRunReports(deviceId: string, runs: JobRunReport[]): Promise<void> {
    for (const r of runs) {
      const job = await this.#ctx.store.jobs.get(r.jobId);
      const run = job?.runs.find((x) => x.rank === r.rank);
      if (!job || run?.target !== deviceId) continue;
      await this.#runUpdate(r.jobId, r.rank, r.state, r.exitCode ?? null, r.error ?? null);
    }
  }

  /** A target was attached or detached: queued jobs may fit now. */
  onTargetsChanged(): void {
    this.tick();
  }

  #runUpdate(jobId: string, rank: number, state: string, exitCode: number | null = null, error: string | null = null): Promise<void> {
    const at = this.#ctx.now();
    return this.#deferred.run(`job ${jobId} rank ${rank}: ${state}`, () => this.#applyRunUpdate(jobId, rank, state, at, exitCode, error));
  }

  async #applyRunUpdate(jobId: string, rank: number, state: string, at: number, exitCode: number | null, error: string | null): Promise<void> {
    const { store, events } = this.#ctx;
    if (!await store.jobs.setRunState(jobId, rank, state, at, exitCode, error)) return;
    const job = (await store.jobs.get(jobId))!;
    const run = job.runs.find((r) => r.rank === rank)!;
    events.emit({ type: 'job.run', jobId, rank, target: run.target, state, exitCode, error });
    if (job.state !== 'running') {
      if (job.runs.every((r) => TERMINAL.has(r.state))) this.tick();
      return;
    }
    const { log } = this.#ctx;
    if (state === 'failed') background(log, `ending job ${jobId}`, this.#endJob(job, 'failed', `rank ${rank} on ${run.target}: ${error ?? 'failed'}`));
    else if (job.runs.every((r) => TERMINAL.has(r.state))) {
      const failed = job.runs.find((r) => r.state !== 'succeeded');
      if (failed) background(log, `ending job ${jobId}`, this.#endJob(job, failed.state === 'canceled' ? 'canceled' : 'failed', failed.error));
      else background(log, `ending job ${jobId}`, this.#succeed(job));
    }
  }

  async #succeed(job: JobRecord): Promise<void> {
    const reg = job.spec.registerModel;
    if (reg) {
      try {
        const model = await this.#register(job, reg);
        await this.#ctx.store.jobs.setModel(job.id, model);
      } catch (err) {
        return this.#endJob(job, 'failed', `the job succeeded but its model was not registered: ${(err as Error).message}`);
      }
    }
    await this.#endJob(job, 'succeeded', null);
  }

  async #register(job: JobRecord, reg: { name: string; output: string }): Promise<{ name: string; version: number }> {
    const { store } = this.#ctx;
    const output = (await store.jobs.outputs(job.id)).find((o) => o.rank === 0 && o.path === reg.output);
    if (!output) throw new Error(`the job wrote no ${reg.output} in OUTPOST_OUTPUT_DIR (rank 0)`);
    const signature = await probeModel(this.#opts.artifacts.path(output.sha256));
    const metrics = Object.fromEntries(Object.entries(summarizeMetrics(await store.jobs.metricSummary(job.id))).map(([k, v]) => [k, { latest: v.latest, best: v.best }]));
    const { record } = await store.models.addVersion(reg.name, output.sha256, output.size, signature, { lineage: { jobId: job.id, target: describeTarget(job.spec.target), metrics } });
    this.#ctx.log.info({ jobId: job.id, model: record.name, version: record.version }, 'job output registered as a model version');
    return { name: record.name, version: record.version };
  }

  /** Ends a job: its other runs are stopped, its devices told, the queue moves on. */
  async #endJob(job: JobRecord, state: JobState, error: string | null): Promise<void> {
    // Two ranks failing at once, a cancel beside a failure, the watchdog beside a report: the
    // first ends the job, the others find it ending.
    if (this.#ending.has(job.id)) return;
    this.#ending.add(job.id);
    try {
      await this.#end(job, state, error);
    } finally {
      this.#ending.delete(job.id);
    }
  }

  async #end(job: JobRecord, state: JobState, error: string | null): Promise<void> {
    const { store, events, log } = this.#ctx;
    const current = await store.jobs.get(job.id);
    if (!current || TERMINAL.has(current.state)) return;
    const at = this.#ctx.now();
    await this.#deferred.run(`job ${job.id}: ${state}`, async () => await store.jobs.setState(job.id, state, at, error));
    clearTimeout(this.#watchdogs.get(job.id));
    this.#watchdogs.delete(job.id);
    events.emit({ type: 'job.state', jobId: job.id, state, error });
    log.info({ jobId: job.id, state, error }, 'job ended');
    for (const r of current.runs) {
      if (TERMINAL.has(r.state)) continue;
      if (r.target === 'local') this.#local.get(`${job.id}:${r.rank}`)?.cancel(state === 'canceled' ? 'canceled' : (error ?? state));
      else await this.#publishJobs(r.target);
    }
    this.tick();
  }

  async cancel(id: string): Promise<JobRecord> {
    await this.require(id);
    const now = this.#ctx.now();
    // Still queued when written: a scheduling pass may have claimed it meanwhile.
    const dequeued = await this.#ctx.store.transaction(async (tx) => {
      if ((await tx.jobs.get(id))?.state !== 'queued') return false;
      await tx.jobs.setState(id, 'canceled', now, 'canceled before it started');
      return true;
    });
    if (dequeued) {
      this.#ctx.events.emit({ type: 'job.state', jobId: id, state: 'canceled', error: 'canceled before it started' });
      this.tick();
    } else {
      const job = await this.require(id);
      if (job.state === 'running') await this.#endJob(job, 'canceled', 'canceled');
    }
    return this.require(id);
  }

  onLogs(source: string, jobId: string, rank: number, lines: JobLine[]): Promise<string | null> {
    return this.#ingest.logs(source, jobId, rank, lines);
  }

  /** Stores one file a run wrote to its output folder. */
  addOutput(source: string, jobId: string, rank: number, path: string, body: Readable): Promise<void> {
    return this.#ingest.output(source, jobId, rank, path, body);
  }

  /**
   * Another relay leads now (several relays): it schedules, times jobs out and records how this
   * relay's local runs ended; this one stops doing so and kills its local runs.
   */
  async follow(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await this.#passing.catch(() => {});
    for (const t of this.#watchdogs.values()) clearTimeout(t);
    this.#watchdogs.clear();
    await this.#endLocalRuns('the relay running it stopped leading the workspace');
  }

  /** Local runs die with the relay: they are recorded as failed, then killed. */
  async close(): Promise<void> {
    this.#closed = true;
    // A pass under way claims nothing more once closed; what it claimed is recorded below.
    await this.#passing.catch(() => {});
    this.#deferred.close();
    for (const t of this.#watchdogs.values()) clearTimeout(t);
    await this.#endLocalRuns('the relay shut down while this run was going');
  }

  async #endLocalRuns(why: string): Promise<void> {
    const { store } = this.#ctx;
    const now = this.#ctx.now();
    for (const [key, p] of this.#local) {
      const [jobId, rank] = key.split(':') as [string, string];
      await store.jobs.setRunState(jobId, Number(rank), 'failed', now, null, why);
      if ((await store.jobs.get(jobId))?.state === 'running') await store.jobs.setState(jobId, 'failed', now, why);
      this.#local.delete(key);
      p.cancel(why);
    }
  }
}
