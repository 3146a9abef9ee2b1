// How relay CLI commands reach a running relay: URL and token from flags, environment, or,
// on the relay host, the relay's own data dir (relay.json and admin.token).

import { homedir } from 'node:os';
import { join } from 'node:path';
import { isErrorBody } from '@outpost/shared';
import { readAdminToken, readRuntimeFile } from '../data-dir.js';
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
}

export function relayApi(opts: ClientOptions): RelayApi {
  const dataDir = opts.dataDir ?? defaultDataDir();
  let url = opts.relay ?? process.env.OUTPOST_RELAY_URL;
  url ??= readRuntimeFile(dataDir)?.httpUrl;
  if (!url) throw new CliError('no relay given: pass --relay URL or set OUTPOST_RELAY_URL (or run this on the relay host while it runs)');
  const token = opts.token ?? process.env.OUTPOST_TOKEN ?? readAdminToken(dataDir);
  const base = url.replace(/\/+$/, '');
  return {
    url: base,
    token,
    async request<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
      const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
      if (token) headers.authorization = `Bearer ${token}`;
      let payload = init.body;
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, { ...init, method, headers, body: payload });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new RelayUnreachableError(`cannot reach the relay at ${base} (${cause?.code ?? cause?.message ?? (err as Error).message}): is it running? (outpost-relay start)`);
      }
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      let data: unknown;
      try {
        data = text ? JSON.parse(text) : undefined;
      } catch {
        throw new CliError(`the relay at ${base} answered ${res.status} with a body that is not JSON: is that URL an Outpost relay?`);
      }
      if (!res.ok) {
        if (isErrorBody(data)) throw new CliError(`${data.error.code}: ${data.error.message}`, data.error.code);
        throw new CliError(`the relay answered ${res.status} ${res.statusText}`);
      }
      return data as T;
    },
  };
}
