// The agent's HTTP plumbing on node:http: a route table matched by path segments, bodies read
// into one buffer up to a limit, replies as JSON or raw byte chunks. The agent serves a dozen
// fixed routes on small devices, where fastify and its dependencies cost 5–8 MiB of RSS at
// idle (docs/benchmarks.md) for features these routes do not use.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';

/** The inference port: plain HTTP, or HTTPS with the device's certificate. */
export type InferenceServer = Server | HttpsServer;
import { OutpostError, type Logger } from '@outpost/shared';

export type Params = Record<string, string>;

export interface Request {
  method: string;
  /** The path without its query string. */
  path: string;
  headers: IncomingMessage['headers'];
  params: Params;
  /**
   * The whole body as one buffer (read on first call), in an ArrayBuffer of its own so it can be
   * moved to another thread; 413 past `limit` (at most the server's), 429 when the bodies being
   * read already hold the server's memory budget. The byte at `alignAt` starts on an 8-byte
   * boundary, so typed arrays there are views, not copies.
   */
  body(alignAt?: number, limit?: { bytes: number; why: string }): Promise<Buffer>;
}

/** A reply: a JSON value, or raw bytes in chunks written as they are (no copy into one buffer). */
export type Reply = { status?: number; headers?: Record<string, string | number>; json: unknown } | { status?: number; headers: Record<string, string | number>; chunks: Array<Uint8Array | string> };

export type Handler = (request: Request) => Reply | Promise<Reply>;

interface Route {
  method: string;
  segments: string[];
  handler: Handler;
}

export interface RouterOptions {
  log: Logger;
  /** Largest body of any request. */
  bodyLimit: number;
  /** Bytes all request bodies being read or used may hold together. */
  bodyBudget: number | BodyBudget;
  /** Time to receive a request's headers, the whole request, and between two body chunks (ms). */
  timeouts?: Partial<HttpTimeouts>;
  /** Runs before routing (authorization); throw an OutpostError to refuse the request. */
  guard?: (request: Request) => void;
}

export interface HttpTimeouts {
  headersMs: number;
  requestMs: number;
  bodyIdleMs: number;
}

/** nginx-like: 10 s for the headers, 10 s between body chunks, a minute for a whole request. */
export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, requestMs: 60_000, bodyIdleMs: 10_000 };

/** The bytes that request bodies hold, reserved before they are read and freed when the reply is done. */
export class BodyBudget {
  used = 0;
  constructor(readonly limit: number) {}

  reserve(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used -= bytes;
  }
}

export class Router {
  readonly #routes: Route[] = [];
  readonly #opts: RouterOptions;
  readonly budget: BodyBudget;
  readonly #timeouts: HttpTimeouts;

  constructor(opts: RouterOptions) {
    this.#opts = opts;
    // One budget may be shared with the gRPC port: --max-body-memory bounds both together.
    this.budget = typeof opts.bodyBudget === 'number' ? new BodyBudget(opts.bodyBudget) : opts.bodyBudget;
    this.#timeouts = { ...DEFAULT_HTTP_TIMEOUTS, ...opts.timeouts };
  }

  /** `path` segments starting with ':' capture that segment as a param. */
  on(method: 'GET' | 'POST', path: string, handler: Handler): this {
    this.#routes.push({ method, segments: path.split('/'), handler });
    return this;
  }

  /** A node:http server answering with these routes; node:https with a certificate and key. */
  server(tls?: { cert: string; key: string }): InferenceServer {
    // Timeouts are checked every second rather than Node's default 30.
    const handle = (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res);
    const server = tls ? createHttpsServer({ ...tls, minVersion: 'TLSv1.2', handshakeTimeout: 10_000, connectionsCheckingInterval: 1000 }, handle) : createServer({ connectionsCheckingInterval: 1000 }, handle);
    // Node keeps an unfinished request for 5 minutes by default; a stranger's half-sent body must not.
    server.headersTimeout = this.#timeouts.headersMs;
    server.requestTimeout = this.#timeouts.requestMs;
    return server;
  }

  #match(method: string, path: string): { route: Route; params: Params } | undefined {
    const parts = path.split('/');
    for (const route of this.#routes) {
      if (route.method !== method || route.segments.length !== parts.length) continue;
      const params: Params = {};
      const ok = route.segments.every((seg, i) => {
        if (seg.startsWith(':')) {
          params[seg.slice(1)] = decodeURIComponent(parts[i]!);
          return parts[i] !== '';
        }
        return seg === parts[i];
      });
      if (ok) return { route, params };
    }
    return undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const head = req.method === 'HEAD';
    let body: Promise<Buffer> | undefined;
    const read = (alignAt: number, limit?: { bytes: number; why: string }) => {
      const bounded = limit && limit.bytes < this.#opts.bodyLimit ? limit : { bytes: this.#opts.bodyLimit, why: 'the most this agent accepts' };
      return readBody(req, res, bounded, alignAt, this.budget, this.#timeouts.bodyIdleMs);
    };
    const request: Request = { method: req.method ?? 'GET', path, headers: req.headers, params: {}, body: (alignAt = 0, limit) => (body ??= read(alignAt, limit)) };
    try {
      this.#opts.guard?.(request);
      let found;
      try {
        found = this.#match(head ? 'GET' : request.method, path);
      } catch {
        throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `the path ${path} is not validly percent-encoded`);
      }
      if (!found) throw new OutpostError('OUTPOST_ERR_NOT_FOUND', `no route ${request.method} ${url}`);
      request.params = found.params;
      send(res, await found.route.handler(request), head);
    } catch (err) {
      if (err instanceof OutpostError) {
        const headers: Record<string, string> = err.code === 'OUTPOST_ERR_OVERLOADED' ? { 'retry-after': '1' } : {};
        send(res, { status: err.status, headers, json: { error: err.message, code: err.code } }, head);
        // A refused body is not kept: see lingerThenClose.
        if (err.code === 'OUTPOST_ERR_PAYLOAD_TOO_LARGE' || (err as { unreadBody?: boolean }).unreadBody) lingerThenClose(req, res);
      } else {
        this.#opts.log.error({ err, method: request.method, path }, 'request failed');
        send(res, { status: 500, json: { error: 'internal error; the agent log has details', code: 'OUTPOST_ERR_INTERNAL' } }, head);
      }
    }
  }
}

/** How long a refused request's body is read and thrown away before its connection is closed. */
const LINGER_MS = 2000;

/**
 * The answer to a refused body (413, 429) must reach a client that is still sending it. Closing
 * at once would leave its unread bytes in our socket, and the kernel then resets the connection,
 * which can throw away the answer before the client reads it (the "lingering close" of nginx
 * and Apache). So the rest of the body is read and discarded (no memory kept) for up to
 * LINGER_MS; a body still unfinished then has its connection closed.
 */
function lingerThenClose(req: IncomingMessage, res: ServerResponse): void {
  req.removeAllListeners('data');
  req.resume();
  const close = () => {
    if (req.complete) return;
    const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
    timer.unref();
    req.socket.once('close', () => clearTimeout(timer));
  };
  if (res.writableFinished) close();
  else res.once('finish', close);
}

function send(res: ServerResponse, reply: Reply, head: boolean): void {
  if (res.headersSent || res.destroyed) return;
  const chunks = 'json' in reply ? [JSON.stringify(reply.json)] : reply.chunks;
  const length = chunks.reduce((n, c) => n + (typeof c === 'string' ? Buffer.byteLength(c) : c.byteLength), 0);
  res.writeHead(reply.status ?? 200, {
    ...('json' in reply ? { 'content-type': 'application/json; charset=utf-8' } : {}),
    ...reply.headers,
    'content-length': length,
  });
  if (head) {
    res.end();
    return;
  }
  // Corked, the chunks leave in one writev.
  res.cork();
  for (const c of chunks) res.write(c);
  res.end();
  res.uncork();
}

/**
 * The body in one buffer, sized from Content-Length when given; 413 past `limit` bytes, 429 when
 * the budget cannot hold it. The bytes stay reserved until the reply is done (the buffer lives as
 * long as the request). A body that stalls for `idleMs` ends the connection.
 */
function readBody(req: IncomingMessage, res: ServerResponse, limit: { bytes: number; why: string }, alignAt: number, budget: BodyBudget, idleMs: number): Promise<Buffer> {
  const tooLarge = () => new OutpostError('OUTPOST_ERR_PAYLOAD_TOO_LARGE', `the body is larger than ${limit.bytes} bytes, ${limit.why}`);
  const overloaded = () => Object.assign(new OutpostError('OUTPOST_ERR_OVERLOADED', 'the agent is already holding as many request bodies as its memory budget allows (--max-body-memory); retry shortly'), { unreadBody: true });
  const declared = Number(req.headers['content-length']);
  if (declared > limit.bytes) return Promise.reject(tooLarge());
  const known = Number.isInteger(declared) && declared >= 0;
  let reserved = 0;
  const reserve = (bytes: number) => {
    if (!budget.reserve(bytes)) return false;
    reserved += bytes;
    return true;
  };
  if (known && !reserve(declared)) return Promise.reject(overloaded());
  res.once('close', () => budget.release(reserved));
  const pad = (8 - (alignAt % 8)) % 8;
  // Never from Node's shared pool: the buffer may be moved to a session thread whole.
  const own = (size: number) => Buffer.from(Buffer.allocUnsafeSlow(size + pad).buffer, pad, size);
  return new Promise((resolve, reject) => {
    // node's parser ends the body at Content-Length, so a known length fills exactly one buffer.
    const whole = known ? own(declared) : undefined;
    const parts: Buffer[] = [];
    let size = 0;
    let idle: NodeJS.Timeout | undefined;
    const stall = () => {
      clearTimeout(idle);
      idle = setTimeout(() => req.destroy(new Error(`no body bytes for ${idleMs} ms`)), idleMs);
    };
    const fail = (err: Error) => {
      clearTimeout(idle);
      req.removeAllListeners('data');
      reject(err);
    };
    stall();
    req.on('data', (chunk: Buffer) => {
      stall();
      size += chunk.length;
      if (size > limit.bytes) return fail(tooLarge());
      if (whole) chunk.copy(whole, size - chunk.length);
      else {
        // A chunked body holds its parts and then one copy of them.
        if (!reserve(2 * chunk.length)) return fail(overloaded());
        parts.push(chunk);
      }
    });
    req.on('end', () => {
      clearTimeout(idle);
      if (whole) return resolve(whole);
      const body = own(size);
      let at = 0;
      for (const p of parts) at += p.copy(body, at);
      resolve(body);
    });
    req.on('error', fail);
    req.on('close', () => clearTimeout(idle));
  });
}
