// Federated jobs, driven on the leading relay: each round asks a sample of the job's clients
// (round-rules.ts) to train from the round's global model, checks each update as it comes
// (updates.ts), averages the good ones at the round's end (FedAvg, weighted by num_examples) into
// the next global model, and after the last round registers the result and rolls it out if
// asked (final-model.ts). Everything a round knows is in the store (`federated_rounds`, job runs,
// outputs, metrics), so a relay that restarts, or another that takes the lead, goes on from the
// round it finds. One pass at a time per job; a round's state only moves on from `running`, in a
// transaction that also finds the job still running, so a cancel mid-pass wins.

import { background, guardedTimeout, jobEnded, type JobRunState } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';
import type { FederatedRoundRecord, FederatedSpec, JobRecord, JobState } from '../store/records.js';
import { KeyedMutex } from '../store/keyed-mutex.js';
import { candidateTargets } from '../jobs/job-queue.js';
import { roundView } from '../jobs/job-views.js';
import { roundVerdict, selectClients, type ClientAnswer } from './round-rules.js';
import { EXAMPLES_METRIC, GlobalModels, UPDATE_FILE, averageUpdates, checkUpdate, roundMetrics } from './updates.js';
import { registerFinalModel } from './final-model.js';

/** How long after a run's end its num_examples may still be on its way (metrics and reports travel apart). */
const METRICS_GRACE_MS = 10_000;
/** A pass that failed (the relay's own trouble: its store, its files) is tried again after this. */
const RETRY_MS = 30_000;

export interface FederatedRoundsOptions {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  /** Publishes a device's desired jobs again (a round's runs begin or end). */
  publish(deviceId: string): Promise<void>;
  /** Records a run's end that the relay decided (a straggler dropped). */
  runUpdate(jobId: string, rank: number, state: JobRunState, error: string): Promise<void>;
  /** Ends the job, the scheduler's one way. */
  end(job: JobRecord, state: JobState, error: string | null): Promise<void>;
  /** Runs `work` while no other placement runs (the scheduler's queue, other federated jobs): one device, one job. */
  placing<T>(work: () => Promise<T>): Promise<T>;
}

export class FederatedRounds {
  readonly #o: FederatedRoundsOptions;
  readonly #ctx: FleetContext;
  readonly #passes = new KeyedMutex();
  /** Jobs with a pass waiting to start: more asks before it starts are the same pass. */
  readonly #queued = new Set<string>();
  /** Passes under way, for stop() to wait on. */
  readonly #running = new Set<Promise<void>>();
  /** The running federated jobs this relay drives: their runs' events wake them. */
  readonly #active = new Set<string>();
  /** Per job, the round deadline's (or a grace period's, or a retry's) timer. */
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** Per job waiting for clients: why, shown by `jobs show`. */
  readonly #waiting = new Map<string, string>();
  /** Answers already decided, by `job:rank` (a run's end does not change). */
  readonly #answers = new Map<string, ClientAnswer>();
  readonly #globals: GlobalModels;
  /** Until resume(): a relay that does not lead drives no round (another does). */
  #stopped = true;

  constructor(o: FederatedRoundsOptions) {
    this.#o = o;
    this.#ctx = o.ctx;
    this.#globals = new GlobalModels(o.artifacts);
  }

  /** Why the job has no round running now (too few clients), or null. */
  waiting(jobId: string): string | null {
    return this.#waiting.get(jobId) ?? null;
  }

  /** Looks at a job again: a run of it changed, its deadline came, or it started. */
  advance(jobId: string): void {
    if (this.#stopped || this.#queued.has(jobId)) return;
    this.#queued.add(jobId);
    const pass = this.#passes.run(jobId, async () => {
      this.#queued.delete(jobId);
      await this.#pass(jobId);
    });
    this.#running.add(pass);
    background(this.#ctx.log, `federated job ${jobId}`, pass.finally(() => this.#running.delete(pass)));
  }

  /** A run of a job changed or reported metrics (here or, with several relays, on another). */
  touched(jobId: string): void {
    if (this.#active.has(jobId)) this.advance(jobId);
  }

  /** Devices came or went: the jobs waiting for clients may start their round. */
  devicesChanged(): void {
    for (const id of this.#waiting.keys()) this.advance(id);
  }

  /** After a restart or on taking the lead: every running federated job goes on where it is. */
  async resume(): Promise<void> {
    this.#stopped = false;
    for (const job of await this.#ctx.store.jobs.inState('running')) if (job.spec.federated) this.advance(job.id);
  }

  /** The job ended (canceled, failed, timed out): a round still running is marked so. */
  async ended(jobId: string, state: JobState, error: string | null): Promise<void> {
    this.#clear(jobId);
    const current = (await this.#ctx.store.rounds.list(jobId)).at(-1);
    if (current?.state === 'running') await this.#moveOn({ ...current, state: 'canceled', finishedAt: this.#ctx.now(), error: error ?? state }, false);
  }

  /** Another relay leads, or this one closes: passes finish, timers stop; the store keeps where each job is. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#running]);
    this.#waiting.clear();
    this.#answers.clear();
    this.#active.clear();
  }

  async #pass(jobId: string): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#steps(jobId);
    } catch (err) {
      // The relay's own trouble (its store, a file of its own): look again later, never stall.
      this.#ctx.log.error({ jobId, err: (err as Error).message }, `federated job ${jobId}: a pass failed; trying again in ${RETRY_MS / 1000} s`);
      if (this.#active.has(jobId)) this.#arm(jobId, this.#ctx.now() + RETRY_MS);
    }
  }

  async #steps(jobId: string): Promise<void> {
    // Each step either waits (returns) or moves the job on; loop until it waits.
    for (let steps = 0; !this.#stopped; steps++) {
      if (steps >= 1000) throw new Error('1000 steps in one pass: something keeps moving the job without waiting');
      const job = await this.#ctx.store.jobs.get(jobId);
      const spec = job?.spec.federated;
      if (!job || !spec || job.state !== 'running') return this.#clear(jobId);
      this.#active.add(jobId);
      const rounds = await this.#ctx.store.rounds.list(jobId);
      const current = rounds.at(-1);
      if (current?.state === 'running') {
        if (!(await this.#close(job, spec, current))) return;
        continue;
      }
      if (current?.state === 'aggregated' && current.round >= spec.rounds) return this.#finish(job, spec, rounds);
      const next = current?.state === 'aggregated' ? { round: current.round + 1, attempt: 1, global: current.resultSha256! } : current ? { round: current.round, attempt: current.attempt + 1, global: current.globalSha256 } : { round: 1, attempt: 1, global: spec.initialModel.sha256 };
      if (next.attempt > spec.maxAttempts) {
        this.#clear(jobId);
        return this.#o.end(job, 'failed', `round ${next.round} had too few good updates ${spec.maxAttempts} times (last: ${current?.error ?? 'unknown'})`);
      }
      if (!(await this.#begin(job, spec, next))) return;
    }
  }

  /** Starts a round's attempt on a sample of the free clients; false when too few are free (it waits). */
  async #begin(job: JobRecord, spec: FederatedSpec, next: { round: number; attempt: number; global: string }): Promise<boolean> {
    const { store, log } = this.#ctx;
    const record = await this.#o.placing(async () => {
      const busy = await store.jobs.busyTargets();
      const available = candidateTargets(job, await store.devices.list()).filter((d) => !busy.has(d));
      const clients = selectClients(available, { fraction: spec.fraction, minClients: spec.minClients }, Math.random);
      if (!clients) {
        const why = `round ${next.round} waits for clients: ${available.length} of the ${spec.minClients} it needs are free (attached for training, consenting, online${job.spec.dataset ? `, with dataset ${job.spec.dataset}` : ''}${job.spec.require?.length ? `, reporting ${job.spec.require.join(' and ')}` : ''}, not running another job)`;
        if (this.#waiting.get(job.id) !== why) log.info({ jobId: job.id, round: next.round, available: available.length, needed: spec.minClients }, why);
        this.#waiting.set(job.id, why);
        return undefined;
      }
      const now = this.#ctx.now();
      let rank = job.runs.reduce((n, r) => Math.max(n, r.rank + 1), 0);
      const r: FederatedRoundRecord = {
        jobId: job.id,
        round: next.round,
        attempt: next.attempt,
        state: 'running',
        globalSha256: next.global,
        resultSha256: null,
        clients: clients.map((deviceId) => ({ deviceId, rank: rank++ })),
        participants: [],
        dropped: [],
        metrics: {},
        startedAt: now,
        deadlineAt: now + spec.roundDeadlineMs,
        finishedAt: null,
        error: null,
      };
      // The round and its runs in one unit, and only for a job still running (a cancel may have come).
      const begun = await store.transaction(async (tx) => {
        if ((await tx.jobs.get(job.id))?.state !== 'running') return false;
        await tx.jobs.addRuns(job.id, r.clients.map((c) => ({ rank: c.rank, target: c.deviceId })), now);
        await tx.rounds.put(r);
        return true;
      });
      return begun ? r : undefined;
    });
    if (!record) return false;
    this.#waiting.delete(job.id);
    this.#emit(record);
    log.info({ jobId: job.id, round: record.round, attempt: record.attempt, clients: record.clients.map((c) => c.deviceId) }, `federated round ${record.round} started on ${record.clients.length} client(s)`);
    for (const c of record.clients) {
      this.#ctx.events.emit({ type: 'job.run', jobId: job.id, rank: c.rank, target: c.deviceId, state: 'starting', exitCode: null, error: null });
      await this.#o.publish(c.deviceId);
    }
    this.#arm(job.id, record.deadlineAt);
    return true;
  }

  /** Closes the running attempt when its verdict is in; false while it still waits. */
  async #close(job: JobRecord, spec: FederatedSpec, round: FederatedRoundRecord): Promise<boolean> {
    const now = this.#ctx.now();
    const global = await this.#globals.get(round.globalSha256);
    const { answers, recheckAt } = await this.#answersOf(job, round, global, now);
    const verdict = roundVerdict({ selected: round.clients.map((c) => c.deviceId), answers, deadlinePassed: now >= round.deadlineAt, minClients: spec.minClients });
    if (verdict.kind === 'wait') {
      this.#arm(job.id, Math.min(round.deadlineAt, recheckAt ?? Number.POSITIVE_INFINITY));
      return false;
    }
    clearTimeout(this.#timers.get(job.id));
    const closed: FederatedRoundRecord = { ...round, dropped: verdict.dropped, finishedAt: now };
    let next: FederatedRoundRecord;
    if (verdict.kind === 'retry') next = { ...closed, state: 'retried', error: verdict.reason };
    else {
      const rankOf = new Map(round.clients.map((c) => [c.deviceId, c.rank]));
      const participants = verdict.clients.map((deviceId) => ({ deviceId, rank: rankOf.get(deviceId)!, numExamples: (answers.get(deviceId) as { numExamples: number }).numExamples }));
      const outputs = await this.#ctx.store.jobs.outputs(job.id, participants.map((p) => p.rank));
      const resultSha256 = await averageUpdates(global, this.#o.artifacts, participants.map((p) => ({ sha256: outputs.find((o) => o.rank === p.rank && o.path === UPDATE_FILE)!.sha256, numExamples: p.numExamples })));
      const metrics = roundMetrics(await this.#ctx.store.jobs.latestMetrics(job.id, participants.map((p) => p.rank)), participants);
      // The round ends when its average is made, not when its verdict came (averaging takes seconds).
      next = { ...closed, state: 'aggregated', participants: participants.map(({ deviceId, numExamples }) => ({ deviceId, numExamples })), metrics, resultSha256, finishedAt: this.#ctx.now() };
    }
    if (!(await this.#moveOn(next))) return false;
    if (verdict.kind === 'retry') this.#ctx.log.warn({ jobId: job.id, round: round.round, attempt: round.attempt, dropped: verdict.dropped }, `federated round ${round.round} tried again: ${verdict.reason}`);
    else this.#ctx.log.info({ jobId: job.id, round: round.round, participants: next.participants.length, dropped: verdict.dropped.length, metrics: next.metrics }, `federated round ${round.round} of ${spec.rounds} aggregated`);
    // Runs still going (stragglers) end now, and their devices are told to stop them.
    const fresh = (await this.#ctx.store.jobs.get(job.id)) ?? job;
    for (const c of round.clients) {
      const run = fresh.runs.find((r) => r.rank === c.rank);
      if (!run || jobEnded(run.state)) continue;
      await this.#o.runUpdate(job.id, c.rank, 'canceled', `dropped from round ${round.round}: no update by the round deadline`);
      await this.#o.publish(c.deviceId);
    }
    return true;
  }

  /** Each client's answer so far, and when to look again for one whose examples may still come. */
  async #answersOf(job: JobRecord, round: FederatedRoundRecord, global: Awaited<ReturnType<GlobalModels['get']>>, now: number): Promise<{ answers: Map<string, ClientAnswer>; recheckAt?: number }> {
    const answers = new Map<string, ClientAnswer>();
    let recheckAt: number | undefined;
    const ended = round.clients.filter((c) => !this.#answers.has(`${job.id}:${c.rank}`) && job.runs.some((r) => r.rank === c.rank && r.state === 'succeeded'));
    const ranks = ended.map((c) => c.rank);
    // Only the ranks newly done are read: their outputs and their latest num_examples.
    const outputs = ranks.length ? await this.#ctx.store.jobs.outputs(job.id, ranks) : [];
    const examples = new Map(ranks.length ? (await this.#ctx.store.jobs.latestMetrics(job.id, ranks)).filter((m) => m.name === EXAMPLES_METRIC).map((m) => [m.rank, m.value]) : []);
    for (const c of round.clients) {
      const key = `${job.id}:${c.rank}`;
      const known = this.#answers.get(key);
      if (known) {
        answers.set(c.deviceId, known);
        continue;
      }
      const run = job.runs.find((r) => r.rank === c.rank);
      if (!run || !jobEnded(run.state)) continue;
      if (run.state !== 'succeeded') {
        this.#decide(key, answers, c.deviceId, { kind: 'failed', reason: `its run ${run.state === 'canceled' ? 'was canceled' : 'failed'}${run.error ? `: ${run.error}` : ''}` });
        continue;
      }
      const n = examples.get(c.rank);
      if (n === undefined && now < (run.finishedAt ?? now) + METRICS_GRACE_MS) {
        recheckAt = Math.min(recheckAt ?? Number.POSITIVE_INFINITY, (run.finishedAt ?? now) + METRICS_GRACE_MS);
        continue;
      }
      const output = outputs.find((o) => o.rank === c.rank && o.path === UPDATE_FILE);
      this.#decide(key, answers, c.deviceId, await checkUpdate(global, this.#o.artifacts, output, n));
    }
    return { answers, ...(recheckAt !== undefined ? { recheckAt } : {}) };
  }

  #decide(key: string, answers: Map<string, ClientAnswer>, deviceId: string, answer: ClientAnswer): void {
    this.#answers.set(key, answer);
    answers.set(deviceId, answer);
  }

  /** After the last round: the final model registered, rolled out if asked; the job succeeds (unless it ended meanwhile). */
  async #finish(job: JobRecord, spec: FederatedSpec, rounds: FederatedRoundRecord[]): Promise<void> {
    this.#clear(job.id);
    try {
      const result = await registerFinalModel(this.#ctx, this.#o.artifacts, job, spec, rounds);
      if (!result.ok) {
        if (result.model) await this.#ctx.store.jobs.setModel(job.id, result.model);
        return this.#o.end(job, 'failed', result.error);
      }
      this.#ctx.log.info({ jobId: job.id, model: result.model.name, version: result.model.version }, 'federated model registered');
      await this.#o.end(job, 'succeeded', null);
    } catch (err) {
      await this.#o.end(job, 'failed', `the rounds finished but the final model was not registered: ${(err as Error).message}`);
    }
  }

  /**
   * Writes an attempt's next state if it is still running (and, unless ending it, its job too):
   * false when something else moved it first (a cancel, another relay).
   */
  async #moveOn(r: FederatedRoundRecord, jobMustRun = true): Promise<boolean> {
    const moved = await this.#ctx.store.transaction(async (tx) => {
      const current = (await tx.rounds.list(r.jobId)).find((x) => x.round === r.round && x.attempt === r.attempt);
      if (current?.state !== 'running') return false;
      if (jobMustRun && (await tx.jobs.get(r.jobId))?.state !== 'running') return false;
      await tx.rounds.put(r);
      return true;
    });
    if (moved) this.#emit(r);
    return moved;
  }

  #emit(r: FederatedRoundRecord): void {
    this.#ctx.events.emit({ type: 'job.round', jobId: r.jobId, round: roundView(r) });
  }

  /** Looks at the job again at `at` (its deadline, a client's overdue examples, a retry). */
  #arm(jobId: string, at: number): void {
    clearTimeout(this.#timers.get(jobId));
    this.#timers.set(jobId, guardedTimeout(this.#ctx.log, `federated job ${jobId} deadline`, Math.max(0, at - this.#ctx.now()) + 5, () => this.advance(jobId)));
  }

  #clear(jobId: string): void {
    clearTimeout(this.#timers.get(jobId));
    this.#timers.delete(jobId);
    this.#waiting.delete(jobId);
    this.#active.delete(jobId);
    for (const key of this.#answers.keys()) if (key.startsWith(`${jobId}:`)) this.#answers.delete(key);
  }
}
