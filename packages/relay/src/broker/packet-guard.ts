// A maximum MQTT packet size that holds before authentication, as Mosquitto's
// `max_packet_size` does. aedes hands every byte to mqtt-packet's parser, which buffers a
// packet until its declared length has arrived: a CONNECT that declares 256 MB is kept in
// memory as it streams in, by a stranger who never authenticates. This stream sits between the
// socket and aedes and reads each packet's fixed header (type, then the remaining length as a
// variable-length integer) as the bytes pass; a packet over the limit closes the connection
// before its body is buffered. Until the client has authenticated, only a CONNECT is allowed,
// it must be small, and all unauthenticated connections together share one byte budget.

import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

export interface PacketLimits {
  /** Largest packet before authentication (a CONNECT with its will). */
  preAuthPacketBytes: number;
  /** Bytes one connection may send before it has authenticated. */
  preAuthBytes: number;
}

export const DEFAULT_PACKET_LIMITS: PacketLimits = { preAuthPacketBytes: 16 * 1024, preAuthBytes: 64 * 1024 };

/** Bytes all unauthenticated connections have sent, together. */
export class PreAuthBudget {
  used = 0;
  constructor(readonly limit: number) {}
}

const CONNECT = 1;

export class PacketGuard extends Duplex {
  readonly #socket: Socket;
  readonly #limits: PacketLimits;
  readonly #budget: PreAuthBudget;
  /** Past authentication: the largest packet this client may send; until then, undefined. */
  #maxPacket: number | undefined;
  #preAuthUsed = 0;
  // Fixed-header scanner state.
  #need: 'type' | 'length' | 'body' = 'type';
  #type = 0;
  #length = 0;
  #multiplier = 1;
  #left = 0;
  #packets = 0;
  /** Why the connection was closed, for the log. */
  refused: string | undefined;

  constructor(socket: Socket, limits: PacketLimits, budget: PreAuthBudget) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#limits = limits;
    this.#budget = budget;
    socket.on('data', (chunk: Buffer) => {
      if (!this.#scan(chunk)) return;
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  /** The client authenticated: from now on its packets may be up to `maxPacketBytes`. */
  authenticated(maxPacketBytes: number): void {
    if (this.#maxPacket !== undefined) return;
    this.#maxPacket = maxPacketBytes;
    this.#budget.used -= this.#preAuthUsed;
    this.#preAuthUsed = 0;
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  /** Scans a chunk's packet headers; false (and the connection closed) when one breaks a limit. */
  #scan(chunk: Buffer): boolean {
    if (this.#maxPacket === undefined) {
      this.#preAuthUsed += chunk.length;
      this.#budget.used += chunk.length;
      if (this.#preAuthUsed > this.#limits.preAuthBytes) return this.#refuse(`sent ${this.#preAuthUsed} bytes before authenticating (at most ${this.#limits.preAuthBytes})`);
      if (this.#budget.used > this.#budget.limit) return this.#refuse('unauthenticated connections are over their shared byte budget');
    }
    let i = 0;
    while (i < chunk.length) {
      if (this.#need === 'body') {
        const take = Math.min(this.#left, chunk.length - i);
        this.#left -= take;
        i += take;
        if (this.#left === 0) this.#need = 'type';
        continue;
      }
      const byte = chunk[i++]!;
      if (this.#need === 'type') {
        this.#type = byte >> 4;
        this.#length = 0;
        this.#multiplier = 1;
        this.#need = 'length';
        continue;
      }
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      if (byte & 0x80) {
        // The remaining length has at most four bytes (MQTT 3.1.1 §2.2.3).
        if (this.#multiplier >= 128 ** 4) return this.#refuse('malformed remaining length');
        continue;
      }
      if (!this.#headerDone()) return false;
      this.#left = this.#length;
      this.#need = this.#left > 0 ? 'body' : 'type';
    }
    return true;
  }

  #headerDone(): boolean {
    const first = this.#packets++ === 0;
    if (this.#maxPacket === undefined) {
      if (first && this.#type !== CONNECT) return this.#refuse('the first packet is not a CONNECT');
      if (this.#length > this.#limits.preAuthPacketBytes) return this.#refuse(`a ${this.#length}-byte packet before authenticating (at most ${this.#limits.preAuthPacketBytes})`);
    } else if (this.#length > this.#maxPacket) {
      return this.#refuse(`a ${this.#length}-byte packet (at most ${this.#maxPacket})`);
    }
    return true;
  }

  #refuse(why: string): false {
    this.refused ??= why;
    this.emit('refused', why);
    this.#socket.destroy();
    this.destroy();
    return false;
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.#socket.destroyed) return done();
    if (this.#socket.write(chunk)) done();
    else this.#socket.once('drain', () => done());
  }

  // aedes corks this stream around each packet it writes (mqtt-packet writes a packet as several
  // chunks). Without _writev the cork would stop here and each chunk reach the socket as its
  // own write: the header in one segment, the payload held back by Nagle until the peer's
  // delayed ACK, ~40 ms per message (bench/federated/publish-latency.mjs). A corked batch goes
  // to the socket corked, as one segment.
  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    if (this.#socket.destroyed) return done();
    this.#socket.cork();
    let ok = true;
    for (const { chunk } of chunks) ok = this.#socket.write(chunk);
    this.#socket.uncork();
    if (ok) done();
    else this.#socket.once('drain', () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#socket.end(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.#budget.used -= this.#preAuthUsed;
    this.#preAuthUsed = 0;
    this.#socket.destroy();
    done(err);
  }
}
