// The embedded broker's persistence: aedes' in-memory one with the retained index, and the
// messages a CleanSession 0 session has waiting, bounded and sent again as MQTT 3.1.1 says.
//
// Bounded: aedes keeps every QoS 1 and 2 message for such a session until the client
// acknowledges it, without limit, so a device that subscribes to its own topics and never
// acknowledges would hold the relay's memory by its own publishes (as Mosquitto's
// max_queued_messages, a session keeps a bounded number; past it a message is not kept for it,
// and a connected client that has that many unacknowledged is closed by aedes).
//
// Sent again as the specification says (test/conformance), where aedes 1.2 sends each message
// as it was stored when the client returns:
// - a message queued for an established subscription went out with the RETAIN flag it was
//   published with; MQTT-3.3.1-9 says RETAIN 0 (only a new subscription's copy has RETAIN 1);
// - a PUBLISH sent before the connection dropped went out again with DUP 0; MQTT-3.3.1-1 says
//   a redelivery has DUP 1. aedes gives a packet its id as it first sends it, so a stored
//   PUBLISH with an id is one the client may have seen.

import { Readable } from 'node:stream';
import { IndexedRetainedPersistence } from './retained-index.js';

interface StoredPacket {
  cmd: string;
  messageId?: number;
  retain?: boolean;
  dup?: boolean;
}

/** Messages one CleanSession 0 session may have waiting or unacknowledged. */
export const MAX_WAITING_MESSAGES = 32;

export class BrokerPersistence extends IndexedRetainedPersistence {
  readonly #waiting = new Map<string, number>();
  readonly #onFull: (clientId: string) => void;

  /** `onFull` is told of each message not kept for a session that is full. */
  constructor(onFull: (clientId: string) => void = () => {}) {
    super();
    this.#onFull = onFull;
  }

  #room(clientId: string): boolean {
    const n = this.#waiting.get(clientId) ?? 0;
    if (n >= MAX_WAITING_MESSAGES) {
      this.#onFull(clientId);
      return false;
    }
    this.#waiting.set(clientId, n + 1);
    return true;
  }

  override async outgoingEnqueue(sub: { clientId: string }, packet: object): Promise<void> {
    if (this.#room(sub.clientId)) await super.outgoingEnqueue(sub, packet);
  }

  override async outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void> {
    await super.outgoingEnqueueCombi(subs.filter((s) => this.#room(s.clientId)), packet);
  }

  /** Every way a waiting message leaves: its PUBACK or PUBCOMP, or a clean session emptying the queue. */
  override async outgoingClearMessageId(client: { id: string }, packet: object): Promise<unknown> {
    const removed = await super.outgoingClearMessageId(client, packet);
    if (removed) {
      const n = (this.#waiting.get(client.id) ?? 1) - 1;
      if (n > 0) this.#waiting.set(client.id, n);
      else this.#waiting.delete(client.id);
    }
    return removed;
  }

  override outgoingStream(client: { id: string }): Readable {
    const stored = super.outgoingStream(client);
    return Readable.from(
      (async function* () {
        for await (const packet of stored as AsyncIterable<StoredPacket>) {
          // A copy: aedes wraps it in a new packet to send, and the stored one stays as it was.
          yield packet.cmd === 'publish' ? { ...packet, retain: false, dup: packet.messageId !== undefined } : packet;
        }
      })(),
    );
  }
}
