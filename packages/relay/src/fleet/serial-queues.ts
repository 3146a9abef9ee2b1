// Work kept in order per key (a device's messages), different keys side by side. Each key's
// backlog is bounded: a flood from one device costs that device's messages, never memory.

export class SerialQueues {
  readonly #bound: number;
  readonly #queues = new Map<string, { tail: Promise<void>; waiting: number }>();

  constructor(bound: number) {
    this.#bound = bound;
  }

  /**
   * Runs `work` after the key's earlier work; false (nothing queued) past the bound. `work`
   * handles its own errors; one that throws anyway is dropped here, so the key's later work
   * still runs.
   */
  push(key: string, work: () => Promise<void>): boolean {
    const queue = this.#queues.get(key) ?? { tail: Promise.resolve(), waiting: 0 };
    if (queue.waiting >= this.#bound) return false;
    queue.waiting++;
    queue.tail = queue.tail.then(work).catch(() => {}).finally(() => {
      if (--queue.waiting === 0) this.#queues.delete(key);
    });
    this.#queues.set(key, queue);
    return true;
  }

  /** As push, with the work's result; undefined (nothing queued) past the bound. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> | undefined {
    let settle!: { resolve: (value: T) => void; reject: (err: unknown) => void };
    const result = new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
    return this.push(key, () => work().then(settle.resolve, settle.reject)) ? result : undefined;
  }

  /** Settles once the key's work queued so far has run. */
  async drained(key: string): Promise<void> {
    await this.#queues.get(key)?.tail;
  }

  /** Settles once everything queued so far has run (tests, and a clean close). */
  async idle(): Promise<void> {
    while (this.#queues.size > 0) await Promise.all([...this.#queues.values()].map((q) => q.tail));
  }
}
