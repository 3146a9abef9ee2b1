// Work over many devices, a bounded number at a time: publishing to 5,000 devices one after
// another waits 5,000 broker round trips; all at once floods the broker and the socket.

/** Publishes in flight at once when the relay sends one message per device. */
export const PUBLISH_CONCURRENCY = 64;

/** Runs `fn` for every item, at most `limit` at once; rejects with the first failure once all have settled. */
export async function eachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.err;
}
