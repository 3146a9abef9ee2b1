// The aggregation alone, in a process of its own (clean CPU and peak RSS figures), for
// bench/federated/run.ts to set beside what the relay spent on a round. Given a round's global
// model and its clients' updates (files: the very ones the relay stored), it runs FedAvg from
// @outpost/shared one of two ways:
//   pure:  each update already read into memory (its read not timed), then readModelWeights +
//          updateProblem + WeightedAverage.add for each, and result(): the arithmetic and the
//          checks, nothing else;
//   relay: what federated-rounds.ts does in a round: each update read from its file and checked
//          (readFile + readModelWeights + updateProblem), then each read again and added
//          (readFile + readModelWeights + add), result(), its sha256 and a write (staging it).
// Prints one JSON line (and sends it over IPC when forked).

import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeightedAverage, readModelWeights, updateProblem } from '@outpost/shared';
import { memory } from '../proc-stats.js';

export interface AggregateJob {
  mode: 'pure' | 'relay';
  globalFile: string;
  updateFiles: string[];
  numExamples: number[];
  /** Repetitions (each a whole round's aggregation); times are reported per repetition. */
  reps: number;
}

export interface AggregateResult {
  mode: 'pure' | 'relay';
  updates: number;
  modelBytes: number;
  /** Wall ms of each repetition (the timed steps only, for `pure`). */
  ms: number[];
  /** CPU ms of this process over each repetition. */
  cpuMs: number[];
  /**
   * Summed over the repetitions, ms: checkRead (the check pass's reads), check (readModelWeights +
   * updateProblem in `relay`, updateProblem alone in `pure`), read (the averaging pass's reads),
   * weights (readModelWeights), add, result, store (sha256 + write).
   */
  steps: Record<string, number>;
  /** MiB: RSS once the modules and the global model are loaded; the process's VmHWM at the end; largest heap and external memory seen after an update. */
  baseRssMiB: number;
  peakRssMiB: number;
  peakHeapMiB: number;
  peakExternalMiB: number;
}

const MiB = 1024 * 1024;

async function run(job: AggregateJob): Promise<AggregateResult> {
  const globalBuf = readFileSync(job.globalFile);
  const global = readModelWeights(globalBuf);
  const steps: Record<string, number> = { checkRead: 0, check: 0, read: 0, weights: 0, add: 0, result: 0, store: 0 };
  const ms: number[] = [];
  const cpuMs: number[] = [];
  let peakHeap = 0;
  let peakExternal = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakExternal = Math.max(peakExternal, m.external + m.arrayBuffers);
  };
  const timed = async <T>(step: string, f: () => T | Promise<T>): Promise<T> => {
    const t = performance.now();
    const v = await f();
    steps[step]! += performance.now() - t;
    return v;
  };
  const baseRssMiB = memory(process.pid).rssMiB;
  const staging = join(tmpdir(), `outpost-fedbench-aggregate-${process.pid}`);
  try {
    for (let rep = 0; rep < job.reps; rep++) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let untimed = 0;
      const avg = new WeightedAverage(globalBuf, global);
      if (job.mode === 'pure') {
        for (const [i, file] of job.updateFiles.entries()) {
          const r0 = performance.now();
          const buf = readFileSync(file);
          untimed += performance.now() - r0;
          const w = await timed('weights', () => readModelWeights(buf));
          const problem = await timed('check', () => updateProblem(globalBuf, global, buf, w));
          if (problem) throw new Error(`${file}: ${problem}`);
          await timed('add', () => avg.add(buf, w, job.numExamples[i]!));
          sample();
        }
        await timed('result', () => avg.result());
      } else {
        for (const file of job.updateFiles) {
          const buf = await timed('checkRead', () => readFile(file));
          const problem = await timed('check', () => updateProblem(globalBuf, global, buf, readModelWeights(buf)));
          if (problem) throw new Error(`${file}: ${problem}`);
          sample();
        }
        for (const [i, file] of job.updateFiles.entries()) {
          const buf = await timed('read', () => readFile(file));
          const w = await timed('weights', () => readModelWeights(buf));
          await timed('add', () => avg.add(buf, w, job.numExamples[i]!));
          sample();
        }
        const out = await timed('result', () => avg.result());
        await timed('store', async () => {
          createHash('sha256').update(out).digest('hex');
          await writeFile(staging, out);
        });
      }
      ms.push(performance.now() - t0 - untimed);
      const cpu = process.cpuUsage(cpu0);
      // The untimed reads' CPU is small (page cache) and left in; wall time leaves them out.
      cpuMs.push((cpu.user + cpu.system) / 1000);
    }
  } finally {
    rmSync(staging, { force: true });
  }
  const mem = memory(process.pid);
  return { mode: job.mode, updates: job.updateFiles.length, modelBytes: globalBuf.length, ms, cpuMs, steps, baseRssMiB, peakRssMiB: mem.peakMiB, peakHeapMiB: peakHeap / MiB, peakExternalMiB: peakExternal / MiB };
}

const onJob = async (job: AggregateJob) => {
  try {
    const result = await run(job);
    const line = JSON.stringify(result);
    if (process.send) process.send({ ok: true, result }, () => process.exit(0));
    else {
      process.stdout.write(`${line}\n`);
      process.exit(0);
    }
  } catch (err) {
    if (process.send) process.send({ ok: false, error: (err as Error).stack ?? String(err) }, () => process.exit(1));
    else throw err;
  }
};

if (process.send) {
  process.once('message', (job: AggregateJob) => void onJob(job));
  process.on('disconnect', () => process.exit(0));
} else if (process.argv[2]) {
  // By hand: npx tsx bench/federated/aggregate.ts job.json
  void onJob(JSON.parse(readFileSync(process.argv[2], 'utf8')) as AggregateJob);
}
