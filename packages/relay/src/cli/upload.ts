// Uploads a file as a request body, with a progress bar on stderr for large ones. A path that
// cannot be uploaded (a folder, nothing there, not readable) is said in one line before any
// request, rather than surfacing as a failed request.

import { closeSync, createReadStream, fstatSync, openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { RelayApi } from './client.js';
import { CliError } from './output.js';
import { byteProgress } from './progress.js';

export interface UploadKind {
  /** What the command wants, for messages: "the .onnx file". */
  what: string;
  /** Its usual extension: a folder holding such files names them. */
  extension?: string;
}

function errnoMessage(file: string, err: unknown, kind: UploadKind): CliError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new CliError(`${file} does not exist: give the path of ${kind.what}`);
  if (code === 'EACCES' || code === 'EPERM') return new CliError(`cannot read ${file}: permission denied; check its permissions (ls -l ${file}) or run this as a user who may read it`);
  return new CliError(`cannot read ${file} (${code ?? (err as Error).message}): give the path of ${kind.what}`);
}

/** Opens `file` for upload: its descriptor and size, or a one-line CliError naming the cause and the fix. */
export function openUpload(file: string, kind: UploadKind): { fd: number; size: number } {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(file).isDirectory();
  } catch (err) {
    throw errnoMessage(file, err, kind);
  }
  if (isDirectory) {
    let inside: string[] = [];
    try {
      inside = kind.extension ? readdirSync(file).filter((f) => f.endsWith(kind.extension!)).sort() : [];
    } catch {
      // an unreadable folder: the message below still holds
    }
    const hint = inside.length ? ` (it holds ${inside.slice(0, 3).map((f) => join(file, f)).join(', ')}${inside.length > 3 ? ', …' : ''})` : '';
    throw new CliError(`${file} is a directory: give ${kind.what}${hint}`);
  }
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw errnoMessage(file, err, kind);
  }
  const stat = fstatSync(fd);
  if (!stat.isFile()) {
    closeSync(fd);
    throw new CliError(`${file} is not a regular file: give ${kind.what}`);
  }
  return { fd, size: stat.size };
}

/** Sends a file opened by openUpload as the body of a POST to `path`; the descriptor is closed after. */
export async function uploadFile<T>(api: RelayApi, path: string, { fd, size }: { fd: number; size: number }, label: string): Promise<T> {
  const progress = byteProgress(label, size);
  let sent = 0;
  const stream = createReadStream('', { fd }).on('data', (chunk) => progress.update((sent += chunk.length)));
  try {
    return await api.request<T>('POST', path, undefined, {
      body: Readable.toWeb(stream) as ReadableStream,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      duplex: 'half',
    } as RequestInit);
  } finally {
    progress.stop();
    stream.destroy();
  }
}
