// Model files (and later job bundles and outputs), stored once each under their sha256.
// An upload streams to a temporary file while it is hashed; nothing is buffered in memory,
// and nothing lands under its final name until the caller has checked it and commits.

import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
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

export interface ArtifactStore {
  stage(body: Readable, opts?: { maxBytes?: number }): Promise<StagedArtifact>;
  /** File size, or undefined when there is no such artifact. */
  size(sha256: string): Promise<number | undefined>;
  read(sha256: string, range?: { start: number; end: number }): Readable;
  path(sha256: string): string;
}

const SHA256 = /^[0-9a-f]{64}$/;

export class FileArtifactStore implements ArtifactStore {
  readonly #dir: string;
  readonly #tmp: string;

  constructor(dir: string) {
    this.#dir = dir;
    this.#tmp = join(dir, '.staging');
    // Models and job outputs may be someone's property: private to the relay's user.
    mkdirSync(this.#tmp, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    chmodSync(this.#tmp, 0o700);
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
      commit: () => rename(tmp, final),
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
}
