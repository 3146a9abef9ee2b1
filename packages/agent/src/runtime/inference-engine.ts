// The sessions of one model file: `instances` worker threads (session-worker.ts), each with
// its own onnxruntime session, so runs proceed in parallel with each other and with the HTTP
// server on the main thread. The main thread never loads onnxruntime itself. A thread that
// dies is replaced, so the model keeps serving without waiting for another deployment.

import { Worker } from 'node:worker_threads';
import type { ModelSignature, ServingConfig } from '@outpost/shared';
import type { WireTensor, WorkerReply, WorkerRequest } from './worker-protocol.js';

const WORKER = new URL('./session-worker.js', import.meta.url);

/**
 * The ArrayBuffers under the feeds, to move (not copy) to the session thread: cloning a 100 KB
 * tensor costs more than the run of a small model. Views keep their offsets across the move,
 * so a tensor inside a request body moves with the body. The caller hands the buffers over
 * (ServedModel.infer takes ownership of its inputs); strings are cloned.
 */
function buffersOf(feeds: Record<string, WireTensor>): ArrayBuffer[] {
  const transfer = new Set<ArrayBuffer>();
  for (const t of Object.values(feeds)) {
    if (!Array.isArray(t.data) && t.data.buffer instanceof ArrayBuffer) transfer.add(t.data.buffer);
  }
  return [...transfer];
}

interface Pending {
  resolve(out: Record<string, WireTensor>): void;
  reject(err: Error): void;
}

class SessionThread {
  readonly worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #dead: Error | undefined;
  #releasing = false;

  /** `onDeath` hears of an exit nobody asked for (not release()). */
  constructor(file: string, settings: ServingConfig, onDeath: (err: Error) => void) {
    // A session thread allocates few JS objects (tensor data lives outside the JS heap): a
    // small young generation saves tens of MiB per instance.
    this.worker = new Worker(WORKER, { workerData: { file, settings }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
    this.worker.on('message', (msg: WorkerReply) => {
      if (msg.kind !== 'result' && msg.kind !== 'error') return;
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (msg.kind === 'result') p?.resolve(msg.outputs);
      else p?.reject(new Error(msg.message));
    });
    const die = (err: Error) => {
      if (this.#dead) return;
      this.#dead = err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      if (!this.#releasing) onDeath(err);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`the session thread exited (${code})`)));
  }

  ready(): Promise<SessionReady> {
    return new Promise((resolve, reject) => {
      const settle = (err: Error | undefined, signature?: SessionReady) => {
        this.worker.off('message', onMessage);
        this.worker.off('error', settle);
        this.worker.off('exit', onExit);
        if (err) reject(err);
        else resolve(signature!);
      };
      const onMessage = (msg: WorkerReply) => {
        if (msg.kind === 'ready') settle(undefined, { signature: msg.signature, executionProvider: msg.executionProvider ?? 'cpu', skipped: msg.skipped ?? [] });
        else if (msg.kind === 'failed') settle(new Error(msg.message));
      };
      const onExit = (code: number) => settle(new Error(`the session thread exited (${code}) before its session was ready`));
      this.worker.on('message', onMessage);
      this.worker.on('error', settle);
      this.worker.on('exit', onExit);
    });
  }

  /** One run; the feeds' buffers move to the thread (see buffersOf), so callers must not reuse them. */
  run(feeds: Record<string, WireTensor>, outputs: string[]): Promise<Record<string, WireTensor>> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.worker.postMessage({ kind: 'run', id, feeds, outputs } satisfies WorkerRequest, buffersOf(feeds));
    });
  }

  async release(): Promise<void> {
    this.#releasing = true;
    if (this.#dead) return;
    const exited = new Promise((r) => this.worker.once('exit', r));
    this.worker.postMessage({ kind: 'release' } satisfies WorkerRequest);
    await exited;
  }
}

/** A session thread's session: its model's signature, and the execution provider it got (see session-worker.ts). */
interface SessionReady {
  signature: ModelSignature;
  executionProvider: string;
  skipped: Array<{ provider: string; reason: string }>;
}

export interface EngineEvents {
  /** A session thread died (an exit nobody asked for); `replacing` tells whether a new one starts. */
  onThreadLost?(err: Error, replacing: boolean): void;
}

/** Replacements past this many in a minute stop: a thread that keeps dying is not restarted forever. */
const MAX_RESTARTS_PER_MINUTE = 3;

export class InferenceEngine {
  readonly signature: ModelSignature;
  /** The execution provider the sessions run on: the first of the settings' that worked, else `cpu`. */
  readonly executionProvider: string;
  /** The settings' providers skipped before it, with onnxruntime's reason. */
  readonly providersSkipped: ReadonlyArray<{ provider: string; reason: string }>;
  readonly #file: string;
  readonly #settings: ServingConfig;
  readonly #events: EngineEvents;
  readonly #threads: SessionThread[] = [];
  readonly #idle: SessionThread[] = [];
  /** Runs waiting for a thread (all busy, or when several served models share this engine). */
  readonly #waiting: Array<{ resolve(thread: SessionThread): void; reject(err: Error): void }> = [];
  readonly #restarts: number[] = [];
  #starting = 0;
  #lastLoss: Error | undefined;
  #released: Promise<void> | undefined;

  private constructor(ready: SessionReady, file: string, settings: ServingConfig, events: EngineEvents) {
    this.signature = ready.signature;
    this.executionProvider = ready.executionProvider;
    this.providersSkipped = ready.skipped;
    this.#file = file;
    this.#settings = settings;
    this.#events = events;
  }

  /** Starts `settings.instances` (default 1) session threads on the file; fails with onnxruntime's reason. */
  static async start(file: string, settings: ServingConfig = {}, events: EngineEvents = {}): Promise<InferenceEngine> {
    let engine: InferenceEngine | undefined;
    const threads: SessionThread[] = [];
    for (let i = 0; i < (settings.instances ?? 1); i++) {
      const thread: SessionThread = new SessionThread(file, settings, (err) => engine && engine.#lost(thread, err));
      threads.push(thread);
    }
    try {
      const [ready] = await Promise.all(threads.map((t) => t.ready()));
      engine = new InferenceEngine(ready!, file, settings, events);
      for (const t of threads) engine.#add(t);
      return engine;
    } catch (err) {
      await Promise.all(threads.map((t) => t.worker.terminate()));
      throw err;
    }
  }

  get instances(): number {
    return this.#threads.length;
  }

  /** The session threads' workers (health checks and tests). */
  get workers(): Worker[] {
    return this.#threads.map((t) => t.worker);
  }

  /** One run on an idle session thread; waits for one when all are busy. */
  async run(feeds: Record<string, WireTensor>, outputs: string[]): Promise<Record<string, WireTensor>> {
    const thread = this.#idle.pop() ?? (await this.#waitForThread());
    try {
      return await thread.run(feeds, outputs);
    } finally {
      if (this.#threads.includes(thread)) this.#handOver(thread);
    }
  }

  /** The same run on every session thread (warm-up: each session sizes its buffers once). */
  async runOnEach(feeds: Record<string, WireTensor>, outputs: string[]): Promise<void> {
    const copy = () => Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { ...t, data: t.data.slice() as WireTensor['data'] }]));
    await Promise.all(this.#threads.map((t) => t.run(copy(), outputs)));
  }

  release(): Promise<void> {
    this.#released ??= Promise.all(this.#threads.map((t) => t.release())).then(() => undefined);
    this.#failWaiting(new Error('the model was unloaded'));
    return this.#released;
  }

  #waitForThread(): Promise<SessionThread> {
    if (this.#noThreads()) return Promise.reject(this.#noThreadError());
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** No thread is running and none is starting: runs cannot wait for one. */
  #noThreads(): boolean {
    return this.#threads.length === 0 && this.#starting === 0;
  }

  #noThreadError(): Error {
    return new Error(`no session thread is running (${this.#lastLoss?.message ?? 'released'})`);
  }

  #add(thread: SessionThread): void {
    this.#threads.push(thread);
    this.#handOver(thread);
  }

  /** A free thread goes to the oldest waiting run, or back to the idle ones. */
  #handOver(thread: SessionThread): void {
    const next = this.#waiting.shift();
    if (next) next.resolve(thread);
    else this.#idle.push(thread);
  }

  #failWaiting(err: Error): void {
    for (const w of this.#waiting.splice(0)) w.reject(err);
  }

  /** A session thread died: drop it, and start another in its place unless that keeps happening. */
  #lost(thread: SessionThread, err: Error): void {
    for (const list of [this.#threads, this.#idle]) {
      const i = list.indexOf(thread);
      if (i !== -1) list.splice(i, 1);
    }
    this.#lastLoss = err;
    const now = Date.now();
    while (this.#restarts.length > 0 && this.#restarts[0]! < now - 60_000) this.#restarts.shift();
    const replacing = !this.#released && this.#restarts.length < MAX_RESTARTS_PER_MINUTE;
    this.#events.onThreadLost?.(err, replacing);
    if (!replacing) {
      if (this.#noThreads()) this.#failWaiting(this.#noThreadError());
      return;
    }
    this.#restarts.push(now);
    this.#starting++;
    const fresh: SessionThread = new SessionThread(this.#file, this.#settings, (e) => this.#lost(fresh, e));
    fresh.ready().then(
      () => {
        this.#starting--;
        if (this.#released) void fresh.release();
        else this.#add(fresh);
      },
      (startErr: Error) => {
        this.#starting--;
        this.#lastLoss = startErr;
        if (this.#noThreads()) this.#failWaiting(this.#noThreadError());
      },
    );
  }
}
