// What a job run sends back while it goes: output lines (and the metric points printed in
// them), and the files it wrote to its output folder. Each is taken only from the target the
// run was given to.

import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { OutpostError, parseMetricJson, parseMetricLine, type JobLine } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';

export const MAX_LOG_LINES_PER_JOB = 50_000;

export interface RunIngestOptions {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  maxOutputBytes?: number;
}

export class RunIngest {
  readonly #ctx: FleetContext;
  readonly #opts: RunIngestOptions;

  constructor(opts: RunIngestOptions) {
    this.#opts = opts;
    this.#ctx = opts.ctx;
  }

  logs(source: string, jobId: string, rank: number, lines: JobLine[]): void {
    const { store, events } = this.#ctx;
    const job = store.getJob(jobId);
    if (job?.runs.find((r) => r.rank === rank)?.target !== source) return;
    const kept = store.appendJobLogs(jobId, lines.map((l) => ({ rank, ts: l.ts, stream: l.stream, text: l.text })), MAX_LOG_LINES_PER_JOB);
    if (kept.length) events.emit({ type: 'job.log', jobId, lines: kept });
    const points = lines.flatMap((l) => (l.stream === 'stdout' ? (parseMetricLine(l.text) ?? []) : []));
    if (points.length) this.#metrics(jobId, rank, points);
  }

  #metrics(jobId: string, rank: number, points: Array<{ name: string; value: number; step: number | null }>): void {
    const ts = this.#ctx.now();
    this.#ctx.store.addJobMetrics(jobId, points.map((p) => ({ rank, ts, ...p })));
    this.#ctx.events.emit({ type: 'job.metric', jobId, rank, points });
  }

  /** Stores one file a run wrote to its output folder. */
  async output(source: string, jobId: string, rank: number, path: string, body: Readable): Promise<void> {
    const job = this.#ctx.store.getJob(jobId);
    if (job?.runs.find((r) => r.rank === rank)?.target !== source) throw new OutpostError('OUTPOST_ERR_FORBIDDEN', `run ${rank} of ${jobId} is not this caller's`);
    const clean = posix.normalize(path);
    if (!clean || posix.isAbsolute(clean) || clean.startsWith('..') || clean.length > 512) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `output path "${path}" is not inside the output folder`);
    const staged = await this.#opts.artifacts.stage(body, { maxBytes: this.#opts.maxOutputBytes ?? 2 * 1024 ** 3 });
    await staged.commit();
    this.#ctx.store.addJobOutput(jobId, { rank, path: clean, sha256: staged.sha256, size: staged.size });
    if (clean === 'metrics.jsonl') {
      const points = readFileSync(this.#opts.artifacts.path(staged.sha256), 'utf8').split('\n').flatMap((l) => parseMetricJson(l) ?? []);
      if (points.length) this.#metrics(jobId, rank, points);
    }
  }
}
