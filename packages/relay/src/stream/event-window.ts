// The fleet stream's window of recent events: a ring of fixed size, so adding an event costs the
// same however full it is (a 10,000-entry array trimmed with splice on every event moved every
// entry each time; at 20,000 devices coming online that showed in the relay's profile).

import type { QueuedMessage } from './stream-client.js';

export class EventWindow {
  readonly #ring: Array<QueuedMessage | undefined>;
  /** Where the oldest event is. */
  #head = 0;
  #length = 0;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`the window holds at least one event, not ${size}`);
    this.#ring = new Array<QueuedMessage | undefined>(size);
  }

  get length(): number {
    return this.#length;
  }

  /** The oldest event's seq, if any. */
  get oldestSeq(): number | undefined {
    return this.#length === 0 ? undefined : this.#ring[this.#head]!.seq;
  }

  /** Adds the newest event, forgetting the oldest once the window is full. */
  push(message: QueuedMessage): void {
    const size = this.#ring.length;
    if (this.#length < size) {
      this.#ring[(this.#head + this.#length) % size] = message;
      this.#length++;
      return;
    }
    this.#ring[this.#head] = message;
    this.#head = (this.#head + 1) % size;
  }

  /** The events after `seq`, oldest first. */
  *after(seq: number): Generator<QueuedMessage> {
    const size = this.#ring.length;
    for (let i = 0; i < this.#length; i++) {
      const m = this.#ring[(this.#head + i) % size]!;
      if (m.seq > seq) yield m;
    }
  }
}
