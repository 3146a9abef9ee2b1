// GET /v1/fleet/stream: the WebSocket upgrade, authenticated before it happens (token in the
// Authorization header or `?token=`, since browsers cannot set headers on a WebSocket). Any API
// token may watch (viewer and up). A socket lasts only as long as its token: revoking the token
// closes it at once, and it is closed when the token expires (STREAM_CLOSE.TOKEN_ENDED).

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { FastifyInstance } from 'fastify';
import { OutpostError, STREAM_CLOSE, guardedTimeout, type Logger } from '@outpost/shared';
import type { ApiTokens, TokenCaller } from '../auth/api-tokens.js';
import type { FleetStream } from '../stream/fleet-stream.js';
import type { StreamClient } from '../stream/stream-client.js';
import { authorize } from './access.js';

export const STREAM_PATH = '/v1/fleet/stream';
/** setTimeout's longest delay; a later expiry is looked at again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const text = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Bad Request';
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

export function attachFleetStream(app: FastifyInstance, deps: { tokens: ApiTokens; stream: FleetStream }): void {
  const { tokens, stream } = deps;
  // perMessageDeflate off: compressing every small event costs the relay CPU for little gain.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
  /** Open sockets by the token they were opened with. */
  const byToken = new Map<string, Set<StreamClient>>();
  tokens.onRevoked((tokenId) => {
    for (const client of byToken.get(tokenId) ?? []) client.close(STREAM_CLOSE.TOKEN_ENDED, 'the token was revoked');
  });

  const untilExpiry = (ws: WebSocket, client: StreamClient, caller: TokenCaller): void => {
    if (caller.expiresAt === null) return;
    const timer = guardedTimeout(app.log as Logger, 'closing streams of an expired token', Math.min(MAX_TIMER_MS, Math.max(0, caller.expiresAt - Date.now())), async () => {
      if (!(await tokens.isLive(caller.id))) client.close(STREAM_CLOSE.TOKEN_ENDED, 'the token expired');
      else untilExpiry(ws, client, caller);
    });
    ws.once('close', () => clearTimeout(timer));
  };

  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // The token check reads the store: a failure there answers 500, never an unhandled rejection.
    upgrade(request, socket, head).catch((err: unknown) => {
      app.log.error({ err }, 'fleet stream upgrade failed');
      refuse(socket, 500, 'OUTPOST_ERR_INTERNAL', 'the relay could not check the token; its log says why');
    });
  });
  const upgrade = async (request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://relay');
    if (url.pathname !== STREAM_PATH) return refuse(socket, 400, 'OUTPOST_ERR_NOT_FOUND', `no WebSocket at ${url.pathname}; the fleet stream is ${STREAM_PATH}`);
    const header = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    let caller: TokenCaller;
    try {
      // API tokens only: a device secret is no more a token here than it was before roles.
      const credential = header ?? url.searchParams.get('token');
      const found = credential ? await tokens.authenticate(credential) : undefined;
      if (!found) throw new OutpostError('OUTPOST_ERR_UNAUTHORIZED', 'missing or wrong token: pass it as Authorization: Bearer or ?token=');
      authorize('viewer', found, `GET ${STREAM_PATH}`);
      caller = found;
    } catch (err) {
      const e = err as OutpostError;
      return refuse(socket, e.status, e.code, e.message);
    }
    const sinceText = url.searchParams.get('since');
    const since = sinceText !== null && /^\d+$/.test(sinceText) ? Number(sinceText) : undefined;
    wss.handleUpgrade(request, socket, head, (ws) => {
      const client = stream.attach(ws, since);
      // Revoked while the upgrade was under way.
      let open = byToken.get(caller.id);
      if (!open) byToken.set(caller.id, (open = new Set()));
      open.add(client);
      ws.once('close', () => {
        open.delete(client);
        if (open.size === 0 && byToken.get(caller.id) === open) byToken.delete(caller.id);
      });
      untilExpiry(ws, client, caller);
      // Clients only listen; anything they send is ignored (but must not pile up).
      ws.on('message', () => {});
      // Revoked while the upgrade was under way (onRevoked has told the sockets open before).
      tokens.isLive(caller.id).then(
        (live) => live || client.close(STREAM_CLOSE.TOKEN_ENDED, 'the token was revoked'),
        (err: unknown) => app.log.error({ err }, 'could not check a stream token'),
      );
    });
  };
  // preClose, not onClose: the HTTP server cannot finish closing while upgraded sockets live.
  app.addHook('preClose', async () => {
    stream.close();
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  });
}
