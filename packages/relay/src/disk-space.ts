// The relay's data dir running out of space. Nothing is gated on a flag: every write simply
// tries, and one that fails with ENOSPC / SQLITE_FULL becomes 507 OUTPOST_ERR_DISK_FULL for its
// caller, so work resumes by itself the moment space returns. This class only keeps what is
// said about it to one line when the disk fills and one when space is back, the /metrics gauge,
// and the check that turns an upload away from its Content-Length before a byte is read.
// Answers name neither the path nor the free bytes: they may go to callers not yet authenticated.

import { statfs } from 'node:fs/promises';
import { OutpostError, guardedInterval, type Logger } from '@outpost/shared';

/** Free space below which the disk is taken for still full (SQLite and uploads need room). */
const STILL_FULL_BYTES = 4 * 1024 * 1024;
const RECHECK_MS = 2_000;

export class DiskSpace {
  readonly #dir: string;
  readonly #log: Logger;
  #recheck: NodeJS.Timeout | undefined;
  /** Since the last write that failed for want of space, until free space is back. */
  full = false;

  constructor(dir: string, log: Logger) {
    this.#dir = dir;
    this.#log = log;
  }

  /** Bytes free for the relay's user in its data dir. */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.#dir);
    return s.bavail * s.bsize;
  }

  /** The error a caller gets for a write that failed because the disk is full (and notes it). */
  refused(): OutpostError {
    this.#noteFull();
    return new OutpostError('OUTPOST_ERR_DISK_FULL', "the relay's disk is full: free space in its data dir and retry; reads, the fleet stream and the broker keep working meanwhile");
  }

  /** Refuses an upload of `bytes` at once when it cannot fit (it would fail halfway anyway). */
  async refuseIfNoRoomFor(bytes: number): Promise<void> {
    const free = await this.freeBytes().catch(() => Number.POSITIVE_INFINITY);
    if (bytes + STILL_FULL_BYTES <= free) return;
    this.#noteFull();
    throw new OutpostError('OUTPOST_ERR_DISK_FULL', `the upload is ${bytes} bytes and does not fit on the relay's disk: free space in its data dir and retry`);
  }

  close(): void {
    clearInterval(this.#recheck);
  }

  #noteFull(): void {
    if (this.full) return;
    this.full = true;
    this.#log.error({ dataDir: this.#dir }, "the relay's disk is full: uploads, deployments, jobs and enrollments are refused (507) until space returns; reads, the fleet stream and the broker keep working");
    this.#recheck = guardedInterval(this.#log, 'checking free disk space', RECHECK_MS, async () => {
      const free = await this.freeBytes();
      if (free < STILL_FULL_BYTES || !this.full) return;
      this.full = false;
      clearInterval(this.#recheck);
      this.#log.info({ dataDir: this.#dir, freeBytes: free }, "disk space is back: the relay takes new work again");
    });
  }
}
