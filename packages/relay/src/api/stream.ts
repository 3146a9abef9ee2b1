// GET /v1/fleet/stream: the WebSocket upgrade, authenticated before it happens (token in the
// Authorization header or `?token=`, since browsers cannot set headers on a WebSocket).

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { FastifyInstance } from 'fastify';
import { parseCredential, secretMatches } from '../auth/secrets.js';
import type { FleetContext } from '../fleet/context.js';
import type { FleetStream } from '../stream/fleet-stream.js';

export const STREAM_PATH = '/v1/fleet/stream';

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

function apiTokenValid(ctx: FleetContext, token: string | undefined): boolean {
  const cred = token ? parseCredential('opa', token) : null;
  const record = cred ? ctx.store.getApiToken(cred.id) : undefined;
  return Boolean(cred && record && secretMatches(cred.secret, record.hash));
}

export function attachFleetStream(app: FastifyInstance, ctx: FleetContext, stream: FleetStream): void {
  // perMessageDeflate off: compressing every small event costs the relay CPU for little gain.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://relay');
    if (url.pathname !== STREAM_PATH) return refuse(socket, 400, 'OUTPOST_ERR_NOT_FOUND', `no WebSocket at ${url.pathname}; the fleet stream is ${STREAM_PATH}`);
    const header = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    if (!apiTokenValid(ctx, header ?? url.searchParams.get('token') ?? undefined)) {
      return refuse(socket, 401, 'OUTPOST_ERR_UNAUTHORIZED', 'missing or wrong token: pass it as Authorization: Bearer or ?token=');
    }
    const sinceText = url.searchParams.get('since');
    const since = sinceText !== null && /^\d+$/.test(sinceText) ? Number(sinceText) : undefined;
    wss.handleUpgrade(request, socket, head, (ws) => {
      stream.attach(ws, since);
      // Clients only listen; anything they send is ignored (but must not pile up).
      ws.on('message', () => {});
    });
  });
  // preClose, not onClose: the HTTP server cannot finish closing while upgraded sockets live.
  app.addHook('preClose', async () => {
    stream.close();
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  });
}
