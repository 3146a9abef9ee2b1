// The job scheduler: the queue (which jobs start, job-queue.ts) run against the store, so it
// survives a relay restart; runs on `local` (local-runs.ts) and on devices (device-jobs.ts:
// published as each device's retained desired jobs, coming back as reports, log batches and
// uploads, run-ingest.ts); how runs and jobs end, and registering a job's model.

import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  OutpostError,
  background,
  cleanUpLeftoverRuns,
  guardedTimeout,
  jobEnded,
  type DesiredJobs,
  type JobLine,
  type JobRunReport,
  type JobRunState,
} from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import { DeferredWrites } from './deferred-writes.js';
import type { FleetContext } from '../fleet/context.js';
import type { JobRecord, JobState } from '../store/records.js';
import { federatedView, jobView, roundView, summarizeMetrics, describeTarget } from './job-views.js';
import { RunIngest, type RunQuotas } from './run-ingest.js';
import { placeQueued, waitingReason } from './job-queue.js';
import { checkJobRequest, type SubmitRequest } from './job-request.js';
import { DeviceJobs } from './device-jobs.js';
import { LocalRuns } from './local-runs.js';
import { registerModelVersion } from '../fleet/model-registration.js';
import { FederatedRounds } from '../federated/federated-rounds.js';
import { KeyedMutex } from '../store/keyed-mutex.js';

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

export class JobScheduler {
  readonly #opts: SchedulerOptions;
  readonly #ctx: FleetContext;
  readonly #local: LocalRuns;
  readonly #devices: DeviceJobs;
  readonly #federated: FederatedRounds;
  /** Placing jobs on targets, one at a time (the queue's passes and federated rounds): a device takes one job. */
  readonly #placement = new KeyedMutex();
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
    this.#devices = new DeviceJobs(opts.ctx);
    this.#local = new LocalRuns({
      ctx: opts.ctx,
      artifacts: opts.artifacts,
      workRoot: opts.workRoot,
      ...(opts.localDatasets ? { localDatasets: opts.localDatasets } : {}),
      update: (jobId, rank, state, exitCode, error) => this.#runUpdate(jobId, rank, state, exitCode ?? null, error ?? null),
      logs: (jobId, rank, lines) => this.onLogs('local', jobId, rank, lines),
      settled: (jobId, rank) => this.#ingest.settled(jobId, rank),
      output: (jobId, rank, path, body) => this.addOutput('local', jobId, rank, path, body),
    });
    this.#federated = new FederatedRounds({
      ctx: opts.ctx,
      artifacts: opts.artifacts,
      publish: (deviceId) => this.#devices.publish(deviceId),
      runUpdate: (jobId, rank, state, error) => this.#runUpdate(jobId, rank, state, null, error),
      end: (job, state, error) => this.#endJob(job, state, error),
      placing: (work) => this.#placing(work),
    });
    // A device came online, or changed labels or capabilities; a job was queued or ended (here
    // or, with several relays, on another): queued jobs may fit now, and federated rounds
    // waiting for clients may start.
    opts.ctx.events.on((e) => {
      if (e.type === 'device.status' || e.type === 'device.updated' || e.type === 'job.created' || e.type === 'job.state') this.tick();
      // A federated client's run or metrics, reported to whichever relay: the leader's round looks again.
      if (e.type === 'job.run' || e.type === 'job.metric') this.#federated.touched(e.jobId);
    });
  }

  /** After a restart: local runs died with the old process; device runs go on. */
  async start(): Promise<void> {
    const { store, log } = this.#ctx;
    // A relay killed with local runs going left their processes (and folders) behind: end them.
    const leftovers = await cleanUpLeftoverRuns(this.#opts.workRoot);
    if (leftovers > 0) log.warn({ runs: leftovers }, `ended ${leftovers} local job run(s) a previous relay left running, and removed their folders`);
    for (const job of await store.jobs.inState('running')) {
      for (const r of job.runs) if (r.target === 'local' && !jobEnded(r.state)) await this.#runUpdate(job.id, r.rank, 'failed', null, 'the relay restarted while this run was going');
      this.#armWatchdog((await store.jobs.get(job.id))!);
    }
    await this.republish();
    this.#started = true;
    await this.#federated.resume();
    this.tick();
  }

  /** Publishes the job runs of every device that has some again (a broker that lost its retained messages). */
  republish(): Promise<void> {
    return this.#devices.republish();
  }

  /** A job as the API shows it; a federated one with each round's attempts unless `withRounds` is false (lists). */
  async summary(id: string, withRounds = true) {
    const { store } = this.#ctx;
    const job = await this.require(id);
    const rounds = job.spec.federated ? await store.rounds.list(id) : [];
    const view = jobView(job, await store.jobs.metricSummary(id), await store.jobs.outputs(id), federatedView(job, rounds, this.#federated.waiting(id)));
    if (job.state === 'queued' && !job.spec.federated) view.waiting = waitingReason(job, await store.jobs.busyTargets(), await store.devices.list());
    return job.spec.federated && withRounds ? { ...view, rounds: rounds.map(roundView) } : view;
  }

  #placing<T>(work: () => Promise<T>): Promise<T> {
    return this.#placement.run('placement', work);
  }

  async require(id: string): Promise<JobRecord> {
    const job = await this.#ctx.store.jobs.get(id);
    if (!job) throw new OutpostError('OUTPOST_ERR_JOB_NOT_FOUND', `no job "${id}": list them with outpost-relay jobs list`);
    return job;
  }

  async submit(req: SubmitRequest): Promise<JobRecord> {
    const { store } = this.#ctx;
    const spec = await checkJobRequest({ ctx: this.#ctx, artifacts: this.#opts.artifacts, ...(this.#opts.localDatasets ? { localDatasets: this.#opts.localDatasets } : {}) }, req);
    const target = spec.target;
    const nodes = spec.nodes;
    const job = await store.jobs.create(`job_${randomBytes(6).toString('hex')}`, spec, this.#ctx.now());
    this.#ctx.log.info({ jobId: job.id, target: describeTarget(target), nodes }, 'job queued');
    this.#ctx.events.emit({ type: 'job.created', job: jobView(job, [], []) });
    this.tick();
    return (await store.jobs.get(job.id))!;
  }

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
    this.#federated.devicesChanged();
    await this.#placing(() => this.#place());
  }

  async #place(): Promise<void> {
    const { store } = this.#ctx;
    // Called on every device status change: with nothing queued, do nothing (10k devices connecting).
    const queued = await store.jobs.inState('queued');
    if (queued.length === 0) return;
    // A federated job runs at once: its rounds wait for clients themselves (federated-rounds.ts).
    for (const job of queued.filter((j) => j.spec.federated)) {
      if (this.#closed || !this.#started) return;
      const started = await this.#claim(job, []);
      if (!started) continue;
      this.#ctx.events.emit({ type: 'job.state', jobId: job.id, state: 'running', error: null });
      this.#ctx.log.info({ jobId: job.id, rounds: job.spec.federated!.rounds }, 'federated job started');
      this.#armWatchdog(started);
      this.#federated.advance(job.id);
    }
    for (const { job, targets } of placeQueued(queued.filter((j) => !j.spec.federated), await store.jobs.busyTargets(), await store.devices.list())) {
      if (this.#closed || !this.#started) return;
      const started = await this.#claim(job, targets);
      if (started) background(this.#ctx.log, `starting job ${job.id}`, this.#start(started, targets));
    }
  }

  /** Gives a queued job its runs and makes it running, unless it left the queue meanwhile (canceled). */
  async #claim(job: JobRecord, targets: string[]): Promise<JobRecord | undefined> {
    const now = this.#ctx.now();
    return this.#ctx.store.transaction(async (tx) => {
      if ((await tx.jobs.get(job.id))?.state !== 'queued') return undefined;
      if (targets.length) await tx.jobs.addRuns(job.id, targets.map((target, rank) => ({ rank, target })), now);
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
      if (target === 'local') background(log, `running job ${job.id} on local`, this.#local.run(started, rank, targets.length));
      else await this.#devices.publish(target);
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

  /** The runs a device should be running now (GET /v1/devices/me/jobs, the retained `jobs`). */
  desiredJobsFor(deviceId: string): Promise<DesiredJobs> {
    return this.#devices.desiredFor(deviceId);
  }

  /** A device's report of its runs; only runs assigned to that device count. */
  async onRunReports(deviceId: string, runs: JobRunReport[]): Promise<void> {
    for (const r of runs) {
      const job = await this.#ctx.store.jobs.get(r.jobId);
      const run = job?.runs.find((x) => x.rank === r.rank);
      if (!job || run?.target !== deviceId) continue;
      // Rank 0 says where the others reach it: they are told (their desired jobs), once.
      if (r.rendezvous && r.rank === 0 && job.spec.rendezvous && job.state === 'running' && (await this.#ctx.store.jobs.setRunRendezvous(job.id, 0, r.rendezvous))) {
        this.#ctx.log.info({ jobId: job.id, addr: r.rendezvous.addr, port: r.rendezvous.port }, 'rank 0 waits for the other ranks');
        for (const other of job.runs) if (other.rank > 0 && other.target !== 'local') await this.#devices.publish(other.target);
      }
      await this.#runUpdate(r.jobId, r.rank, r.state, r.exitCode ?? null, r.error ?? null);
    }
  }

  /** A target was attached or detached: queued jobs may fit now. */
  onTargetsChanged(): void {
    this.tick();
  }

  #runUpdate(jobId: string, rank: number, state: JobRunState, exitCode: number | null = null, error: string | null = null): Promise<void> {
    const at = this.#ctx.now();
    return this.#deferred.run(`job ${jobId} rank ${rank}: ${state}`, () => this.#applyRunUpdate(jobId, rank, state, at, exitCode, error));
  }

  async #applyRunUpdate(jobId: string, rank: number, state: JobRunState, at: number, exitCode: number | null, error: string | null): Promise<void> {
    const { store, events } = this.#ctx;
    if (!await store.jobs.setRunState(jobId, rank, state, at, exitCode, error)) return;
    const job = (await store.jobs.get(jobId))!;
    const run = job.runs.find((r) => r.rank === rank)!;
    events.emit({ type: 'job.run', jobId, rank, target: run.target, state, exitCode, error });
    // A federated client's run ends its part of a round, not the job.
    if (job.spec.federated) {
      if (job.state === 'running') this.#federated.advance(jobId);
      else if (job.runs.every((r) => jobEnded(r.state))) this.tick();
      return;
    }
    if (job.state !== 'running') {
      if (job.runs.every((r) => jobEnded(r.state))) this.tick();
      return;
    }
    const { log } = this.#ctx;
    if (state === 'failed') background(log, `ending job ${jobId}`, this.#endJob(job, 'failed', `rank ${rank} on ${run.target}: ${error ?? 'failed'}`));
    else if (job.runs.every((r) => jobEnded(r.state))) {
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
    const metrics = Object.fromEntries(Object.entries(summarizeMetrics(await store.jobs.metricSummary(job.id))).map(([k, v]) => [k, { latest: v.latest, best: v.best }]));
    const { record } = await registerModelVersion(this.#ctx, {
      name: reg.name,
      file: this.#opts.artifacts.path(output.sha256),
      sha256: output.sha256,
      size: output.size,
      lineage: { jobId: job.id, target: describeTarget(job.spec.target), metrics },
      allowSignatureChange: true,
    });
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
    if (!current || jobEnded(current.state)) return;
    const at = this.#ctx.now();
    await this.#deferred.run(`job ${job.id}: ${state}`, async () => await store.jobs.setState(job.id, state, at, error));
    clearTimeout(this.#watchdogs.get(job.id));
    this.#watchdogs.delete(job.id);
    events.emit({ type: 'job.state', jobId: job.id, state, error });
    log.info({ jobId: job.id, state, error }, 'job ended');
    if (current.spec.federated) await this.#federated.ended(job.id, state, error);
    for (const r of current.runs) {
      if (jobEnded(r.state)) continue;
      if (r.target === 'local') this.#local.cancel(job.id, r.rank, state === 'canceled' ? 'canceled' : (error ?? state));
      else await this.#devices.publish(r.target);
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
    await this.#federated.stop();
    await this.#local.endAll('the relay running it stopped leading the workspace');
  }

  /** Local runs die with the relay: they are recorded as failed, then killed. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#local.close();
    // A pass under way claims nothing more once closed; what it claimed is recorded below.
    await this.#passing.catch(() => {});
    this.#deferred.close();
    await this.#federated.stop();
    for (const t of this.#watchdogs.values()) clearTimeout(t);
    await this.#local.endAll('the relay shut down while this run was going');
  }
}
