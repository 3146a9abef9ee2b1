// A small MQTT 3.1.1 codec for attacking the broker with packets no real client would send:
// lengths that lie, packets before CONNECT, oversized CONNECTs streamed slowly. Real clients
// (MQTT.js) are used for everything else.

import { connect, type Socket } from 'node:net';

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

export function connectPacket(opts: { clientId: string; username?: string; password?: string; keepalive?: number }): Buffer {
  let flags = 0x02; // clean session
  if (opts.username !== undefined) flags |= 0x80;
  if (opts.password !== undefined) flags |= 0x40;
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(opts.keepalive ?? 30);
  const body = Buffer.concat([
    str('MQTT'),
    Buffer.from([4, flags]),
    keepalive,
    str(opts.clientId),
    ...(opts.username !== undefined ? [str(opts.username)] : []),
    ...(opts.password !== undefined ? [str(opts.password)] : []),
  ]);
  return Buffer.concat([fixedHeader(1, 0, body.length), body]);
}

export function publishPacket(topic: string, payload: Buffer | string, opts: { retain?: boolean } = {}): Buffer {
  const body = Buffer.concat([str(topic), Buffer.isBuffer(payload) ? payload : Buffer.from(payload)]);
  return Buffer.concat([fixedHeader(3, opts.retain ? 1 : 0, body.length), body]);
}

export function subscribePacket(messageId: number, filter: string): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(messageId);
  const body = Buffer.concat([id, str(filter), Buffer.from([0])]);
  return Buffer.concat([fixedHeader(8, 2, body.length), body]);
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
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let gone = false;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => {
      gone = true;
      r();
    }));
    socket.once('connect', () =>
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
