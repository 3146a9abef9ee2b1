// The end of a job run must not be lost to a full disk: a state write that meets ENOSPC /
// SQLITE_FULL is kept (in order, behind any already kept) and tried again every 2 s until it
// goes through. Other errors are the caller's, as before. Bounded: past MAX_KEPT writes the
// oldest are dropped with a log line (a run still "running" is ended by its timeout or by the
// next relay start).

import { guardedInterval, isDiskFull, type Logger } from '@outpost/shared';

const RETRY_MS = 2_000;
const MAX_KEPT = 10_000;

export class DeferredWrites {
  readonly #log: Logger;
  readonly #kept: Array<{ what: string; write: () => Promise<void> }> = [];
  /** Writes go one after another, in the order asked: a run's states must not overtake each other. */
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  get pending(): number {
    return this.#kept.length;
  }

  /**
   * Writes after the writes asked before, or keeps the write for later when the disk is full
   * (or earlier writes wait). Settles once written or kept; rejects with any other error.
   */
  run(what: string, write: () => Promise<void>): Promise<void> {
    const attempt = this.#chain.then(() => this.#attempt(what, write));
    this.#chain = attempt.catch(() => {});
    return attempt;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #attempt(what: string, write: () => Promise<void>): Promise<void> {
    if (this.#kept.length === 0) {
      try {
        return await write();
      } catch (err) {
        if (!isDiskFull(err)) throw err;
      }
    }
    if (this.#kept.length >= MAX_KEPT) this.#log.error({ dropped: this.#kept.shift()!.what }, 'a job state write kept through a full disk was dropped: too many wait');
    this.#kept.push({ what, write });
    if (this.#timer) return;
    this.#log.warn({ what }, 'the disk is full: job state changes are kept and written once space returns');
    this.#timer = guardedInterval(this.#log, 'writing job state changes kept through a full disk', RETRY_MS, () => {
      const flushed = this.#chain.then(() => this.#flush());
      this.#chain = flushed.catch(() => {});
      return flushed;
    });
  }

  async #flush(): Promise<void> {
    while (this.#kept.length > 0) {
      const next = this.#kept[0]!;
      try {
        await next.write();
      } catch (err) {
        if (isDiskFull(err)) return;
        this.#kept.shift();
        throw err;
      }
      this.#kept.shift();
    }
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#log.info('job state changes kept through a full disk are written');
  }
}
