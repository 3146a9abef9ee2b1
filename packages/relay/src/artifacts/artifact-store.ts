// Model files, job bundles and outputs, stored once each under their sha256.
// An upload streams to a temporary file while it is hashed; nothing is buffered in memory,
// and nothing lands under its final name until the caller has checked it and commits.
// A file that no longer hashes to its name is moved to .quarantine (with a note of when and
// why) so that nothing serves it; the next push of the same bytes puts a good copy back.

import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OutpostError } from '@outpost/shared';

export interface StagedArtifact {
  sha256: string;
  size: number;
  /** Where the staged bytes are, for checks before commit. */
  path: string;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

export interface QuarantineNote {
  /** When the file was found corrupt (ms since the epoch). */
  at: number;
  /** What found it: "loading it into memory", "the scheduled check", … */
  foundBy: string;
  /** The sha256 its bytes had instead. */
  actual: string;
}

/** What `models show` says of a version's file. */
export type FileState = { state: 'ok' } | { state: 'missing' } | ({ state: 'quarantined' } & QuarantineNote);

export interface ArtifactStore {
  stage(body: Readable, opts?: { maxBytes?: number }): Promise<StagedArtifact>;
  /** File size, or undefined when there is no such artifact. */
  size(sha256: string): Promise<number | undefined>;
  read(sha256: string, range?: { start: number; end: number }): Readable;
  path(sha256: string): string;
  /** The sha256 of the file's bytes as they are on disk now, or undefined when there is no file. */
  hash(sha256: string): Promise<string | undefined>;
  /** Every artifact stored under its final name. */
  list(): Promise<string[]>;
  /** Moves a corrupt file out of the way; nothing serves it until a push of the right bytes. */
  quarantine(sha256: string, note: QuarantineNote): Promise<void>;
  quarantined(sha256: string): QuarantineNote | undefined;
  fileState(sha256: string): FileState;
  /**
   * Removes a file nothing refers to any more (and a quarantined copy of it). Synchronous, so a
   * caller's check that nothing refers to it and the removal have nothing in between; a file
   * being committed is kept (its reference is recorded right after). True when a file went.
   */
  remove(sha256: string): boolean;
}

const SHA256 = /^[0-9a-f]{64}$/;

export class FileArtifactStore implements ArtifactStore {
  readonly #dir: string;
  readonly #tmp: string;
  readonly #quarantine: string;
  /** Half-sent uploads a previous life left in .staging, removed at start. */
  readonly leftoverUploads: number;
  /** Files being committed, by sha256 (a count: the same bytes can arrive twice at once). */
  readonly #committing = new Map<string, number>();

  /**
   * `staging`: the folder (inside `dir`, so a finished upload is one rename) where this relay's
   * uploads are written until complete: its own when relays share `dir`, since each removes
   * what its folder holds at start.
   */
  constructor(dir: string, opts: { staging?: string } = {}) {
    this.#dir = dir;
    this.#tmp = join(dir, opts.staging ?? '.staging');
    this.#quarantine = join(dir, '.quarantine');
    // Models and job outputs may be someone's property: private to the relay's user.
    for (const d of [this.#tmp, this.#quarantine]) mkdirSync(d, { recursive: true, mode: 0o700 });
    for (const d of [dir, this.#tmp, this.#quarantine]) chmodSync(d, 0o700);
    // Nothing is staged across a restart: whatever is there was cut off (a kill, a full disk).
    const leftovers = readdirSync(this.#tmp);
    for (const f of leftovers) rmSync(join(this.#tmp, f), { recursive: true, force: true });
    this.leftoverUploads = leftovers.length;
  }

  path(sha256: string): string {
    if (!SHA256.test(sha256)) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `"${sha256}" is not a sha256 hex digest`);
    return join(this.#dir, sha256);
  }

  async stage(body: Readable, opts: { maxBytes?: number } = {}): Promise<StagedArtifact> {
    const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    const tmp = join(this.#tmp, randomBytes(8).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) return done(new OutpostError('OUTPOST_ERR_PAYLOAD_TOO_LARGE', `the upload is larger than ${maxBytes} bytes`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tmp, { mode: 0o600 }));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const sha256 = hash.digest('hex');
    const final = this.path(sha256);
    return {
      sha256,
      size,
      path: tmp,
      // Renaming over a corrupt copy repairs it; a quarantined one is then no longer needed.
      // The file is not removable until the caller's next synchronous step, which records
      // what refers to it (setImmediate runs after the caller's continuation).
      commit: async () => {
        this.#committing.set(sha256, (this.#committing.get(sha256) ?? 0) + 1);
        try {
          await rename(tmp, final);
          await this.#release(sha256);
        } finally {
          setImmediate(() => {
            const n = this.#committing.get(sha256)! - 1;
            if (n > 0) this.#committing.set(sha256, n);
            else this.#committing.delete(sha256);
          });
        }
      },
      discard: () => rm(tmp, { force: true }),
    };
  }

  async size(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(sha256))).size;
    } catch {
      return undefined;
    }
  }

  read(sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.path(sha256), range);
  }

  async hash(sha256: string): Promise<string | undefined> {
    const hash = createHash('sha256');
    try {
      await pipeline(createReadStream(this.path(sha256)), hash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return hash.digest('hex');
  }

  async list(): Promise<string[]> {
    return (await readdir(this.#dir)).filter((f) => SHA256.test(f));
  }

  async quarantine(sha256: string, note: QuarantineNote): Promise<void> {
    const kept = join(this.#quarantine, sha256);
    const file = this.path(sha256);
    await writeFile(`${kept}.json`, JSON.stringify(note) + '\n', { mode: 0o600 });
    await rename(file, kept);
  }

  quarantined(sha256: string): QuarantineNote | undefined {
    try {
      return JSON.parse(readFileSync(join(this.#quarantine, `${sha256}.json`), 'utf8')) as QuarantineNote;
    } catch {
      return undefined;
    }
  }

  fileState(sha256: string): FileState {
    if (existsSync(this.path(sha256))) return { state: 'ok' };
    const note = this.quarantined(sha256);
    return note ? { state: 'quarantined', ...note } : { state: 'missing' };
  }

  remove(sha256: string): boolean {
    const file = this.path(sha256);
    if (this.#committing.has(sha256)) return false;
    const existed = existsSync(file);
    rmSync(file, { force: true });
    rmSync(join(this.#quarantine, sha256), { force: true });
    rmSync(join(this.#quarantine, `${sha256}.json`), { force: true });
    return existed;
  }

  async #release(sha256: string): Promise<void> {
    await rm(join(this.#quarantine, sha256), { force: true });
    await rm(join(this.#quarantine, `${sha256}.json`), { force: true });
  }
}
