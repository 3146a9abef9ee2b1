// The fleet stream over WebSocket: every message goes into the one fleet model, and listeners
// learn what changed. Reconnects with backoff and `?since=` the last seq it handled.

import { FleetModel, STREAM_CLOSE, type FleetChange, type StreamMessage } from '@outpost/shared/browser';
import { session } from './session.js';

export const fleet = new FleetModel();

type Listener = (change: FleetChange, message: StreamMessage) => void;
const listeners = new Set<Listener>();
type ConnListener = (live: boolean) => void;
const connListeners = new Set<ConnListener>();

export function onChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function onConnection(listener: ConnListener): void {
  connListeners.add(listener);
}

/** Resolves once the model holds a snapshot (or after `ms`, so a page opens even without one). */
export function snapshotOrTimeout(ms: number): Promise<void> {
  if (fleet.lastSeq > 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    const off = onChange((c) => c.kind === 'reset' && done());
    function done() {
      clearTimeout(timer);
      off();
      resolve();
    }
  });
}

let socket: WebSocket | null = null;
let backoff = 250;
let retry: ReturnType<typeof setTimeout> | undefined;

export function connect(): void {
  const token = session.token();
  if (!token) return;
  const url = new URL('/v1/fleet/stream', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('token', token);
  if (fleet.lastSeq) url.searchParams.set('since', String(fleet.lastSeq));
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => {
    backoff = 250;
    for (const l of connListeners) l(true);
  };
  ws.onmessage = (e: MessageEvent<string>) => {
    let m: StreamMessage;
    try {
      m = JSON.parse(e.data) as StreamMessage;
    } catch {
      return; // not the relay's
    }
    const change = fleet.apply(m);
    if (change.kind === 'none') return;
    for (const l of listeners) l(change, m);
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    socket = null;
    if (e.code === STREAM_CLOSE.TOKEN_ENDED) {
      session.end(`${e.reason || 'your token ended'}: log in with another token`);
      return;
    }
    for (const l of connListeners) l(false);
    retry = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  };
}

export function disconnect(): void {
  clearTimeout(retry);
  const s = socket;
  socket = null;
  s?.close();
  fleet.clear();
  fleet.jobRounds.clear(); // FleetModel.clear() leaves them
}
