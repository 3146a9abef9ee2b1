// The relay checks its own files: a disk can rot, a person can edit the wrong file, a restore
// from backup can be half done. Each artifact is hashed when it is loaded into memory (see
// hot-artifacts.ts), on a schedule (the first pass soon after start, one file at a time), and a
// push of the same bytes replaces a corrupt copy. A file that fails is quarantined: downloads of
// it answer 503 OUTPOST_ERR_ARTIFACT_CORRUPT (devices retry), deployments of it are refused, and
// `models show` names it, until the right bytes are pushed again.

import type { Logger } from '@outpost/shared';
import { guardedInterval, guardedTimeout } from '@outpost/shared';
import type { ArtifactStore } from './artifact-store.js';
import { HotArtifacts } from './hot-artifacts.js';

/** Memory for the files being rolled out (each up to a quarter of it); bigger ones stream from disk. */
const HOT_ARTIFACT_BYTES = 256 * 1024 * 1024;

export interface ArtifactChecksOptions {
  store: ArtifactStore;
  log: Logger;
  /** Time between scheduled passes over every file; 0 turns the schedule off. */
  intervalMs: number;
  /** Delay before the first pass, so that a start is not slowed by hashing every file (default 30 s, or the interval if shorter). */
  firstPassMs?: number;
  now?: () => number;
}

export class ArtifactChecks {
  readonly hot: HotArtifacts;
  readonly #opts: ArtifactChecksOptions;
  readonly #timers: NodeJS.Timeout[] = [];
  #pass: Promise<void> | undefined;
  #closed = false;

  constructor(opts: ArtifactChecksOptions) {
    this.#opts = opts;
    this.hot = new HotArtifacts(opts.store, HOT_ARTIFACT_BYTES, (sha256, actual) => this.#quarantine(sha256, actual, 'loading it into memory to serve it'));
  }

  start(): void {
    if (this.#opts.intervalMs <= 0) return;
    this.#timers.push(guardedTimeout(this.#opts.log, 'checking artifacts', this.#opts.firstPassMs ?? Math.min(30_000, this.#opts.intervalMs), () => this.checkAll('the check after start')));
    this.#timers.push(guardedInterval(this.#opts.log, 'checking artifacts', this.#opts.intervalMs, () => this.checkAll('the scheduled check')));
  }

  /** Hashes every stored file, one at a time; a pass already under way is joined, not doubled. */
  checkAll(foundBy: string): Promise<void> {
    this.#pass ??= this.#checkAll(foundBy).finally(() => (this.#pass = undefined));
    return this.#pass;
  }

  /** Hashes one file; true when it is sound, false when it was missing or is now quarantined. */
  async check(sha256: string, foundBy: string): Promise<boolean> {
    const actual = await this.#opts.store.hash(sha256);
    if (actual === undefined) return false;
    if (actual === sha256) return true;
    await this.#quarantine(sha256, actual, foundBy);
    return false;
  }

  /** A push committed these bytes under their name: a quarantined copy is replaced, memory is fresh. */
  pushed(sha256: string, wasQuarantined: boolean): void {
    this.hot.forget(sha256);
    if (wasQuarantined) this.#opts.log.info({ sha256 }, 'artifact restored: the push put a good copy back in place of the quarantined one');
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
  }

  async #checkAll(foundBy: string): Promise<void> {
    const started = Date.now();
    let bad = 0;
    const all = await this.#opts.store.list();
    for (const sha256 of all) {
      if (this.#closed) return;
      if (!(await this.check(sha256, foundBy))) bad++;
    }
    this.#opts.log.debug({ files: all.length, corrupt: bad, ms: Date.now() - started }, 'artifacts checked');
  }

  async #quarantine(sha256: string, actual: string, foundBy: string): Promise<void> {
    this.hot.forget(sha256);
    await this.#opts.store.quarantine(sha256, { at: (this.#opts.now ?? Date.now)(), foundBy, actual });
    this.#opts.log.error(
      { sha256, actual, foundBy },
      `artifact ${sha256.slice(0, 12)} failed its sha256 check (found by ${foundBy}) and is quarantined: nothing serves it until the same file is pushed again (outpost-relay models push FILE --name NAME)`,
    );
  }
}
