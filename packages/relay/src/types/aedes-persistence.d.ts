// aedes-persistence ships types for its callback wrapper only; this is its in-memory async class.
declare module 'aedes-persistence/asyncPersistence.js' {
  import type { Readable } from 'node:stream';
  export interface RetainedPacket {
    cmd: string;
    topic: string;
    payload: Buffer;
    qos: number;
    retain: boolean;
  }
  export default class MemoryPersistence {
    constructor(opts?: Record<string, unknown>);
    setup(broker: unknown): Promise<void>;
    storeRetained(packet: RetainedPacket): Promise<void>;
    createRetainedStream(pattern: string): Readable;
    createRetainedStreamCombi(patterns: string[]): Readable;
    // What CleanSession 0 sessions have in flight or waiting: PUBLISH and PUBREL packets.
    outgoingEnqueue(sub: { clientId: string }, packet: object): Promise<void>;
    outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
    outgoingUpdate(client: { id: string }, packet: object): Promise<void>;
    outgoingClearMessageId(client: { id: string }, packet: object): Promise<unknown>;
    outgoingStream(client: { id: string }): Readable;
  }
}
