// Calls to the relay's HTTP API with the logged-in token: the same API the CLI uses. A refusal
// becomes an ApiError carrying the relay's own one-line message.

import { session } from './session.js';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export async function api<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${session.token() ?? ''}` };
  let payload: BodyInit | undefined;
  if (body instanceof Blob) {
    payload = body;
    headers['content-type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch {
    throw new ApiError('the relay cannot be reached: is it running?', 0);
  }
  if (res.status === 204) return undefined as T;
  const answer = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
  if (!res.ok) {
    const message = answer?.error?.message ?? `${method} ${path}: HTTP ${res.status}`;
    // A token the relay no longer takes (revoked, expired) ends the session, saying why.
    if (res.status === 401) session.end(`${message}: log in with another token`);
    throw new ApiError(message, res.status);
  }
  return answer as T;
}

export const get = <T>(path: string) => api<T>('GET', path);

/** A file from the relay (a job output), with the token. */
export async function download(path: string): Promise<Blob> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${session.token() ?? ''}` } }).catch(() => {
    throw new ApiError('the relay cannot be reached: is it running?', 0);
  });
  if (!res.ok) {
    const answer = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new ApiError(answer?.error?.message ?? `${path}: HTTP ${res.status}`, res.status);
  }
  return res.blob();
}
