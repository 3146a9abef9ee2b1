// A value that async work sees while a scope runs (AsyncLocalStorage), and only then: work
// started inside the scope that outlives it — a timer, an event listener's promise — inherits
// the async context, but must not take itself for part of a transaction that has committed, or
// for the holder of a lock that was let go.

import { AsyncLocalStorage } from 'node:async_hooks';

export class Scope<T> {
  readonly #storage = new AsyncLocalStorage<{ value: T; open: boolean }>();

  /** The value of the scope this runs in, while that scope has not ended. */
  get(): T | undefined {
    const s = this.#storage.getStore();
    return s?.open ? s.value : undefined;
  }

  async run<R>(value: T, work: () => Promise<R>): Promise<R> {
    const s = { value, open: true };
    try {
      return await this.#storage.run(s, work);
    } finally {
      s.open = false;
    }
  }
}
