// The sessions of one model file: `instances` worker threads (session-worker.ts), each with
// its own onnxruntime session, so runs proceed in parallel with each other and with the HTTP
// server on the main thread. The main thread never loads onnxruntime itself.

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

  constructor(file: string, settings: ServingConfig) {
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
      this.#dead ??= err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`the session thread exited (${code})`)));
  }

  ready(): Promise<ModelSignature> {
    return new Promise((resolve, reject) => {
      const settle = (err: Error | undefined, signature?: ModelSignature) => {
        this.worker.off('message', onMessage);
        this.worker.off('error', settle);
        if (err) reject(err);
        else resolve(signature!);
      };
      const onMessage = (msg: WorkerReply) => {
        if (msg.kind === 'ready') settle(undefined, msg.signature);
        else if (msg.kind === 'failed') settle(new Error(msg.message));
      };
      this.worker.on('message', onMessage);
      this.worker.on('error', settle);
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
    if (this.#dead) return;
    const exited = new Promise((r) => this.worker.once('exit', r));
    this.worker.postMessage({ kind: 'release' } satisfies WorkerRequest);
    await exited;
  }
}

export class InferenceEngine {
  readonly signature: ModelSignature;
  readonly #threads: SessionThread[];
  readonly #idle: SessionThread[];
  /** Runs waiting for a thread (when several served models share this engine). */
  readonly #waiting: Array<(thread: SessionThread) => void> = [];
  #released: Promise<void> | undefined;

  private constructor(signature: ModelSignature, threads: SessionThread[]) {
    this.signature = signature;
    this.#threads = threads;
    this.#idle = [...threads];
  }

  /** Starts `settings.instances` (default 1) session threads on the file; fails with onnxruntime's reason. */
  static async start(file: string, settings: ServingConfig = {}): Promise<InferenceEngine> {
    const threads = Array.from({ length: settings.instances ?? 1 }, () => new SessionThread(file, settings));
    try {
      const [signature] = await Promise.all(threads.map((t) => t.ready()));
      return new InferenceEngine(signature!, threads);
    } catch (err) {
      await Promise.all(threads.map((t) => t.worker.terminate()));
      throw err;
    }
  }

  get instances(): number {
    return this.#threads.length;
  }

  /** One run on an idle session thread; waits for one when all are busy. */
  async run(feeds: Record<string, WireTensor>, outputs: string[]): Promise<Record<string, WireTensor>> {
    const thread = this.#idle.pop() ?? (await new Promise<SessionThread>((resolve) => this.#waiting.push(resolve)));
    try {
      return await thread.run(feeds, outputs);
    } finally {
      const next = this.#waiting.shift();
      if (next) next(thread);
      else this.#idle.push(thread);
    }
  }

  /** The same run on every session thread (warm-up: each session sizes its buffers once). */
  async runOnEach(feeds: Record<string, WireTensor>, outputs: string[]): Promise<void> {
    const copy = () => Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { ...t, data: t.data.slice() as WireTensor['data'] }]));
    await Promise.all(this.#threads.map((t) => t.run(copy(), outputs)));
  }

  release(): Promise<void> {
    this.#released ??= Promise.all(this.#threads.map((t) => t.release())).then(() => undefined);
    return this.#released;
  }
}
