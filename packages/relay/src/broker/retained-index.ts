// aedes' in-memory persistence, with retained messages found by topic. The stock one scans
// every retained message for every subscription (O(retained) per SUBSCRIBE), and each device
// keeps several retained topics: connecting 10,000 devices made 10,000 × 40,000 topic tests.
// Devices subscribe to exact topics, which here are one Map lookup; wildcard subscriptions
// (the relay's own, a handful) still scan.

import { Readable } from 'node:stream';
import MemoryPersistence, { type RetainedPacket } from 'aedes-persistence/asyncPersistence.js';

/** MQTT topic matching: `+` one level, `#` the rest; wildcards at the start skip `$` topics. */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (p[0] === '+' || p[0] === '#')) return false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true;
    if (i >= t.length) return false;
    if (p[i] !== '+' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

export class IndexedRetainedPersistence extends MemoryPersistence {
  readonly #retained = new Map<string, RetainedPacket>();

  override async storeRetained(packet: RetainedPacket): Promise<void> {
    if (packet.payload.length === 0) this.#retained.delete(packet.topic);
    else this.#retained.set(packet.topic, { ...packet });
  }

  override createRetainedStream(pattern: string): Readable {
    return Readable.from(this.#match(pattern));
  }

  override createRetainedStreamCombi(patterns: string[]): Readable {
    return Readable.from(patterns.flatMap((p) => this.#match(p)));
  }

  #match(pattern: string): RetainedPacket[] {
    if (!pattern.includes('+') && !pattern.includes('#')) {
      const packet = this.#retained.get(pattern);
      return packet ? [packet] : [];
    }
    return [...this.#retained.values()].filter((p) => topicMatches(pattern, p.topic));
  }
}
