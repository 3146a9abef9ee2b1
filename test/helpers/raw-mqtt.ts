// A raw MQTT 3.1.1 client for the conformance tests: it sends what a test tells it to, packet by
// packet, and nothing by itself but the acknowledgements of `autoAck` (no resend, no reconnect),
// so a test can leave a QoS 1 or 2 flow half done, drop the connection, and see what the broker
// sends again. Every packet from the broker is kept in order, to be waited on.

import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { trustFor } from './trust.js';
import { DISCONNECT, PINGREQ, PacketReader, ackPacket, connectPacket, publishPacket, subscribePacket, type Packet, type Will } from './mqtt-codec.js';

export interface RawMqttOptions {
  clientId: string;
  username?: string;
  password?: string;
  clean?: boolean;
  keepalive?: number;
  will?: Will;
  protocolLevel?: number;
  /** Acknowledge QoS 1 and 2 deliveries as a client should (default true); false leaves every step to the test. */
  autoAck?: boolean;
}

type Of<T extends Packet['type']> = Extract<Packet, { type: T }>;
type PublishOptions = { qos?: 0 | 1 | 2; retain?: boolean; id?: number; dup?: boolean };

interface Waiter {
  match(p: Packet): boolean;
  resolve(p: Packet): void;
  reject(err: Error): void;
}

export class RawMqtt {
  readonly socket: Socket;
  /** The CONNACK, or undefined when the broker closed the connection without one. */
  connack: Of<'connack'> | undefined;
  /** Every packet the broker sent, in order. */
  readonly received: Packet[] = [];
  readonly closed: Promise<void>;
  readonly #unread: Packet[] = [];
  readonly #waiters = new Set<Waiter>();
  readonly #autoAck: boolean;
  #gone = false;
  #nextId = 1;

  private constructor(socket: Socket, autoAck: boolean) {
    this.socket = socket;
    this.#autoAck = autoAck;
    const reader = new PacketReader();
    socket.on('data', (chunk: Buffer) => {
      for (const p of reader.push(chunk)) this.#take(p);
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#gone = true;
        for (const w of this.#waiters) w.reject(new Error('the broker closed the connection'));
        this.#waiters.clear();
        resolve();
      }),
    );
  }

  /** Connects and sends CONNECT; resolves once the CONNACK is in, or the broker has hung up. */
  static async open(url: string, opts: RawMqttOptions): Promise<RawMqtt> {
    const { hostname, port, protocol } = new URL(url);
    const host = hostname.replace(/^\[|\]$/g, '');
    // mqtts: TLS with the relay's CA (recorded by startRelay), as a device's agent connects.
    const secure = protocol === 'mqtts:';
    const socket = secure ? tlsConnect({ host, port: Number(port), ...trustFor(url) }) : connect(Number(port), host);
    await new Promise<void>((resolve, reject) => {
      socket.once(secure ? 'secureConnect' : 'connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawMqtt(socket, opts.autoAck ?? true);
    client.send(connectPacket(opts));
    client.connack = await client.next('connack').catch(() => undefined);
    return client;
  }

  /** As `open`, but the broker must accept (CONNACK 0). */
  static async connect(url: string, opts: RawMqttOptions): Promise<RawMqtt> {
    const client = await RawMqtt.open(url, opts);
    if (client.connack?.returnCode !== 0) {
      client.destroy();
      throw new Error(`CONNECT of ${opts.clientId} refused: ${client.connack ? `CONNACK ${client.connack.returnCode}` : 'closed without a CONNACK'}`);
    }
    return client;
  }

  #take(p: Packet): void {
    this.received.push(p);
    if (this.#autoAck && p.type === 'publish' && p.qos === 1) this.send(ackPacket(4, p.id!));
    if (this.#autoAck && p.type === 'publish' && p.qos === 2) this.send(ackPacket(5, p.id!));
    if (this.#autoAck && p.type === 'pubrel') this.send(ackPacket(7, p.id));
    for (const w of this.#waiters) {
      if (!w.match(p)) continue;
      this.#waiters.delete(w);
      w.resolve(p);
      return;
    }
    this.#unread.push(p);
  }

  /** The next packet of `type` (and `match`) not waited for before, from the past or the future. */
  next<T extends Packet['type']>(type: T, match: (p: Of<T>) => boolean = () => true, timeoutMs = 15_000): Promise<Of<T>> {
    const test = (p: Packet): p is Of<T> => p.type === type && match(p as Of<T>);
    const i = this.#unread.findIndex(test);
    if (i >= 0) return Promise.resolve(this.#unread.splice(i, 1)[0] as Of<T>);
    if (this.#gone) return Promise.reject(new Error(`the broker closed the connection before a ${type}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no ${type} from the broker within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        match: test,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p as Of<T>);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** The next PUBLISH on `topic` (with `payload`, when given). */
  message(topic: string, payload?: string, timeoutMs?: number): Promise<Of<'publish'>> {
    return this.next('publish', (p) => p.topic === topic && (payload === undefined || p.payload.toString() === payload), timeoutMs);
  }

  /** Every PUBLISH received so far on `topic`. */
  messages(topic: string): Array<Of<'publish'>> {
    return this.received.filter((p): p is Of<'publish'> => p.type === 'publish' && p.topic === topic);
  }

  send(bytes: Buffer): void {
    if (!this.#gone && !this.socket.destroyed) this.socket.write(bytes);
  }

  isClosed(): boolean {
    return this.#gone;
  }

  id(): number {
    const id = this.#nextId;
    this.#nextId = (this.#nextId % 65535) + 1;
    return id;
  }

  /** Sends a PUBLISH; returns its packet id (0 for QoS 0). */
  publish(topic: string, payload: Buffer | string, opts: PublishOptions = {}): number {
    const id = (opts.qos ?? 0) > 0 ? (opts.id ?? this.id()) : 0;
    this.send(publishPacket(topic, payload, { ...opts, id }));
    return id;
  }

  /** A QoS 1 PUBLISH, done once its PUBACK is in; or QoS 2, done once the PUBCOMP is in. */
  async publishAcked(topic: string, payload: Buffer | string, opts: PublishOptions & { qos: 1 | 2 }): Promise<void> {
    const id = this.publish(topic, payload, opts);
    if (opts.qos === 1) {
      await this.next('puback', (p) => p.id === id);
      return;
    }
    await this.next('pubrec', (p) => p.id === id);
    this.send(ackPacket(6, id));
    await this.next('pubcomp', (p) => p.id === id);
  }

  /** SUBSCRIBE; resolves with the SUBACK's return code for each filter (0–2 granted, 128 failure). */
  async subscribe(...filters: Array<[string, 0 | 1 | 2]>): Promise<number[]> {
    const id = this.id();
    this.send(subscribePacket(id, filters));
    return (await this.next('suback', (p) => p.id === id)).granted;
  }

  ack(type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', id: number): void {
    this.send(ackPacket(({ puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7 } as const)[type], id));
  }

  async ping(): Promise<void> {
    this.send(PINGREQ);
    await this.next('pingresp');
  }

  /** A clean goodbye: DISCONNECT, then the client closes the connection (MQTT-3.14.4-1). */
  async disconnect(): Promise<void> {
    this.send(DISCONNECT);
    this.socket.end();
    await this.closed;
  }

  /** The network fails: the socket goes without a word. */
  async destroy(): Promise<void> {
    this.socket.destroy();
    await this.closed;
  }
}
