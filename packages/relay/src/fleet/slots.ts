// A counting semaphore: at most `max` slots are taken at once, and whoever finds none free waits,
// first come first served. A release hands its slot straight to the oldest waiter (`active`
// stays the same, and nobody can take the slot between the release and the waiter's wake-up).
// A waiter may leave before its turn: its wait ran out, its AbortSignal fired, or turnAway()
// sent every waiter off. Used for the device messages handled at once (fleet/serial-queues.ts)
// and the artifact downloads served at once (api/artifacts.ts).
//
// The waiting queue is an array read from a head index, and a waiter that leaves is a hole
// there, skipped when its turn comes: release and leaving are O(1) (20,000 devices connecting at
// once wait here; Array.shift moves every entry, indexOf + splice move half of them). The array
// is compacted once what is spent in it (before the head, and holes) outweighs what waits.

interface Waiter {
  /** Resolves the waiter's take(); undefined once it was given a slot or left. */
  settle: ((got: boolean) => void) | undefined;
}

/** Spent entries the waiting queue may hold before it is compacted (and more than it holds waiting). */
const COMPACT_PAST = 1024;

export class Slots {
  readonly #max: number;
  #active = 0;
  /** Waiting from #head on, oldest first, with holes where waiters left; spent before #head. */
  readonly #queue: Array<Waiter | undefined> = [];
  #head = 0;
  #waiting = 0;

  /** `max` may be Infinity: no bound, nobody waits. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Slots taken (and not yet released). */
  get active(): number {
    return this.#active;
  }

  /** Waiters in the queue (not those that left). */
  get waiting(): number {
    return this.#waiting;
  }

  /** Takes a free slot if there is one, at once. Nobody waits while a slot is free. */
  tryTake(): boolean {
    if (this.#active >= this.#max) return false;
    this.#active++;
    return true;
  }

  /**
   * Takes a slot, waiting up to `waitMs` (Infinity: no timeout) for one; resolves false when
   * none came, `signal` aborted (say, the client went away) or turnAway() sent the waiters off.
   * Every true must be matched by one release().
   */
  take(waitMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.tryTake()) return Promise.resolve(true);
    if (waitMs <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = { settle: undefined };
      const leave = () => this.#leave(waiter);
      const timer = waitMs === Infinity ? undefined : setTimeout(leave, waitMs);
      waiter.settle = (got) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', leave);
        resolve(got);
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.#queue.push(waiter);
      this.#waiting++;
    });
  }

  /** Hands the slot to the oldest waiter, or frees it. */
  release(): void {
    while (this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      const settle = waiter.settle;
      if (!settle) continue; // it left: a hole
      waiter.settle = undefined;
      this.#waiting--;
      this.#compact();
      settle(true); // the slot passes straight to it: active stays the same
      return;
    }
    this.#active--;
  }

  /** Sends every waiter away without a slot (their take() resolves false); returns how many. */
  turnAway(): number {
    const waiters = this.#queue.slice(this.#head);
    this.#queue.length = 0;
    this.#head = 0;
    this.#waiting = 0;
    let sent = 0;
    for (const waiter of waiters) {
      const settle = waiter!.settle;
      if (!settle) continue;
      waiter!.settle = undefined;
      sent++;
      settle(false);
    }
    return sent;
  }

  /** Its wait ran out or its signal aborted (settling clears both, so it is still waiting). */
  #leave(waiter: Waiter): void {
    const settle = waiter.settle!;
    waiter.settle = undefined;
    this.#waiting--;
    this.#compact();
    settle(false);
  }

  /** Drops the spent entries (before the head, and holes) once they outweigh the waiting ones. */
  #compact(): void {
    if (this.#waiting === 0) {
      this.#queue.length = 0;
      this.#head = 0;
      return;
    }
    const spent = this.#queue.length - this.#waiting;
    if (spent <= COMPACT_PAST || spent <= this.#waiting) return;
    let kept = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const waiter = this.#queue[i]!;
      if (waiter.settle) this.#queue[kept++] = waiter;
    }
    this.#queue.length = kept;
    this.#head = 0;
  }
}
