// The fleet stream's hub: numbers every fleet event, keeps a bounded window of recent ones
// for clients that reconnect with `?since=`, and fans each event out to every client. Each
// event is serialized once, whatever the number of clients.

import type { FleetEvent, FleetSnapshot, StreamMessage } from '@outpost/shared';
import { STREAM_CLOSE } from '@outpost/shared';
import type { WebSocket } from 'ws';
import { DEFAULT_CLIENT_LIMITS, StreamClient, type QueuedMessage, type StreamClientLimits } from './stream-client.js';

export interface FleetStreamOptions {
  snapshot(): Omit<FleetSnapshot, 'type'>;
  /** How many recent events a reconnecting client can catch up on. */
  window?: number;
  limits?: StreamClientLimits;
  now?: () => number;
}

export class FleetStream {
  readonly #opts: FleetStreamOptions;
  readonly #window: QueuedMessage[] = [];
  readonly #windowSize: number;
  readonly #clients = new Set<StreamClient>();
  /** Seqs start at the relay's start time, so they keep growing across restarts. */
  #seq: number;
  messagesSent = 0;
  clientsDropped = 0;

  constructor(opts: FleetStreamOptions) {
    this.#opts = opts;
    this.#windowSize = opts.window ?? 10_000;
    this.#seq = (opts.now ?? Date.now)();
  }

  get clients(): number {
    return this.#clients.size;
  }

  get seq(): number {
    return this.#seq;
  }

  publish(event: FleetEvent): void {
    const seq = ++this.#seq;
    const message = { ...event, seq, ts: new Date((this.#opts.now ?? Date.now)()).toISOString() } as StreamMessage;
    const queued: QueuedMessage = { seq, json: JSON.stringify(message), coalesceKey: event.type === 'device.health' ? event.deviceId : undefined };
    this.#window.push(queued);
    if (this.#window.length > this.#windowSize) this.#window.splice(0, this.#window.length - this.#windowSize);
    for (const client of this.#clients) {
      client.send(queued);
      this.messagesSent++;
      if (client.closed) this.#drop(client);
    }
  }

  /** Adds a client: the events after `since` when the window still has them, else a snapshot. */
  attach(ws: WebSocket, since?: number): StreamClient {
    const client = new StreamClient(ws, this.#opts.limits ?? DEFAULT_CLIENT_LIMITS);
    const oldest = this.#window[0]?.seq ?? this.#seq + 1;
    if (since !== undefined && since >= oldest - 1 && since <= this.#seq) {
      for (const m of this.#window) if (m.seq > since) client.send(m);
    } else {
      const snapshot = { type: 'snapshot', ...this.#opts.snapshot(), seq: this.#seq, ts: new Date((this.#opts.now ?? Date.now)()).toISOString() };
      client.send({ seq: this.#seq, json: JSON.stringify(snapshot) });
    }
    this.#clients.add(client);
    ws.on('close', () => this.#clients.delete(client));
    ws.on('error', () => this.#clients.delete(client));
    return client;
  }

  #drop(client: StreamClient): void {
    this.#clients.delete(client);
    this.clientsDropped++;
  }

  close(): void {
    for (const client of this.#clients) client.close(STREAM_CLOSE.GOING_AWAY, 'relay shutting down');
    this.#clients.clear();
  }
}
