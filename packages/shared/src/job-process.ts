// Runs one job command, on the relay host or a device: a shell in a fresh work folder, held by a
// containment (a cgroup of its own, else environment tracking: job-containment.ts) so that
// cancel, timeout and the end of the run kill every process it started, however it detached.
// Output is split into lines (each capped) and rate-limited, so a job that prints megabytes
// cannot drown its host.

import { spawn } from 'node:child_process';
import { containRun, type ContainmentKind, type ContainmentRecord } from './job-containment.js';

export interface JobProcessOptions {
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs?: number;
  /** Lines of output; called at most `maxLinesPerSec` times a second (the rest are counted). */
  onLine(stream: 'stdout' | 'stderr', text: string): void;
  maxLineBytes?: number;
  maxLinesPerSec?: number;
}

export interface JobProcessResult {
  state: 'succeeded' | 'failed' | 'canceled';
  exitCode: number | null;
  signal: string | null;
  error?: string;
  droppedLines: number;
}

export interface JobProcess {
  pid: number | undefined;
  /** How the run's processes are held, and what finds them again after a crash. */
  containment: ContainmentKind;
  record: ContainmentRecord;
  /** Pids of the run's processes alive now (tests, diagnostics). */
  pids(): number[];
  result: Promise<JobProcessResult>;
  cancel(reason?: string): void;
}

export function runJobProcess(opts: JobProcessOptions): JobProcess {
  const maxLine = opts.maxLineBytes ?? 8192;
  const maxRate = opts.maxLinesPerSec ?? 2000;
  const containment = containRun();
  // The shell waits for a line on stdin before it runs the command, so it is in its cgroup
  // before it can fork; then stdin is at its end, as /dev/null would be.
  const child = spawn('/bin/sh', ['-c', 'read -r _ || :; exec /bin/sh -c "$1"', 'outpost-job', opts.command], {
    cwd: opts.cwd,
    // Only what the job is given: no credentials of the agent or relay leak into it.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: opts.cwd, LANG: process.env.LANG ?? 'C.UTF-8', ...opts.env, ...containment.env },
    detached: true, // own process group as well: kill(-pid) is the first, quickest sweep
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid) containment.adopt(child.pid);
  child.stdin!.on('error', () => {}); // a shell that died at once: its result says so
  child.stdin!.end('\n');
  let windowStart = Date.now();
  let inWindow = 0;
  let dropped = 0;
  let droppedInWindow = 0;
  const emit = (stream: 'stdout' | 'stderr', text: string) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (droppedInWindow > 0) opts.onLine('stderr', `[outpost] ${droppedInWindow} lines of output dropped (over ${maxRate} lines/s)`);
      droppedInWindow = 0;
      windowStart = now;
      inWindow = 0;
    }
    if (++inWindow > maxRate) {
      dropped++;
      droppedInWindow++;
      return;
    }
    opts.onLine(stream, text.length > maxLine ? `${text.slice(0, maxLine)}… [line cut at ${maxLine} bytes]` : text);
  };
  const split = (stream: 'stdout' | 'stderr') => {
    let rest = '';
    child[stream]!.setEncoding('utf8');
    child[stream]!.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        emit(stream, rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
      // A line with no end in sight is cut rather than buffered forever.
      if (rest.length > maxLine) {
        emit(stream, rest);
        rest = '';
      }
    });
    child[stream]!.on('end', () => {
      if (rest) emit(stream, rest);
    });
  };
  split('stdout');
  split('stderr');

  let canceled: string | undefined;
  let timedOut: string | undefined;
  const killGroup = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  let swept: Promise<void> | undefined;
  /** Every process of the run, the group and whatever left it. */
  const killTree = () => {
    killGroup();
    swept = containment.killAll();
    return swept;
  };
  const timer = opts.timeoutMs ? setTimeout(() => {
    timedOut = `timed out after ${Math.round(opts.timeoutMs! / 1000)} s; the whole process tree was killed`;
    void killTree(); // its sweep is kept in `swept` and awaited when the process ends
  }, opts.timeoutMs) : undefined;

  const result = new Promise<JobProcessResult>((resolve) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      void containment.killAll();
      resolve({ state: 'failed', exitCode: null, signal: null, error: `could not start the command: ${err.message}`, droppedLines: 0 });
    });
    // The shell has exited; what it started may live on (and hold its output pipes open, so
    // 'close' would not come). The run is over: end them all, then read what is left.
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      void (async () => {
        await (swept ?? Promise.resolve());
        await killTree();
        const closed = new Promise<void>((r) => (child.stdout!.closed && child.stderr!.closed ? r() : child.once('close', () => r())));
        const grace = new Promise<void>((r) => setTimeout(r, 2000).unref());
        await Promise.race([closed, grace]);
        child.stdout!.destroy();
        child.stderr!.destroy();
        if (canceled) return resolve({ state: 'canceled', exitCode: code, signal, error: canceled, droppedLines: dropped });
        if (timedOut) return resolve({ state: 'failed', exitCode: code, signal, error: timedOut, droppedLines: dropped });
        if (code === 0) return resolve({ state: 'succeeded', exitCode: 0, signal: null, droppedLines: dropped });
        resolve({ state: 'failed', exitCode: code, signal, error: signal ? `killed by ${signal}` : `exited with code ${code}`, droppedLines: dropped });
      })();
    });
  });

  return {
    pid: child.pid,
    containment: containment.kind,
    record: containment.record,
    pids: () => containment.pids(),
    result,
    cancel(reason = 'canceled') {
      canceled ??= reason;
      void killTree();
    },
  };
}
