// A fleet stream client for tests: collects messages and waits for the ones it needs.

import { WebSocket } from 'ws';
import type { StreamMessage } from '@outpost/shared';
import { waitFor } from './wait.js';
import { trustFor } from './trust.js';

export interface StreamTap {
  messages: StreamMessage[];
  ws: WebSocket;
  next<T extends StreamMessage['type']>(type: T, match?: (m: Extract<StreamMessage, { type: T }>) => boolean, timeoutMs?: number): Promise<Extract<StreamMessage, { type: T }>>;
  close(): Promise<void>;
}

export function openStream(httpUrl: string, token: string, query = ''): Promise<StreamTap> {
  const ws = new WebSocket(`${httpUrl.replace(/^http/, 'ws')}/v1/fleet/stream${query}`, { headers: { authorization: `Bearer ${token}` }, ...trustFor(httpUrl) });
  const messages: StreamMessage[] = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString()) as StreamMessage));
  let seen = 0;
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        messages,
        ws,
        async next(type, match = () => true, timeoutMs = 20_000) {
          const found = await waitFor<StreamMessage>(`a ${type} stream message`, () => {
            for (; seen < messages.length; seen++) {
              const m = messages[seen]!;
              if (m.type === type && match(m as never)) {
                seen++;
                return m;
              }
            }
            return undefined;
          }, timeoutMs);
          return found as never;
        },
        close: () =>
          new Promise<void>((r) => {
            if (ws.readyState === WebSocket.CLOSED) return r();
            ws.once('close', () => r());
            ws.close();
          }),
      }),
    );
  });
}

/** Resolves with the HTTP status a refused upgrade got. */
export function refusedUpgrade(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, ...trustFor(url) });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('error', () => {});
  });
}
