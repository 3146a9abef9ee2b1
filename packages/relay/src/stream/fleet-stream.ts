// The fleet stream's hub: numbers every fleet event, keeps a bounded window of recent ones
// for clients that reconnect with `?since=`, and fans each event out to every client. Each
// event is serialized once, whatever the number of clients.

import type { FleetEvent, FleetSnapshot, StreamMessage } from '@outpost/shared';
import { STREAM_CLOSE } from '@outpost/shared';
import type { WebSocket } from 'ws';
import { DEFAULT_CLIENT_LIMITS, StreamClient, type QueuedMessage, type StreamClientLimits } from './stream-client.js';
import { EventWindow } from './event-window.js';

export interface FleetStreamOptions {
  /** The fleet now, read from the store. */
  snapshot(): Promise<Omit<FleetSnapshot, 'type'>>;
  /** Told when a snapshot could not be read (the client is closed; it reconnects). */
  onSnapshotError?(err: unknown): void;
  /** The seq the stream starts after (default: the time now, in ms, so seqs grow across restarts). */
  startSeq?: number;
  /** How many recent events a reconnecting client can catch up on. */
  window?: number;
  limits?: StreamClientLimits;
  now?: () => number;
}

export class FleetStream {
  readonly #opts: FleetStreamOptions;
  readonly #window: EventWindow;
  readonly #clients = new Set<StreamClient>();
  /** Seqs start at the relay's start time, so they keep growing across restarts. */
  #seq: number;
  messagesSent = 0;
  clientsDropped = 0;

  constructor(opts: FleetStreamOptions) {
    this.#opts = opts;
    this.#window = new EventWindow(opts.window ?? 10_000);
    this.#seq = opts.startSeq ?? (opts.now ?? Date.now)();
  }

  get clients(): number {
    return this.#clients.size;
  }

  get seq(): number {
    return this.#seq;
  }

  /** Numbers an event and sends it (one relay: this relay numbers the fleet's events). */
  publish(event: FleetEvent): void {
    this.deliver({ ...event, seq: this.#seq + 1, ts: new Date((this.#opts.now ?? Date.now)()).toISOString() } as StreamMessage);
  }

  /**
   * Sends an event numbered elsewhere (several relays: the store numbers them, so that every
   * relay sends the same seqs in the same order and `?since=` works on any of them). Seqs at or
   * below the last one sent are not sent again.
   */
  deliver(message: StreamMessage): void {
    if (message.seq <= this.#seq) return;
    this.#seq = message.seq;
    const queued: QueuedMessage = { seq: message.seq, json: JSON.stringify(message), coalesceKey: message.type === 'device.health' ? message.deviceId : undefined };
    this.#window.push(queued);
    for (const client of this.#clients) {
      client.send(queued);
      this.messagesSent++;
      if (client.closed) this.#drop(client);
    }
  }

  /**
   * Adds a client: the events after `since` when the window still has them, else a snapshot.
   * The snapshot is read from the store after its seq is taken, so it is at least that new;
   * the events published while it was read follow it (applying one twice changes nothing).
   */
  attach(ws: WebSocket, since?: number): StreamClient {
    const client = new StreamClient(ws, this.#opts.limits ?? DEFAULT_CLIENT_LIMITS);
    ws.on('close', () => this.#clients.delete(client));
    ws.on('error', () => this.#clients.delete(client));
    const oldest = this.#window.oldestSeq ?? this.#seq + 1;
    if (since !== undefined && since >= oldest - 1 && since <= this.#seq) {
      this.#catchUp(ws, client, since);
      return client;
    }
    this.#snapshot(ws, client, 1);
    return client;
  }

  /**
   * Reads a snapshot, then sends it and the events since its seq. When more events came in while
   * it was read than the window keeps, some are gone: it reads a new one (three tries, then the
   * client is told to reconnect).
   */
  #snapshot(ws: WebSocket, client: StreamClient, attempt: number): void {
    const seq = this.#seq;
    this.#opts.snapshot().then(
      (fleet) => {
        if (client.closed) return;
        const oldest = this.#window.oldestSeq ?? this.#seq + 1;
        if (oldest > seq + 1) {
          if (attempt < 3) return this.#snapshot(ws, client, attempt + 1);
          client.close(STREAM_CLOSE.GOING_AWAY, 'the fleet changed faster than a snapshot could be read; reconnect');
          return;
        }
        const snapshot = { type: 'snapshot', ...fleet, seq, ts: new Date((this.#opts.now ?? Date.now)()).toISOString() };
        client.send({ seq, json: JSON.stringify(snapshot) });
        this.#catchUp(ws, client, seq);
      },
      (err: unknown) => {
        this.#opts.onSnapshotError?.(err);
        client.close(STREAM_CLOSE.GOING_AWAY, 'the relay could not read the fleet; reconnect');
      },
    );
  }

  /** Sends the window's events after `since`, then every new one. */
  #catchUp(ws: WebSocket, client: StreamClient, since: number): void {
    for (const m of this.#window.after(since)) client.send(m);
    // A socket that closed while the snapshot was read has fired its close already.
    if (!client.closed && ws.readyState === ws.OPEN) this.#clients.add(client);
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
