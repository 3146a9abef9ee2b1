// One WebSocket subscriber of the fleet stream, with a bounded queue. A slow client never
// slows the relay: sends wait for the socket to drain, health updates for a device replace
// the one still queued, and a client that falls too far behind is closed with TOO_SLOW.

import type { WebSocket } from 'ws';
import { STREAM_CLOSE } from '@outpost/shared';

export interface QueuedMessage {
  seq: number;
  /** Set for health updates: a newer one for the same device replaces this one. */
  coalesceKey?: string;
  json: string;
}

export interface StreamClientLimits {
  /** Most messages waiting for one client before it is dropped. */
  maxQueue: number;
  /** Bytes in the socket's send buffer above which we stop writing until it drains. */
  highWaterBytes: number;
}

export const DEFAULT_CLIENT_LIMITS: StreamClientLimits = { maxQueue: 5000, highWaterBytes: 512 * 1024 };

export class StreamClient {
  readonly #ws: WebSocket;
  readonly #limits: StreamClientLimits;
  #queue: Array<QueuedMessage | undefined> = [];
  #head = 0;
  readonly #coalesced = new Map<string, number>();
  /** Messages queued and not superseded. */
  #live = 0;
  #waiting = false;
  #closed = false;
  lastSeq = 0;

  constructor(ws: WebSocket, limits: StreamClientLimits = DEFAULT_CLIENT_LIMITS) {
    this.#ws = ws;
    this.#limits = limits;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get queued(): number {
    return this.#live;
  }

  send(message: QueuedMessage): void {
    if (this.#closed) return;
    if (message.coalesceKey !== undefined) {
      const at = this.#coalesced.get(message.coalesceKey);
      if (at !== undefined && at >= this.#head && this.#queue[at]) {
        this.#queue[at] = undefined; // superseded, skipped on flush
        this.#live--;
      }
      this.#coalesced.set(message.coalesceKey, this.#queue.length);
    }
    this.#queue.push(message);
    this.#live++;
    if (this.#live > this.#limits.maxQueue) {
      this.close(STREAM_CLOSE.TOO_SLOW, `too slow: reconnect with ?since=${this.lastSeq}`);
      return;
    }
    this.#flush();
  }

  #flush(): void {
    while (!this.#waiting && this.#head < this.#queue.length && !this.#closed) {
      const m = this.#queue[this.#head++];
      if (!m) continue;
      this.#live--;
      if (m.coalesceKey !== undefined && this.#coalesced.get(m.coalesceKey) === this.#head - 1) this.#coalesced.delete(m.coalesceKey);
      this.lastSeq = m.seq;
      if (this.#ws.bufferedAmount > this.#limits.highWaterBytes) {
        // Wait for this write to reach the kernel before writing more.
        this.#waiting = true;
        this.#ws.send(m.json, () => {
          this.#waiting = false;
          this.#flush();
        });
      } else {
        this.#ws.send(m.json);
      }
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      this.#coalesced.clear();
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      // Compact now and then so the array does not grow forever behind the head.
      this.#queue = this.#queue.slice(this.#head);
      for (const [k, v] of this.#coalesced) this.#coalesced.set(k, v - this.#head);
      this.#head = 0;
    }
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    this.#live = 0;
    this.#coalesced.clear();
    this.#ws.close(code, reason);
  }
}
