// Model files on the device, by sha256. A download goes to a `.partial` file, resumes from
// where it stopped (HTTP Range), and becomes a cache entry only when its sha256 matches.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { tlsConnectOptions, type ClientTls } from '@outpost/shared';

/** How often a download waits out a busy relay (503) before it counts as failed. */
const MAX_BUSY_RETRIES = 120;

/** A GET with node:http(s): streams with less overhead per chunk than fetch's web streams. */
function get(url: string, headers: Record<string, string>, tls: ClientTls | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = url.startsWith('https:') ? httpsRequest(url, { headers, ...tlsConnectOptions(tls) }, resolve) : httpRequest(url, { headers }, resolve);
    req.on('error', reject);
    req.end();
  });
}

/** The code and message of a relay error answer, read up to 8 KiB. */
async function errorOf(res: IncomingMessage): Promise<{ code?: string; message: string }> {
  let text = '';
  try {
    for await (const chunk of res) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length > 8192) {
        res.destroy();
        break;
      }
    }
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = typeof body.error?.code === 'string' ? body.error.code : undefined;
    const message = typeof body.error?.message === 'string' ? body.error.message.slice(0, 500) : '';
    return { code, message: code ? `${code}: ${message}` : message };
  } catch {
    return { message: '' };
  }
}

export class DownloadError extends Error {
  /** Worth trying again later (network, relay restarting), as opposed to a refusal. */
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export class ArtifactCache {
  readonly dir: string;
  readonly #tls: () => ClientTls | undefined;

  /** `tls`: the relay's CA and the device's certificate, asked for at each download. */
  constructor(dir: string, tls: () => ClientTls | undefined = () => undefined) {
    this.dir = dir;
    this.#tls = tls;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  path(sha256: string): string {
    return join(this.dir, sha256);
  }

  /** The cached file for a sha256, checked again (a file on disk can rot or be changed). */
  async verified(sha256: string): Promise<string | undefined> {
    const file = this.path(sha256);
    try {
      await stat(file);
    } catch {
      return undefined;
    }
    if ((await sha256OfFile(file)) === sha256) return file;
    await rm(file, { force: true });
    return undefined;
  }

  /** Returns the path of a verified file, downloading it first when needed. */
  async ensure(url: string, sha256: string, headers: Record<string, string>, onProgress?: (bytes: number) => void, busyRetries = 0): Promise<string> {
    const cached = await this.verified(sha256);
    if (cached) return cached;
    const partial = `${this.path(sha256)}.partial`;
    let offset = 0;
    try {
      offset = (await stat(partial)).size;
    } catch {
      offset = 0;
    }
    let res: IncomingMessage;
    try {
      res = await get(url, offset > 0 ? { ...headers, range: `bytes=${offset}-` } : headers, this.#tls());
    } catch (err) {
      throw new DownloadError(`download failed: cannot reach the relay (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, true);
    }
    const status = res.statusCode ?? 0;
    if (status !== 200 && status !== 206 && status !== 416) {
      // The relay says why in its error body (bounded: a hostile answer cannot grow memory).
      const why = await errorOf(res);
      if (status === 503 && why.code === 'OUTPOST_ERR_ARTIFACT_CORRUPT') throw new DownloadError(`download failed: the relay answered 503: ${why.message}`, true);
      if (status === 503 && busyRetries < MAX_BUSY_RETRIES) {
        // The relay paces rollouts: wait as told, plus jitter so a fleet does not come back at once.
        const after = Number(res.headers['retry-after'] ?? 1);
        await new Promise((r) => setTimeout(r, (Number.isFinite(after) ? after : 1) * 1000 + Math.random() * 1000));
        return this.ensure(url, sha256, headers, onProgress, busyRetries + 1);
      }
      throw new DownloadError(`download failed: the relay answered ${status}${why.message ? `: ${why.message}` : ''}`, status >= 500 || status === 429);
    }
    if (status === 416) {
      // The partial file is already whole (or longer than the artifact): start over.
      res.resume();
      await rm(partial, { force: true });
      return this.ensure(url, sha256, headers, onProgress);
    }
    const append = status === 206;
    if (!append) offset = 0;
    let received = offset;
    // Hash while writing: one pass over the bytes (a resumed download hashes its prefix first).
    const hash = createHash('sha256');
    if (append) await pipeline(createReadStream(partial, { end: offset - 1 }), async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) hash.update(chunk);
    });
    const meter = new Transform({
      transform(chunk: Buffer, _e, done) {
        received += chunk.length;
        hash.update(chunk);
        onProgress?.(received);
        done(null, chunk);
      },
    });
    try {
      await pipeline(res, meter, createWriteStream(partial, { flags: append ? 'a' : 'w', mode: 0o600 }));
    } catch (err) {
      throw new DownloadError(`download interrupted after ${received} bytes: ${(err as Error).message}`, true);
    }
    const actual = hash.digest('hex');
    if (actual !== sha256) {
      await rm(partial, { force: true });
      // A resumed download may have joined bytes of two different files (a partial left by a
      // crash): start over. A whole download from the start that does not match is the relay's
      // own copy: trying again would fetch the same bytes.
      if (append) throw new DownloadError(`the resumed download of ${sha256} did not match its sha256; starting over`, true);
      throw new DownloadError(`the relay's copy is corrupt: expected sha256 ${sha256}, its file has ${actual}; push the model again (outpost-relay models push)`, false);
    }
    const file = this.path(sha256);
    await rename(partial, file);
    return file;
  }

  /** Deletes cached files not in `keep` (and stale partial downloads). */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    for (const name of await readdir(this.dir)) {
      const sha = name.replace(/\.partial$/, '');
      if (!keep.has(sha)) await rm(join(this.dir, name), { force: true });
    }
  }
}
