// The artifacts a rollout is serving right now, kept in memory. A rollout sends the same file
// to thousands of devices; one read and one Buffer beat thousands of file streams (each a
// series of 64 KiB reads). Artifacts are content-addressed: a file is hashed as it is loaded,
// and one that does not match its name is never kept (`onCorrupt` quarantines it), so what is
// here is always right. Bounded: least recently used files leave first, big files are never kept.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OutpostError } from '@outpost/shared';
import type { ArtifactStore } from './artifact-store.js';

/** Called with the sha256 the bytes really had; the load then fails with OUTPOST_ERR_ARTIFACT_CORRUPT. */
export type OnCorrupt = (sha256: string, actual: string) => Promise<void>;

export class HotArtifacts {
  readonly #store: ArtifactStore;
  readonly #budgetBytes: number;
  readonly #maxFileBytes: number;
  /** In least recently used order (a Map iterates in insertion order). */
  readonly #files = new Map<string, Buffer>();
  readonly #loading = new Map<string, Promise<Buffer | undefined>>();
  #bytes = 0;

  readonly #onCorrupt: OnCorrupt;

  constructor(store: ArtifactStore, budgetBytes: number, onCorrupt: OnCorrupt, maxFileBytes = budgetBytes / 4) {
    this.#store = store;
    this.#onCorrupt = onCorrupt;
    this.#budgetBytes = budgetBytes;
    this.#maxFileBytes = maxFileBytes;
  }

  /** The file's bytes, or undefined when it is too big to keep (stream it instead). */
  async get(sha256: string, size: number): Promise<Buffer | undefined> {
    if (size > this.#maxFileBytes) return undefined;
    const hit = this.#files.get(sha256);
    if (hit) {
      this.#files.delete(sha256);
      this.#files.set(sha256, hit);
      return hit;
    }
    // Devices of one rollout ask at once: they share one read.
    let pending = this.#loading.get(sha256);
    if (!pending) {
      pending = this.#load(sha256).finally(() => this.#loading.delete(sha256));
      this.#loading.set(sha256, pending);
    }
    return pending;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Drops a file (it was pushed again, or found corrupt on disk). */
  forget(sha256: string): void {
    const kept = this.#files.get(sha256);
    if (!kept) return;
    this.#files.delete(sha256);
    this.#bytes -= kept.length;
  }

  async #load(sha256: string): Promise<Buffer | undefined> {
    const bytes = await readFile(this.#store.path(sha256));
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) {
      await this.#onCorrupt(sha256, actual);
      throw corruptArtifact(sha256);
    }
    this.#files.set(sha256, bytes);
    this.#bytes += bytes.length;
    for (const [key, old] of this.#files) {
      if (this.#bytes <= this.#budgetBytes) break;
      this.#files.delete(key);
      this.#bytes -= old.length;
    }
    return bytes;
  }
}

export function corruptArtifact(sha256: string): OutpostError {
  return new OutpostError('OUTPOST_ERR_ARTIFACT_CORRUPT', `the relay's copy of ${sha256} failed its sha256 check and is quarantined; push the same file again (outpost-relay models push FILE --name NAME) to restore it`);
}
