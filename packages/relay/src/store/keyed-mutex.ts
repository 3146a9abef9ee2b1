// Work that must not interleave with other work under the same key, within this process: each
// key's work runs after the one before it has settled (whether it resolved or threw).

export class KeyedMutex {
  /** Per key, the last work's settling (wrapped, so that the entry is compared as itself). */
  readonly #tails = new Map<string, { settled: Promise<unknown> }>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key)?.settled ?? Promise.resolve();
    const result = before.then(work, work);
    const entry: { settled: Promise<unknown> } = { settled: result.catch(() => undefined) };
    this.#tails.set(key, entry);
    // The last one out removes the key, so keys do not pile up.
    void entry.settled.then(() => {
      if (this.#tails.get(key) === entry) this.#tails.delete(key);
    });
    return result;
  }

  /** Keys with work running or waiting. */
  get size(): number {
    return this.#tails.size;
  }
}
