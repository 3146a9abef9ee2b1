// How relay CLI commands reach a running relay: URL and token from flags, environment, or,
// on the relay host, the relay's own data dir (relay.json and admin.token).

import { homedir } from 'node:os';
import { join } from 'node:path';
import { isErrorBody, relayUrl } from '@outpost/shared';
import { readAdminToken, readRuntimeFile, type RelayRuntimeFile } from '../data-dir.js';
import { CliError, RelayUnreachableError } from './output.js';

export interface ClientOptions {
  relay?: string;
  token?: string;
  dataDir?: string;
  json?: boolean;
}

export function defaultDataDir(): string {
  return process.env.OUTPOST_RELAY_DIR ?? join(homedir(), '.outpost', 'relay');
}

export interface RelayApi {
  url: string;
  token: string | undefined;
  request<T>(method: string, path: string, body?: unknown, init?: RequestInit): Promise<T>;
  /** A GET whose answer is not JSON (a file): the response, once it is known to be a success. */
  download(path: string): Promise<Response>;
}

function alive(pid: unknown): boolean {
  if (!Number.isInteger(pid) || (pid as number) <= 0) return false;
  try {
    process.kill(pid as number, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The URL of the relay running from `dataDir` on this host. A data dir with an admin token but
 * no live relay.json is a relay that is stopped (or was killed): saying so beats "no relay given".
 */
function localRelayUrl(dataDir: string, givenDataDir: boolean): string {
  let runtime: RelayRuntimeFile | undefined;
  try {
    runtime = readRuntimeFile(dataDir);
  } catch {
    runtime = undefined; // half written: the relay is not running from it
  }
  if (runtime && alive(runtime.pid)) return runtime.httpUrl;
  const start = `outpost-relay start${givenDataDir ? ` --data-dir ${dataDir}` : ''}`;
  if (runtime || readAdminToken(dataDir) !== undefined) {
    throw new CliError(`the relay in ${dataDir} is not running${runtime ? ` (pid ${runtime.pid} is gone)` : ''}: start it with ${start} (or pass --relay URL)`);
  }
  throw new CliError(`no relay given, and none was ever started from ${dataDir}: pass --relay URL or set OUTPOST_RELAY_URL (or --data-dir DIR on the relay host)`);
}

function givenUrl(opts: ClientOptions): string | undefined {
  const [text, from] = opts.relay !== undefined ? [opts.relay, '--relay'] : [process.env.OUTPOST_RELAY_URL || undefined, 'OUTPOST_RELAY_URL'];
  if (text === undefined) return undefined;
  try {
    return relayUrl(text);
  } catch (err) {
    throw new CliError(`${from}: ${(err as Error).message}`);
  }
}

export function relayApi(opts: ClientOptions): RelayApi {
  const dataDir = opts.dataDir ?? defaultDataDir();
  const base = givenUrl(opts) ?? localRelayUrl(dataDir, opts.dataDir !== undefined).replace(/\/+$/, '');
  const token = opts.token ?? process.env.OUTPOST_TOKEN ?? readAdminToken(dataDir);

  async function send(method: string, path: string, init: RequestInit & { headers?: Record<string, string> }): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      return await fetch(`${base}${path}`, { ...init, method, headers });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new RelayUnreachableError(`cannot reach the relay at ${base} (${cause?.code ?? cause?.message ?? (err as Error).message}): is it running? (outpost-relay start)`);
    }
  }

  async function failure(res: Response): Promise<CliError> {
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      return new CliError(`the relay at ${base} answered ${res.status} with a body that is not JSON: is that URL an Outpost relay?`);
    }
    return isErrorBody(data) ? new CliError(`${data.error.code}: ${data.error.message}`, data.error.code) : new CliError(`the relay answered ${res.status} ${res.statusText}`);
  }

  return {
    url: base,
    token,
    async request<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
      const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
      let payload = init.body;
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const res = await send(method, path, { ...init, headers, body: payload });
      if (res.status === 204) return undefined as T;
      if (!res.ok) throw await failure(res);
      const text = await res.text();
      try {
        return (text ? JSON.parse(text) : undefined) as T;
      } catch {
        throw new CliError(`the relay at ${base} answered ${res.status} with a body that is not JSON: is that URL an Outpost relay?`);
      }
    },
    async download(path: string): Promise<Response> {
      const res = await send('GET', path, {});
      if (!res.ok) throw await failure(res);
      return res;
    },
  };
}
