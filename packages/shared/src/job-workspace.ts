// One job run's folders and environment, the same on the relay host (`local`) and on a device:
// a fresh work folder holding the unpacked bundle, an output folder, and the OUTPOST_*
// variables that let the same bundle run unchanged on any target.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { unpackBundle } from './bundle.js';
import { runJobProcess, type JobProcess } from './job-process.js';
import { endRecordedRun, type ContainmentRecord } from './job-containment.js';

const RUN_RECORD_FILE = 'run.json';

export interface JobLine {
  ts: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface JobRunOptions {
  /** Folder under which this run's folders are made (removed first if it exists). */
  root: string;
  jobId: string;
  rank: number;
  worldSize: number;
  /** The job's bundle, unpacked into the work folder; none for the agent's own programs (scoring). */
  bundleFile?: string;
  command: string;
  env: Record<string, string>;
  /** A dataset folder on this host, or undefined for an empty data folder. */
  dataDir?: string;
  timeoutMs?: number;
  /** A federated round's client: the global model (copied into the run's folder), the round and FedProx's mu. */
  federated?: { globalModelFile: string; round: number; proximalMu: number };
  /** Output limits (see runJobProcess). */
  maxLinesPerSec?: number;
  maxLineBytes?: number;
  /** Output lines, in batches (every 100 ms, or 200 lines). */
  onLines(lines: JobLine[]): void;
}

export interface JobRun {
  process: JobProcess;
  outputDir: string;
}

export async function startJobRun(opts: JobRunOptions): Promise<JobRun> {
  rmSync(opts.root, { recursive: true, force: true });
  const workDir = join(opts.root, 'work');
  const outputDir = join(opts.root, 'output');
  mkdirSync(outputDir, { recursive: true, mode: 0o700 });
  if (opts.bundleFile) await unpackBundle(opts.bundleFile, workDir);
  else mkdirSync(workDir, { recursive: true, mode: 0o700 });
  let dataDir = opts.dataDir;
  if (!dataDir) {
    dataDir = join(opts.root, 'data');
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  }
  const federatedEnv: Record<string, string> = {};
  if (opts.federated) {
    // A copy: the client may write over its input, the cached file stays whole.
    const globalModel = join(opts.root, 'global-model.onnx');
    await copyFile(opts.federated.globalModelFile, globalModel);
    Object.assign(federatedEnv, { OUTPOST_GLOBAL_MODEL: globalModel, OUTPOST_ROUND: String(opts.federated.round), OUTPOST_PROXIMAL_MU: String(opts.federated.proximalMu) });
  }
  let batch: JobLine[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (batch.length === 0) return;
    const lines = batch;
    batch = [];
    opts.onLines(lines);
  };
  const proc = runJobProcess({
    command: opts.command,
    cwd: workDir,
    timeoutMs: opts.timeoutMs,
    maxLinesPerSec: opts.maxLinesPerSec,
    maxLineBytes: opts.maxLineBytes,
    env: {
      ...opts.env,
      OUTPOST_JOB_ID: opts.jobId,
      OUTPOST_OUTPUT_DIR: outputDir,
      OUTPOST_DATA_DIR: dataDir,
      OUTPOST_RANK: String(opts.rank),
      OUTPOST_WORLD_SIZE: String(opts.worldSize),
      ...federatedEnv,
    },
    onLine: (stream, text) => {
      batch.push({ ts: Date.now(), stream, text });
      if (batch.length >= 200) flush();
      else timer ??= setTimeout(flush, 100);
    },
  });
  // A program killed with its runs going finds them again from this file when it restarts.
  writeFileSync(join(opts.root, RUN_RECORD_FILE), JSON.stringify(proc.record), { mode: 0o600 });
  // Lines still batched when the process ends go out before its result is seen.
  const result = proc.result.then((r) => {
    flush();
    return r;
  });
  return { process: { ...proc, result }, outputDir };
}

/** Files the job wrote to its output folder, as paths relative to it. */
export function listOutputs(outputDir: string): Array<{ path: string; file: string; size: number }> {
  const out: Array<{ path: string; file: string; size: number }> = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.isFile()) out.push({ path: relative(outputDir, file).split('\\').join('/'), file, size: statSync(file).size });
    }
  };
  walk(outputDir);
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * After a crash (kill -9, power loss): ends every process of the runs a previous life left under
 * `workRoot` (their run.json records, one or two folders down) and removes their folders.
 * Returns how many runs it found.
 */
export async function cleanUpLeftoverRuns(workRoot: string): Promise<number> {
  if (!existsSync(workRoot)) return 0;
  let runs = 0;
  const visit = async (dir: string, depth: number) => {
    const record = join(dir, RUN_RECORD_FILE);
    if (existsSync(record)) {
      try {
        await endRecordedRun(JSON.parse(readFileSync(record, 'utf8')) as ContainmentRecord);
      } catch {
        // an unreadable record: its folder still goes
      }
      runs++;
      return;
    }
    if (depth === 0) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) await visit(join(dir, entry.name), depth - 1);
  };
  await visit(workRoot, 2);
  for (const entry of readdirSync(workRoot)) rmSync(join(workRoot, entry), { recursive: true, force: true });
  return runs;
}
