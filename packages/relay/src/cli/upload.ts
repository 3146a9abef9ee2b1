// Uploads a file as a request body, with a progress bar on stderr for large ones.

import { createReadStream, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { RelayApi } from './client.js';
import { CliError } from './output.js';
import { byteProgress } from './progress.js';

export async function uploadFile<T>(api: RelayApi, path: string, file: string, label: string): Promise<T> {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new CliError(`cannot read ${file}: no such file`);
  }
  const progress = byteProgress(label, size);
  let sent = 0;
  const stream = createReadStream(file).on('data', (chunk) => progress.update((sent += chunk.length)));
  try {
    return await api.request<T>('POST', path, undefined, {
      body: Readable.toWeb(stream) as ReadableStream,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      duplex: 'half',
    } as RequestInit);
  } finally {
    progress.stop();
  }
}
