// `jobs download`: a job's output files, fetched from the relay into a folder on this machine.
// Output paths are written by the job, on a device that may be hostile: a path is taken only
// as plain segments below the folder (no `..`, no absolute path, no control characters), no
// symbolic link on the way is followed, files are 0600, nothing is overwritten without
// --force, and each file is checked against its sha256 before it gets its name.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, linkSync, lstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { RelayApi } from './client.js';
import { CliError } from './output.js';
import { byteProgress } from './progress.js';

export interface JobOutput {
  rank: number;
  path: string;
  sha256: string;
  size: number;
}

/** An output whose path is refused: it costs that file, not the download of the others. */
export class UnsafeOutputPath extends CliError {
  override name = 'UnsafeOutputPath';
}

/** A path from a job as it can be shown in a terminal: control characters escaped, not obeyed. */
export function printablePath(path: string): string {
  // eslint-disable-next-line no-control-regex
  return path.replace(/[\x00-\x1f\x7f\\]/g, (c) => (c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/**
 * The local file for an output path, below `dir` (in `rank-R/` when `rank` is given), or an
 * UnsafeOutputPath saying why the path is refused.
 */
export function outputFile(dir: string, path: string, rank?: number): string {
  const refuse = (why: string) => new UnsafeOutputPath(`output "${printablePath(path)}" is not downloaded: ${why}`);
  if (path.length === 0 || path.length > 512) throw refuse('its path is empty or longer than 512 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f\\]/.test(path)) throw refuse('its path holds control characters or backslashes');
  const segments = path.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) throw refuse('its path is not plain names below the folder (no leading /, no . or .. parts)');
  const root = resolve(dir);
  const file = join(root, ...(rank === undefined ? [] : [`rank-${rank}`]), ...segments);
  if (!file.startsWith(root + sep)) throw refuse('its path leads outside the folder');
  return file;
}

/** Makes the folders from `root` down to `file`'s parent, following no symbolic link below `root`. */
function makeParents(root: string, file: string): void {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  let at = root;
  for (const part of dirname(file).slice(root.length).split(sep).filter(Boolean)) {
    at = join(at, part);
    let st;
    try {
      st = lstatSync(at);
    } catch {
      mkdirSync(at, { mode: 0o700 });
      continue;
    }
    if (st.isSymbolicLink()) throw new CliError(`${at} is a symbolic link: not writing through it (remove it, or download to another folder with -o DIR)`);
    if (!st.isDirectory()) throw new CliError(`${at} exists and is not a folder: remove it, or download to another folder with -o DIR`);
  }
}

/** Refuses, before any download, a file that exists (unless `force`) or is a folder. */
export function checkTarget(file: string, force: boolean): void {
  let st;
  try {
    st = lstatSync(file);
  } catch {
    return;
  }
  if (st.isDirectory()) throw new CliError(`${file} is a folder: remove it, or download to another folder with -o DIR`);
  if (!force) throw new CliError(`${file} exists: pass --force to overwrite it, or download to another folder with -o DIR`);
}

/**
 * Downloads one output to `file` (below `root`): written to a temporary file beside it (0600),
 * hashed on the way, and given its name only when the sha256 and size match.
 */
export async function downloadOutput(api: RelayApi, output: JobOutput, root: string, file: string, force: boolean): Promise<void> {
  makeParents(resolve(root), file);
  const res = await api.download(`/v1/artifacts/${output.sha256}`);
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(4).toString('hex')}.part`);
  const fd = openSync(tmp, 'wx', 0o600);
  const hash = createHash('sha256');
  const progress = byteProgress(`downloading ${printablePath(output.path)}`, output.size);
  let size = 0;
  let open = true;
  try {
    fchmodSync(fd, 0o600); // whatever the umask
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > output.size) throw new CliError(`the relay sent more than the ${output.size} bytes of ${printablePath(output.path)}: try again`);
      hash.update(chunk);
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
      progress.update(size);
    }
    const actual = hash.digest('hex');
    if (size !== output.size || actual !== output.sha256) {
      throw new CliError(`the download of ${printablePath(output.path)} does not match its sha256 (${size} bytes, sha256 ${actual.slice(0, 16)}…): the relay's copy may be corrupt; try again, or see outpost-relay jobs outputs`);
    }
    closeSync(fd);
    open = false;
    if (force) renameSync(tmp, file); // replaces a link itself, never what it points to
    else {
      try {
        linkSync(tmp, file); // fails if the name was taken meanwhile: never overwrites
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new CliError(`${file} exists: pass --force to overwrite it, or download to another folder with -o DIR`);
        throw err;
      }
    }
  } finally {
    progress.stop();
    if (open) closeSync(fd);
    rmSync(tmp, { force: true }); // renamed or linked by now, or a failed download
  }
}
