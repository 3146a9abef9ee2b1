// Work kept in order per key (a device's messages), different keys side by side. Each key's
// backlog is bounded: a flood from one device costs that device's messages, never memory.
// Optionally at most `atOnce` keys' work runs at a time, the rest waiting here in arrival order:
// 20,000 devices connecting at once otherwise ask the store's pool of 10 connections for 20,000
// at once, and the ones that wait past its connection timeout fail (seen in bench/fleet on
// PostgreSQL: every such message lost, the device shown offline while connected). A total
// bound keeps what waits bounded however many keys there are.

import { Slots } from './slots.js';

export interface SerialQueueLimits {
  /** Work of one key waiting or running, past which its new work is refused. */
  perKey: number;
  /** Keys whose work runs at once (default: no limit). */
  atOnce?: number;
  /** Work of all keys waiting or running, past which new work is refused (default: no limit). */
  total?: number;
}

export class SerialQueues {
  readonly #limits: Required<Omit<SerialQueueLimits, 'atOnce'>>;
  readonly #queues = new Map<string, { tail: Promise<void>; waiting: number }>();
  /** Turns to run, `atOnce` of them: work holds one while it runs, the rest wait in arrival order. */
  readonly #turns: Slots;
  #total = 0;
  /** Closing: no new work is taken. */
  #refusing = false;
  /** Closed past its grace: work not yet started is skipped. */
  #skipping = false;

  constructor(limits: number | SerialQueueLimits) {
    const l = typeof limits === 'number' ? { perKey: limits } : limits;
    this.#limits = { perKey: l.perKey, total: l.total ?? Infinity };
    this.#turns = new Slots(l.atOnce ?? Infinity);
  }

  /** Work of all keys waiting or running. */
  get waiting(): number {
    return this.#total;
  }

  /** Whether new work would be refused for the total bound (whatever its key). */
  get full(): boolean {
    return this.#total >= this.#limits.total;
  }

  /** Whether close() was called: new work is refused. */
  get closing(): boolean {
    return this.#refusing;
  }

  /**
   * Runs `work` after the key's earlier work; false (nothing queued) past a bound. `work`
   * handles its own errors; one that throws anyway is dropped here, so the key's later work
   * still runs.
   */
  push(key: string, work: () => Promise<void>): boolean {
    const queue = this.#queues.get(key) ?? { tail: Promise.resolve(), waiting: 0 };
    if (queue.waiting >= this.#limits.perKey || this.full || this.#refusing) return false;
    queue.waiting++;
    this.#total++;
    queue.tail = queue.tail.then(() => this.#inTurn(work)).catch(() => {}).finally(() => {
      this.#total--;
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

  /**
   * Refuses new work and waits for what was taken; work that has not started within `graceMs`
   * is skipped (with a store that no longer answers, 200,000 messages at 16 at a time would
   * hold a shutdown for hours). The work that runs is waited for.
   */
  async close(graceMs: number): Promise<void> {
    this.#refusing = true;
    const grace = setTimeout(() => this.#skipWaiting(), graceMs);
    try {
      await this.idle();
    } finally {
      clearTimeout(grace);
    }
  }

  #skipWaiting(): void {
    this.#skipping = true;
    this.#turns.turnAway();
  }

  async #inTurn(work: () => Promise<void>): Promise<void> {
    // A free turn is taken at once (no await); a waiter turned away (close's grace ran out) was
    // never given one: it has none to hand on.
    if (!this.#turns.tryTake() && !await this.#turns.take(Infinity)) return;
    try {
      if (!this.#skipping) await work();
    } finally {
      this.#turns.release(); // to the oldest waiting, or freed
    }
  }
}
