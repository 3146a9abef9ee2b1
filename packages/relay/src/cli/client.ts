// How relay CLI commands reach a running relay: URL, token and the CA to trust from flags,
// environment, or, on the relay host, the relay's own data dir (relay.json, admin.token and
// tls/ca.crt).

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isErrorBody, relayUrl, tlsConnectOptions, tlsFetch, type ClientTls, type TlsClientOptions } from '@outpost/shared';
import { processAlive, readAdminToken, readCaCert, readRuntimeFile, type RelayRuntimeFile } from '../data-dir.js';
import { CliError, RelayUnreachableError } from './output.js';

export interface ClientOptions {
  relay?: string;
  token?: string;
  /** The relay CA's certificate file (env OUTPOST_CA_FILE). */
  ca?: string;
  dataDir?: string;
  json?: boolean;
}

export function defaultDataDir(): string {
  return process.env.OUTPOST_RELAY_DIR ?? join(homedir(), '.outpost', 'relay');
}

export interface RelayApi {
  url: string;
  token: string | undefined;
  /** Options for a TLS client of the relay (the fleet stream's WebSocket). */
  tls: TlsClientOptions;
  request<T>(method: string, path: string, body?: unknown, init?: RequestInit): Promise<T>;
  /** A GET whose answer is not JSON (a file): the response, once it is known to be a success. */
  download(path: string): Promise<Response>;
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
  if (runtime && processAlive(runtime.pid)) return runtime.httpUrl;
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

/** The CA to trust: --ca, OUTPOST_CA_FILE, or the local relay's; the system's roots as well. */
function trustedCa(opts: ClientOptions, dataDir: string): ClientTls {
  const file = opts.ca ?? process.env.OUTPOST_CA_FILE;
  if (!file) return { ca: readCaCert(dataDir) };
  try {
    return { ca: readFileSync(file, 'utf8') };
  } catch (err) {
    throw new CliError(`${opts.ca ? '--ca' : 'OUTPOST_CA_FILE'} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message} (outpost-relay ca on the relay host prints the CA)`);
  }
}

/** One line for a connection that failed in TLS: what it means and what to do. */
function tlsProblem(base: string, code: string | undefined, message: string): string | undefined {
  const fix = 'pass --ca FILE or set OUTPOST_CA_FILE (outpost-relay ca on the relay host prints it)';
  if (code && /CERT|SIGNATURE|ISSUER|SELF_SIGNED/.test(code) && code !== 'ERR_TLS_CERT_ALTNAME_INVALID') return `the relay at ${base} has a certificate this host does not trust (${code}): ${fix}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the relay's certificate does not cover the name in ${base} (${code}): use a name it covers (outpost-relay start --advertise-host NAME adds one)`;
  if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(message)) return `${base} does not speak TLS: the relay runs with --insecure; use http:// instead of https://`;
  if (base.startsWith('http:') && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) return `the relay at ${base} closed the connection: it serves HTTPS unless started with --insecure; use https://`;
  return undefined;
}

export function relayApi(opts: ClientOptions): RelayApi {
  const dataDir = opts.dataDir ?? defaultDataDir();
  const base = givenUrl(opts) ?? localRelayUrl(dataDir, opts.dataDir !== undefined).replace(/\/+$/, '');
  const token = opts.token ?? process.env.OUTPOST_TOKEN ?? readAdminToken(dataDir);
  const trust = trustedCa(opts, dataDir);
  const fetchRelay = tlsFetch(trust);

  async function send(method: string, path: string, init: RequestInit & { headers?: Record<string, string> }): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      return await fetchRelay(`${base}${path}`, { ...init, method, headers });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const tlsLine = tlsProblem(base, cause?.code, cause?.message ?? '');
      if (tlsLine) throw new CliError(tlsLine);
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
    tls: tlsConnectOptions(trust),
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
