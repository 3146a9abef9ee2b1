// What a job run sends back while it goes: output lines (and the metric points printed in
// them), and the files it wrote to its output folder. Each is taken only from the target the
// run was given to, only while the run is live, and only up to the run's quotas: a device that
// once ran a job cannot fill the relay's database through it, before or after it ended.

import { SerialQueues } from '../fleet/serial-queues.js';
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { OutpostError, parseMetricJson, parseMetricLine, type JobLine, type MetricPoint } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';
import type { JobRecord } from '../store/records.js';

export interface RunQuotas {
  /** Log lines kept per run; past it one line says so and the rest are dropped. */
  logLines: number;
  /** Metric points kept per run (from log lines and metrics.jsonl together). */
  metricPoints: number;
  /** Output files per run. */
  outputFiles: number;
  /** Largest output file (bytes). */
  outputBytes: number;
}

export const DEFAULT_RUN_QUOTAS: RunQuotas = { logLines: 50_000, metricPoints: 20_000, outputFiles: 1_000, outputBytes: 2 * 1024 ** 3 };

/** metrics.jsonl lines longer than this are skipped, not buffered. */
const MAX_METRIC_JSON_LINE = 64 * 1024;
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

interface RunCounts {
  logs: number;
  metrics: number;
  outputs: number;
  /** Quotas this run has been told it reached (once each). */
  told: Set<string>;
}

export interface RunIngestOptions {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  quotas?: Partial<RunQuotas>;
}

/** Log batches of one run waiting for the one before them, past which more are dropped. */
const RUN_BACKLOG = 1024;

export class RunIngest {
  readonly quotas: RunQuotas;
  readonly #ctx: FleetContext;
  readonly #artifacts: ArtifactStore;
  /** Counts of live runs, read from the store the first time a run sends something. */
  readonly #counts = new Map<string, RunCounts>();
  readonly #batches = new SerialQueues(RUN_BACKLOG);

  constructor(opts: RunIngestOptions) {
    this.#ctx = opts.ctx;
    this.#artifacts = opts.artifacts;
    this.quotas = { ...DEFAULT_RUN_QUOTAS, ...opts.quotas };
  }

  /** The run, when `source` may send for it now; else why not. */
  async #live(source: string, jobId: string, rank: number): Promise<{ job: JobRecord; counts: RunCounts } | string> {
    const key = `${jobId}:${rank}`;
    const job = await this.#ctx.store.jobs.get(jobId);
    const run = job?.runs.find((r) => r.rank === rank);
    if (!job || run?.target !== source) return `run ${rank} of ${jobId} is not this sender's`;
    if (job.state !== 'running' || TERMINAL.has(run.state)) {
      this.#counts.delete(key);
      return `run ${rank} of ${jobId} has ended (${job.state === 'running' ? run.state : job.state}); nothing more is taken for it`;
    }
    let counts = this.#counts.get(key);
    if (!counts) {
      counts = { ...(await this.#ctx.store.jobs.countRunRecords(jobId, rank)), told: new Set() };
      this.#counts.set(key, counts);
    }
    return { job, counts };
  }

  /** A run reached a quota: one line in its log says so, and (for a device) a quota event. */
  async #reached(source: string, job: JobRecord, rank: number, counts: RunCounts, quota: keyof RunQuotas, what: string): Promise<void> {
    if (counts.told.has(quota)) return;
    counts.told.add(quota);
    const text = `[outpost] this run reached its quota of ${this.quotas[quota]} ${what}; more are dropped`;
    const [line] = await this.#ctx.store.jobs.appendLogs(job.id, [{ rank, ts: this.#ctx.now(), stream: 'stderr', text }], Number.MAX_SAFE_INTEGER);
    if (line) this.#ctx.events.emit({ type: 'job.log', jobId: job.id, lines: [line] });
    if (source !== 'local') this.#ctx.quota.exceeded(source, `run-${quota}`, 'dropped', `${job.id} rank ${rank}: ${text.slice(11)}`);
  }

  /**
   * Output lines of a run; returns why they were refused, or null. One batch of a run at a
   * time, in arrival order: each counts what the ones before it kept.
   */
  logs(source: string, jobId: string, rank: number, lines: JobLine[]): Promise<string | null> {
    const inOrder = this.#batches.run(`${jobId}:${rank}`, () => this.#logs(source, jobId, rank, lines));
    return inOrder ?? Promise.resolve(`run ${rank} of ${jobId} has ${RUN_BACKLOG} batches waiting already; this one is dropped`);
  }

  /** Settles once the run's log batches taken so far are stored (before its end is recorded). */
  settled(jobId: string, rank: number): Promise<void> {
    return this.#batches.drained(`${jobId}:${rank}`);
  }

  async #logs(source: string, jobId: string, rank: number, lines: JobLine[]): Promise<string | null> {
    const live = await this.#live(source, jobId, rank);
    if (typeof live === 'string') return live;
    const { job, counts } = live;
    const room = Math.max(0, this.quotas.logLines - counts.logs);
    const taken = lines.slice(0, room);
    if (taken.length) {
      const kept = await this.#ctx.store.jobs.appendLogs(jobId, taken.map((l) => ({ rank, ts: l.ts, stream: l.stream, text: l.text })), Number.MAX_SAFE_INTEGER);
      counts.logs += kept.length;
      if (kept.length) this.#ctx.events.emit({ type: 'job.log', jobId, lines: kept });
    }
    if (taken.length < lines.length) await this.#reached(source, job, rank, counts, 'logLines', 'log lines');
    const points = lines.flatMap((l) => (l.stream === 'stdout' ? (parseMetricLine(l.text) ?? []) : []));
    if (points.length) await this.#metrics(source, job, rank, counts, points);
    return null;
  }

  async #metrics(source: string, job: JobRecord, rank: number, counts: RunCounts, points: MetricPoint[]): Promise<void> {
    const room = Math.max(0, this.quotas.metricPoints - counts.metrics);
    const taken = points.slice(0, room);
    if (taken.length) {
      const ts = this.#ctx.now();
      await this.#ctx.store.jobs.addMetrics(job.id, taken.map((p) => ({ rank, ts, ...p })));
      counts.metrics += taken.length;
      this.#ctx.events.emit({ type: 'job.metric', jobId: job.id, rank, points: taken });
    }
    if (taken.length < points.length) await this.#reached(source, job, rank, counts, 'metricPoints', 'metric points');
  }

  /**
   * Stores one file a run wrote to its output folder. Everything that can refuse it is checked
   * before a byte of the body is read.
   */
  async output(source: string, jobId: string, rank: number, path: string, body: Readable): Promise<void> {
    const live = await this.#live(source, jobId, rank);
    if (typeof live === 'string') throw new OutpostError(live.includes('ended') ? 'OUTPOST_ERR_CONFLICT' : 'OUTPOST_ERR_FORBIDDEN', live);
    const { job, counts } = live;
    const clean = posix.normalize(path);
    if (!clean || posix.isAbsolute(clean) || clean.startsWith('..') || clean.length > 512) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `output path "${path}" is not inside the output folder`);
    if (counts.outputs >= this.quotas.outputFiles) {
      await this.#reached(source, job, rank, counts, 'outputFiles', 'output files');
      throw new OutpostError('OUTPOST_ERR_QUOTA_EXCEEDED', `run ${rank} of ${jobId} already stored ${this.quotas.outputFiles} output files, its quota`);
    }
    const staged = await this.#artifacts.stage(body, { maxBytes: this.quotas.outputBytes });
    await staged.commit();
    counts.outputs++;
    await this.#ctx.store.jobs.addOutput(jobId, { rank, path: clean, sha256: staged.sha256, size: staged.size });
    if (clean === 'metrics.jsonl') {
      for await (const line of boundedLines(createReadStream(this.#artifacts.path(staged.sha256)), MAX_METRIC_JSON_LINE)) {
        const points = parseMetricJson(line);
        if (points) await this.#metrics(source, job, rank, counts, points);
        if (counts.metrics >= this.quotas.metricPoints) break;
      }
    }
  }
}

/** The lines of a stream, without buffering any line past `maxLine` characters (those are skipped). */
export async function* boundedLines(stream: Readable, maxLine: number): AsyncGenerator<string> {
  let rest = '';
  let skipping = false;
  stream.setEncoding('utf8');
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      let start = 0;
      let nl: number;
      while ((nl = chunk.indexOf('\n', start)) >= 0) {
        const line = rest + chunk.slice(start, nl);
        rest = '';
        start = nl + 1;
        if (!skipping && line.length <= maxLine) yield line;
        skipping = false;
      }
      if (!skipping) rest += chunk.slice(start);
      if (rest.length > maxLine) {
        rest = '';
        skipping = true;
      }
    }
    if (!skipping && rest) yield rest;
  } finally {
    stream.destroy();
  }
}
