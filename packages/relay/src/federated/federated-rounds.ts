// Federated jobs, driven on the leading relay: each round asks a sample of the job's clients
// (round-rules.ts) to train from the round's global model, checks each update as it comes,
// averages the good ones at the round's end (FedAvg, weighted by num_examples) into the next
// global model, and after the last round registers the result (and rolls it out, if asked).
// Everything a round knows is in the store (`federated_rounds`, job runs, outputs, metrics), so
// a relay that restarts, or another that takes the lead, goes on from the round it finds.

import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { WeightedAverage, background, guardedTimeout, jobEnded, readModelWeights, updateProblem, type JobRunState, type ModelWeights } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';
import { createDeployment } from '../fleet/deployments.js';
import { registerModelVersion } from '../fleet/model-registration.js';
import type { FederatedRoundRecord, FederatedSpec, JobRecord, JobState } from '../store/records.js';
import { KeyedMutex } from '../store/keyed-mutex.js';
import { candidateTargets } from '../jobs/job-queue.js';
import { describeTarget, roundView } from '../jobs/job-views.js';
import { roundVerdict, selectClients, type ClientAnswer } from './round-rules.js';

/** The file a client writes its update to, in OUTPOST_OUTPUT_DIR. */
export const UPDATE_FILE = 'model.onnx';
/** The metric a client weights its update with. */
export const EXAMPLES_METRIC = 'num_examples';
/** How long after a run's end its num_examples may still be on its way (metrics and reports travel apart). */
const METRICS_GRACE_MS = 10_000;

export interface FederatedRoundsOptions {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  /** Publishes a device's desired jobs again (a round's runs begin or end). */
  publish(deviceId: string): Promise<void>;
  /** Records a run's end that the relay decided (a straggler dropped). */
  runUpdate(jobId: string, rank: number, state: JobRunState, error: string): Promise<void>;
  /** Ends the job, the scheduler's one way. */
  end(job: JobRecord, state: JobState, error: string | null): Promise<void>;
}

export class FederatedRounds {
  readonly #o: FederatedRoundsOptions;
  readonly #ctx: FleetContext;
  readonly #passes = new KeyedMutex();
  /** Per job, the round deadline's (or a grace period's) timer. */
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** Per job waiting for clients: why, shown by `jobs show`. */
  readonly #waiting = new Map<string, string>();
  /** Answers already decided, by `job:rank` (a run's end does not change). */
  readonly #answers = new Map<string, ClientAnswer>();
  /** Until resume(): a relay that does not lead drives no round (another does). */
  #stopped = true;

  constructor(o: FederatedRoundsOptions) {
    this.#o = o;
    this.#ctx = o.ctx;
  }

  /** Why the job has no round running now (too few clients), or null. */
  waiting(jobId: string): string | null {
    return this.#waiting.get(jobId) ?? null;
  }

  /** Looks at a job again: a run of it changed, its deadline came, or it started. */
  advance(jobId: string): void {
    if (this.#stopped) return;
    background(this.#ctx.log, `federated job ${jobId}`, this.#passes.run(jobId, () => this.#pass(jobId)));
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
    if (current?.state !== 'running') return;
    await this.#put({ ...current, state: 'canceled', finishedAt: this.#ctx.now(), error: error ?? state });
  }

  /** Another relay leads, or this one closes: timers stop; the store keeps where each job is. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#waiting.clear();
  }

  async #pass(jobId: string): Promise<void> {
    if (this.#stopped) return;
    const job = await this.#ctx.store.jobs.get(jobId);
    const spec = job?.spec.federated;
    if (!job || !spec || job.state !== 'running') return this.#clear(jobId);
    // Each step either waits (returns) or moves the job on; loop until it waits.
    for (let steps = 0; steps < 1000 && !this.#stopped; steps++) {
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
      if (!(await this.#begin((await this.#ctx.store.jobs.get(jobId))!, spec, next))) return;
    }
  }

  /** Starts a round's attempt on a sample of the free clients; false when too few are free (it waits). */
  async #begin(job: JobRecord, spec: FederatedSpec, next: { round: number; attempt: number; global: string }): Promise<boolean> {
    const { store, log } = this.#ctx;
    const busy = await store.jobs.busyTargets();
    const available = candidateTargets(job, await store.devices.list()).filter((d) => !busy.has(d));
    const clients = selectClients(available, { fraction: spec.fraction, minClients: spec.minClients }, Math.random);
    if (!clients) {
      const why = `round ${next.round} waits for clients: ${available.length} of the ${spec.minClients} it needs are free (attached for training, consenting, online${job.spec.dataset ? `, with dataset ${job.spec.dataset}` : ''}, not running another job)`;
      if (this.#waiting.get(job.id) !== why) log.info({ jobId: job.id, round: next.round, available: available.length, needed: spec.minClients }, why);
      this.#waiting.set(job.id, why);
      return false;
    }
    this.#waiting.delete(job.id);
    const now = this.#ctx.now();
    let rank = job.runs.reduce((n, r) => Math.max(n, r.rank + 1), 0);
    const record: FederatedRoundRecord = {
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
    // The round and its runs in one unit: a run is never without the round that says what it trains from.
    await store.transaction(async (tx) => {
      await tx.jobs.addRuns(job.id, record.clients.map((c) => ({ rank: c.rank, target: c.deviceId })), now);
      await tx.rounds.put(record);
    });
    this.#emit(record);
    log.info({ jobId: job.id, round: record.round, attempt: record.attempt, clients }, `federated round ${record.round} started on ${clients.length} client(s)`);
    for (const c of record.clients) {
      const run = { rank: c.rank, target: c.deviceId, state: 'starting' as const, exitCode: null, error: null };
      this.#ctx.events.emit({ type: 'job.run', jobId: job.id, ...run });
      await this.#o.publish(c.deviceId);
    }
    this.#arm(job.id, record.deadlineAt);
    return true;
  }

  /** Closes the running attempt when its verdict is in; false while it still waits. */
  async #close(job: JobRecord, spec: FederatedSpec, round: FederatedRoundRecord): Promise<boolean> {
    const now = this.#ctx.now();
    const fresh = (await this.#ctx.store.jobs.get(job.id))!;
    const { answers, recheckAt } = await this.#answersOf(fresh, round, now);
    const verdict = roundVerdict({ selected: round.clients.map((c) => c.deviceId), answers, deadlinePassed: now >= round.deadlineAt, minClients: spec.minClients });
    if (verdict.kind === 'wait') {
      this.#arm(job.id, Math.min(round.deadlineAt, recheckAt ?? Number.POSITIVE_INFINITY));
      return false;
    }
    this.#clear(job.id);
    // Runs still going (stragglers) end now; their devices stop them.
    for (const c of round.clients) {
      const run = fresh.runs.find((r) => r.rank === c.rank);
      if (run && !jobEnded(run.state)) await this.#o.runUpdate(job.id, c.rank, 'canceled', `dropped from round ${round.round}: no update by the round deadline`);
    }
    const closed: FederatedRoundRecord = { ...round, dropped: verdict.dropped, finishedAt: now };
    if (verdict.kind === 'retry') {
      this.#ctx.log.warn({ jobId: job.id, round: round.round, attempt: round.attempt, dropped: verdict.dropped }, `federated round ${round.round} tried again: ${verdict.reason}`);
      await this.#put({ ...closed, state: 'retried', error: verdict.reason });
      return true;
    }
    const rankOf = new Map(round.clients.map((c) => [c.deviceId, c.rank]));
    const participants = verdict.clients.map((deviceId) => ({ deviceId, numExamples: (answers.get(deviceId) as { numExamples: number }).numExamples }));
    const resultSha256 = await this.#aggregate(job, round, participants.map((p) => ({ rank: rankOf.get(p.deviceId)!, numExamples: p.numExamples })));
    const metrics = await this.#roundMetrics(job.id, participants.map((p) => ({ rank: rankOf.get(p.deviceId)!, numExamples: p.numExamples })));
    await this.#put({ ...closed, state: 'aggregated', participants, metrics, resultSha256 });
    this.#ctx.log.info({ jobId: job.id, round: round.round, participants: participants.length, dropped: verdict.dropped.length, metrics }, `federated round ${round.round} of ${spec.rounds} aggregated`);
    return true;
  }

  /** Each client's answer so far, and when to look again for one whose examples may still come. */
  async #answersOf(job: JobRecord, round: FederatedRoundRecord, now: number): Promise<{ answers: Map<string, ClientAnswer>; recheckAt?: number }> {
    const answers = new Map<string, ClientAnswer>();
    let recheckAt: number | undefined;
    let outputs: Awaited<ReturnType<FleetContext['store']['jobs']['outputs']>> | undefined;
    let examples: Map<number, number> | undefined;
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
      outputs ??= await this.#ctx.store.jobs.outputs(job.id);
      examples ??= await this.#examples(job.id);
      const n = examples.get(c.rank);
      if (n === undefined && now < (run.finishedAt ?? now) + METRICS_GRACE_MS) {
        recheckAt = Math.min(recheckAt ?? Number.POSITIVE_INFINITY, (run.finishedAt ?? now) + METRICS_GRACE_MS);
        continue;
      }
      const output = outputs.find((o) => o.rank === c.rank && o.path === UPDATE_FILE);
      this.#decide(key, answers, c.deviceId, await this.#check(round, output, n));
    }
    return { answers, ...(recheckAt !== undefined ? { recheckAt } : {}) };
  }

  #decide(key: string, answers: Map<string, ClientAnswer>, deviceId: string, answer: ClientAnswer): void {
    this.#answers.set(key, answer);
    answers.set(deviceId, answer);
  }

  /** The latest num_examples each rank reported. */
  async #examples(jobId: string): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const m of await this.#ctx.store.jobs.metrics(jobId)) if (m.name === EXAMPLES_METRIC) out.set(m.rank, m.value);
    return out;
  }

  /** Whether an update can be averaged into the round's global model, and its weight. */
  async #check(round: FederatedRoundRecord, output: { sha256: string; size: number } | undefined, numExamples: number | undefined): Promise<ClientAnswer> {
    if (!output) return { kind: 'refused', reason: `the run wrote no ${UPDATE_FILE} in OUTPOST_OUTPUT_DIR` };
    if (numExamples === undefined) return { kind: 'refused', reason: `the run reported no ${EXAMPLES_METRIC} (print "outpost:metric ${EXAMPLES_METRIC}=N")` };
    if (!Number.isSafeInteger(numExamples) || numExamples <= 0) return { kind: 'refused', reason: `${EXAMPLES_METRIC} is ${numExamples}: it must be a whole number above 0` };
    const globalSize = (await this.#o.artifacts.size(round.globalSha256)) ?? 0;
    // The same initializers take the same bytes; a little slack for encoders that pack differently.
    const bound = 2 * globalSize + 1024 * 1024;
    if (output.size > bound) return { kind: 'refused', reason: `its ${UPDATE_FILE} is ${output.size} bytes, over ${bound} (twice the global model's ${globalSize} and 1 MiB)` };
    try {
      const global = await this.#weights(round.globalSha256);
      const buf = await readFile(this.#o.artifacts.path(output.sha256));
      const problem = updateProblem(global.buf, global.weights, buf, readModelWeights(buf));
      return problem ? { kind: 'refused', reason: problem } : { kind: 'update', numExamples };
    } catch (err) {
      return { kind: 'refused', reason: `its ${UPDATE_FILE} cannot be read as an ONNX model: ${(err as Error).message}` };
    }
  }

  /** The global model of the round being checked, read once while its round runs. */
  #global: { sha256: string; buf: Buffer; weights: ModelWeights } | undefined;
  async #weights(sha256: string): Promise<{ buf: Buffer; weights: ModelWeights }> {
    if (this.#global?.sha256 !== sha256) {
      const buf = await readFile(this.#o.artifacts.path(sha256));
      this.#global = { sha256, buf, weights: readModelWeights(buf) };
    }
    return this.#global;
  }

  /** Averages the participants' updates into the next global model, stored as an artifact. */
  async #aggregate(job: JobRecord, round: FederatedRoundRecord, participants: Array<{ rank: number; numExamples: number }>): Promise<string> {
    const outputs = await this.#ctx.store.jobs.outputs(job.id);
    const global = await this.#weights(round.globalSha256);
    const avg = new WeightedAverage(global.buf, global.weights);
    for (const p of participants) {
      const output = outputs.find((o) => o.rank === p.rank && o.path === UPDATE_FILE)!;
      const buf = await readFile(this.#o.artifacts.path(output.sha256));
      avg.add(buf, readModelWeights(buf), p.numExamples);
    }
    const staged = await this.#o.artifacts.stage(Readable.from([avg.result()]));
    await staged.commit();
    return staged.sha256;
  }

  /** Each metric's latest value per participant, averaged weighted by examples; num_examples summed. */
  async #roundMetrics(jobId: string, participants: Array<{ rank: number; numExamples: number }>): Promise<Record<string, number>> {
    const weight = new Map(participants.map((p) => [p.rank, p.numExamples]));
    const latest = new Map<string, Map<number, number>>();
    for (const m of await this.#ctx.store.jobs.metrics(jobId)) {
      if (!weight.has(m.rank) || m.name === EXAMPLES_METRIC) continue;
      if (!latest.has(m.name)) latest.set(m.name, new Map());
      latest.get(m.name)!.set(m.rank, m.value);
    }
    const out: Record<string, number> = { [EXAMPLES_METRIC]: participants.reduce((n, p) => n + p.numExamples, 0) };
    for (const [name, byRank] of latest) {
      let sum = 0;
      let total = 0;
      for (const [rank, value] of byRank) {
        sum += value * weight.get(rank)!;
        total += weight.get(rank)!;
      }
      if (total > 0) out[name] = sum / total;
    }
    return out;
  }

  /** After the last round: the final model registered with its lineage, rolled out if asked; the job succeeds. */
  async #finish(job: JobRecord, spec: FederatedSpec, rounds: FederatedRoundRecord[]): Promise<void> {
    this.#clear(job.id);
    const last = rounds.at(-1)!;
    const name = job.spec.registerModel?.name ?? spec.initialModel.name;
    const participants = [...new Set(rounds.flatMap((r) => r.participants.map((p) => p.deviceId)))].sort();
    try {
      const initial = await this.#ctx.store.models.get(spec.initialModel.name, spec.initialModel.version);
      const sample = initial?.sample ? { ...initial.sample, file: this.#o.artifacts.path(initial.sample.sha256) } : undefined;
      const { record, selfTest } = await registerModelVersion(this.#ctx, {
        name,
        file: this.#o.artifacts.path(last.resultSha256!),
        sha256: last.resultSha256!,
        size: (await this.#o.artifacts.size(last.resultSha256!)) ?? 0,
        ...(sample ? { sample } : {}),
        lineage: {
          jobId: job.id,
          target: describeTarget(job.spec.target),
          metrics: Object.fromEntries(Object.entries(last.metrics).map(([k, v]) => [k, { latest: v, best: v }])),
          federated: { rounds: rounds.filter((r) => r.state === 'aggregated').length, participants, initialModel: { name: spec.initialModel.name, version: spec.initialModel.version } },
        },
        allowSignatureChange: false,
      });
      const model: { name: string; version: number; deploymentId?: string } = { name: record.name, version: record.version };
      if (!selfTest.ok) {
        await this.#ctx.store.jobs.setModel(job.id, model);
        return this.#o.end(job, 'failed', `the final model (${record.name}:${record.version}) failed its self-test: ${selfTest.error ?? 'no reason given'}${spec.deploy ? '; it was not rolled out' : ''}`);
      }
      if (spec.deploy) {
        const { deployment } = await createDeployment(this.#ctx, { model: record.name, version: record.version, selector: spec.deploy.selector, ...(spec.deploy.strategy ? { strategy: spec.deploy.strategy } : {}), allowEmpty: true });
        model.deploymentId = deployment.id;
        this.#ctx.log.info({ jobId: job.id, model: record.name, version: record.version, deploymentId: deployment.id }, 'federated model rolled out');
      }
      await this.#ctx.store.jobs.setModel(job.id, model);
      this.#ctx.log.info({ jobId: job.id, model: record.name, version: record.version, participants: participants.length }, 'federated model registered');
      await this.#o.end(job, 'succeeded', null);
    } catch (err) {
      await this.#o.end(job, 'failed', `the rounds finished but the final model was not registered: ${(err as Error).message}`);
    }
  }

  async #put(r: FederatedRoundRecord): Promise<void> {
    await this.#ctx.store.rounds.put(r);
    this.#emit(r);
  }

  #emit(r: FederatedRoundRecord): void {
    this.#ctx.events.emit({ type: 'job.round', jobId: r.jobId, round: roundView(r) });
  }

  /** Looks at the job again at `at` (its deadline, or when a client's examples are overdue). */
  #arm(jobId: string, at: number): void {
    clearTimeout(this.#timers.get(jobId));
    this.#timers.set(jobId, guardedTimeout(this.#ctx.log, `federated job ${jobId} deadline`, Math.max(0, at - this.#ctx.now()) + 5, () => this.advance(jobId)));
  }

  #clear(jobId: string): void {
    clearTimeout(this.#timers.get(jobId));
    this.#timers.delete(jobId);
    this.#waiting.delete(jobId);
    for (const key of this.#answers.keys()) if (key.startsWith(`${jobId}:`)) this.#answers.delete(key);
    if (this.#global && !this.#timers.size) this.#global = undefined;
  }
}
