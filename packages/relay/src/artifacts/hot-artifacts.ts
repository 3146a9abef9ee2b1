// The artifacts a rollout is serving right now, kept in memory. A rollout sends the same file
// to thousands of devices; one read and one Buffer beat thousands of file streams (each a
// series of 64 KiB reads). Artifacts are content-addressed and never change, so nothing here
// can go stale. Bounded: least recently used files leave first, big files are never kept.

import { readFile } from 'node:fs/promises';
import type { ArtifactStore } from './artifact-store.js';

export class HotArtifacts {
  readonly #store: ArtifactStore;
  readonly #budgetBytes: number;
  readonly #maxFileBytes: number;
  /** In least recently used order (a Map iterates in insertion order). */
  readonly #files = new Map<string, Buffer>();
  readonly #loading = new Map<string, Promise<Buffer | undefined>>();
  #bytes = 0;

  constructor(store: ArtifactStore, budgetBytes: number, maxFileBytes = budgetBytes / 4) {
    this.#store = store;
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

  async #load(sha256: string): Promise<Buffer | undefined> {
    const bytes = await readFile(this.#store.path(sha256));
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
