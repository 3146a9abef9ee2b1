// Runs on `local`: child processes of the relay in their own folders, with their log lines
// and outputs ingested like a device's. They die with the relay (or when it stops leading):
// recorded as failed, then killed.

import { createReadStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { background, listOutputs, startJobRun, type JobLine, type JobProcess, type JobRunState } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';
import type { JobRecord } from '../store/records.js';

export interface LocalRunsOptions {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  /** Where runs get their folders. */
  workRoot: string;
  /** Datasets on the relay host. */
  localDatasets?: Record<string, string>;
  /** A run's new state, recorded by the scheduler. */
  update(jobId: string, rank: number, state: JobRunState, exitCode?: number | null, error?: string | null): Promise<void>;
  logs(jobId: string, rank: number, lines: JobLine[]): Promise<unknown>;
  /** Waits until the run's log lines sent so far are stored. */
  settled(jobId: string, rank: number): Promise<void>;
  output(jobId: string, rank: number, path: string, body: Readable): Promise<void>;
}

export class LocalRuns {
  readonly #o: LocalRunsOptions;
  readonly #running = new Map<string, JobProcess>();
  #closed = false;

  constructor(o: LocalRunsOptions) {
    this.#o = o;
  }

  /** Runs one rank to its end; every outcome is recorded through `update`. */
  async run(job: JobRecord, rank: number, worldSize: number): Promise<void> {
    const o = this.#o;
    const key = `${job.id}:${rank}`;
    const root = join(o.workRoot, job.id, String(rank));
    // Closed before it began: the next start ends the run it left pending.
    if (this.#closed) return;
    try {
      const run = await startJobRun({
        root,
        jobId: job.id,
        rank,
        worldSize,
        bundleFile: o.artifacts.path(job.spec.bundleSha256),
        command: job.spec.command,
        env: job.spec.env,
        dataDir: job.spec.dataset ? o.localDatasets?.[job.spec.dataset] : undefined,
        timeoutMs: job.spec.timeoutMs,
        onLines: (lines) => background(o.ctx.log, `storing job ${job.id}'s log lines`, o.logs(job.id, rank, lines)),
      });
      this.#running.set(key, run.process);
      // Closed while it was being set up: endAll() went through the runs before it was there.
      if (this.#closed) run.process.cancel('the relay shut down while this run was starting');
      await o.update(job.id, rank, 'running');
      const result = await run.process.result;
      // endAll() has recorded how this run ended.
      if (this.#closed || this.#running.get(key) !== run.process) return;
      // Its last lines are still being stored: the run takes nothing once it has ended.
      await o.settled(job.id, rank);
      for (const out of listOutputs(run.outputDir)) await o.output(job.id, rank, out.path, createReadStream(out.file));
      await o.update(job.id, rank, result.state, result.exitCode, result.error ?? null);
    } catch (err) {
      if (!this.#closed) await o.update(job.id, rank, 'failed', null, (err as Error).message);
    } finally {
      this.#running.delete(key);
      rmSync(root, { recursive: true, force: true });
    }
  }

  /** Stops one run (its job ended); how it ended is recorded by whoever ended the job. */
  cancel(jobId: string, rank: number, why: string): void {
    this.#running.get(`${jobId}:${rank}`)?.cancel(why);
  }

  /** The relay is shutting down: no run starts or records anything more (endAll records them). */
  close(): void {
    this.#closed = true;
  }

  /** Records every run as failed for `why`, with its job, then kills it. */
  async endAll(why: string): Promise<void> {
    const { store } = this.#o.ctx;
    const now = this.#o.ctx.now();
    for (const [key, p] of this.#running) {
      const [jobId, rank] = key.split(':') as [string, string];
      await store.jobs.setRunState(jobId, Number(rank), 'failed', now, null, why);
      if ((await store.jobs.get(jobId))?.state === 'running') await store.jobs.setState(jobId, 'failed', now, why);
      this.#running.delete(key);
      p.cancel(why);
    }
  }
}
