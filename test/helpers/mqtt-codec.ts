// A small MQTT 3.1.1 codec, written from the specification apart from any broker's or client's
// code: for attacking the broker with packets no real client would send (lengths that lie,
// packets before CONNECT, oversized CONNECTs streamed slowly), and for the conformance tests'
// raw client (helpers/raw-mqtt.ts), which must withhold acknowledgements and resend packets
// with their original ids. Real clients (MQTT.js) are used for everything else.

import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { trustFor } from './trust.js';

/** The variable-length "remaining length" of a fixed header (any value up to 268,435,455). */
export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

const str = (s: string | Buffer) => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
};

/** A fixed header for packet `type` (1 CONNECT, 3 PUBLISH, 8 SUBSCRIBE, 12 PINGREQ …) claiming `length` bytes. */
export function fixedHeader(type: number, flags: number, length: number): Buffer {
  return Buffer.concat([Buffer.from([(type << 4) | flags]), remainingLength(length)]);
}

export interface Will {
  topic: string;
  payload: Buffer | string;
  qos?: 0 | 1 | 2;
  retain?: boolean;
}

/** A CONNECT: MQTT 3.1.1, or with `protocolLevel: 5` an MQTT 5 one without properties (to see it refused). */
export function connectPacket(opts: { clientId: string; username?: string; password?: string; keepalive?: number; clean?: boolean; will?: Will; protocolLevel?: number }): Buffer {
  let flags = opts.clean === false ? 0 : 0x02; // clean session
  if (opts.will) flags |= 0x04 | ((opts.will.qos ?? 0) << 3) | (opts.will.retain ? 0x20 : 0);
  if (opts.username !== undefined) flags |= 0x80;
  if (opts.password !== undefined) flags |= 0x40;
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(opts.keepalive ?? 30);
  const body = Buffer.concat([
    str('MQTT'),
    Buffer.from([opts.protocolLevel ?? 4, flags]),
    keepalive,
    ...(opts.protocolLevel === 5 ? [Buffer.from([0])] : []), // MQTT 5: no properties
    str(opts.clientId),
    ...(opts.will ? [str(opts.will.topic), str(opts.will.payload)] : []),
    ...(opts.username !== undefined ? [str(opts.username)] : []),
    ...(opts.password !== undefined ? [str(opts.password)] : []),
  ]);
  return Buffer.concat([fixedHeader(1, 0, body.length), body]);
}

export function publishPacket(topic: string, payload: Buffer | string, opts: { retain?: boolean; qos?: 0 | 1 | 2; id?: number; dup?: boolean } = {}): Buffer {
  const qos = opts.qos ?? 0;
  const id = Buffer.alloc(qos > 0 ? 2 : 0);
  if (qos > 0) id.writeUInt16BE(opts.id ?? 1);
  const body = Buffer.concat([str(topic), id, Buffer.isBuffer(payload) ? payload : Buffer.from(payload)]);
  const flags = (opts.dup ? 0x08 : 0) | (qos << 1) | (opts.retain ? 1 : 0);
  return Buffer.concat([fixedHeader(3, flags, body.length), body]);
}

/** PUBACK (4), PUBREC (5), PUBREL (6, flags 0010 as MQTT-3.6.1-1 requires) or PUBCOMP (7) for a packet id. */
export function ackPacket(type: 4 | 5 | 6 | 7, id: number): Buffer {
  const body = Buffer.alloc(2);
  body.writeUInt16BE(id);
  return Buffer.concat([fixedHeader(type, type === 6 ? 2 : 0, 2), body]);
}

export const PINGREQ = Buffer.from([0xc0, 0]);
export const DISCONNECT = Buffer.from([0xe0, 0]);

export function subscribePacket(messageId: number, filter: string | Array<[string, 0 | 1 | 2]>): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(messageId);
  const filters = typeof filter === 'string' ? [[filter, 0] as const] : filter;
  const body = Buffer.concat([id, ...filters.flatMap(([f, qos]) => [str(f), Buffer.from([qos])])]);
  return Buffer.concat([fixedHeader(8, 2, body.length), body]);
}

/** A packet from the broker, decoded as far as the conformance tests look. */
export type Packet =
  | { type: 'connack'; sessionPresent: boolean; returnCode: number }
  | { type: 'publish'; topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean; dup: boolean; id?: number }
  | { type: 'puback'; id: number }
  | { type: 'pubrec'; id: number }
  | { type: 'pubrel'; id: number }
  | { type: 'pubcomp'; id: number }
  | { type: 'unsuback'; id: number }
  | { type: 'suback'; id: number; granted: number[] }
  | { type: 'pingresp' }
  | { type: 'other'; code: number };

const ACKS = { 4: 'puback', 5: 'pubrec', 6: 'pubrel', 7: 'pubcomp', 11: 'unsuback' } as const;

function decodePacket(first: number, body: Buffer): Packet {
  const type = first >> 4;
  if (type === 2) return { type: 'connack', sessionPresent: (body[0]! & 1) === 1, returnCode: body[1]! };
  if (type === 3) {
    const qos = ((first >> 1) & 3) as 0 | 1 | 2;
    const topicLength = body.readUInt16BE(0);
    const topic = body.subarray(2, 2 + topicLength).toString('utf8');
    let at = 2 + topicLength;
    const id = qos > 0 ? body.readUInt16BE(at) : undefined;
    if (qos > 0) at += 2;
    return { type: 'publish', topic, payload: body.subarray(at), qos, retain: (first & 1) === 1, dup: (first & 8) === 8, id };
  }
  if (type in ACKS) return { type: ACKS[type as keyof typeof ACKS], id: body.readUInt16BE(0) };
  if (type === 9) return { type: 'suback', id: body.readUInt16BE(0), granted: [...body.subarray(2)] };
  if (type === 13) return { type: 'pingresp' };
  return { type: 'other', code: type };
}

/** Splits bytes from the broker into packets; keeps an unfinished one for the next chunk. */
export class PacketReader {
  #pending = Buffer.alloc(0);

  push(chunk: Buffer): Packet[] {
    this.#pending = Buffer.concat([this.#pending, chunk]);
    const out: Packet[] = [];
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let at = 1;
      for (;;) {
        if (at >= this.#pending.length) return out;
        const byte = this.#pending[at++]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if (!(byte & 0x80)) break;
      }
      if (this.#pending.length < at + length) return out;
      out.push(decodePacket(this.#pending[0]!, this.#pending.subarray(at, at + length)));
      this.#pending = this.#pending.subarray(at + length);
    }
  }
}

export interface RawConnection {
  socket: Socket;
  /** Every byte the broker sent back. */
  received(): Buffer;
  /** Resolves when the broker closes the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Writes and waits until the socket took the bytes (false once the broker has closed it). */
  send(bytes: Buffer): Promise<boolean>;
}

export function rawConnect(url: string): Promise<RawConnection> {
  const { hostname, port, protocol } = new URL(url);
  // mqtts: the TLS a device speaks, with the relay's CA (recorded by startRelay); the attack
  // is on what comes after the handshake.
  const secure = protocol === 'mqtts:';
  return new Promise((resolve, reject) => {
    const socket = secure ? tlsConnect({ host: hostname, port: Number(port), ...trustFor(url) }) : connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let gone = false;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => {
      gone = true;
      r();
    }));
    socket.once(secure ? 'secureConnect' : 'connect', () =>
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed,
        isClosed: () => gone,
        send: (bytes) =>
          new Promise((r) => {
            if (gone || socket.destroyed) return r(false);
            socket.write(bytes, (err) => r(!err && !gone));
          }),
      }),
    );
    socket.once('error', reject);
  });
}

/** CONNACK's return code (0 accepted, 4 bad credentials, 5 not authorized), or undefined before one arrived. */
export function connackCode(received: Buffer): number | undefined {
  return received.length >= 4 && received[0] === 0x20 ? received[3] : undefined;
}
