// The embedded MQTT broker: aedes on a TCP port (TLS unless --insecure), with Outpost's
// authentication and access rules. A device is known by its certificate (mutual TLS: the
// subject is its id) or by its id and secret. The relay's own logic does not call into it; it
// connects to it as a client like any broker.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { Aedes, type Client, type AuthenticateError, type ConnectPacket } from 'aedes';

type AuthenticateDone = (error: AuthenticateError | null, success: boolean | null) => void;
import { LogThrottle, guarded, parseDeviceTopic, type Logger } from '@outpost/shared';
import { peerDevice } from '../tls/peer-device.js';
import { serverContextOptions } from '../tls/relay-tls.js';
import { MAX_DEVICE_PAYLOAD_BYTES, isReserved, mayPublish, mayReceive, maySubscribe, mayWill, type BrokerIdentity } from './access-policy.js';
import { DeviceQuotas, type DeviceLimits, type Verdict } from './device-quotas.js';
import { DEFAULT_PACKET_LIMITS, PacketGuard, PreAuthBudget, type PacketLimits } from './packet-guard.js';
import { BrokerPersistence, MAX_WAITING_MESSAGES } from './broker-persistence.js';
import type { QuotaAction } from '../fleet/quota-events.js';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  log: Logger;
  /** Credentials of the relay's privileged client. */
  relayUsername: string;
  relayPassword: string;
  /** Checks a device's id and secret (constant time, against the stored hash). */
  authenticateDevice(deviceId: string, secret: string): Promise<boolean>;
  /** TLS: the server certificate (with its chain), key, and the CA device certificates come from. */
  tls?: { cert: string; key: string; ca: string };
  /**
   * Whether a device certificate (valid, from the CA) still stands: its device exists and the
   * serial is one the relay issued to it and has not replaced. The reason when not.
   */
  deviceCertificate?(deviceId: string, serial: string): Promise<string | undefined>;
  deviceLimits?: Partial<DeviceLimits>;
  packetLimits?: Partial<PacketLimits>;
  /** Bytes all connections that have not authenticated yet may hold together (default 16 MiB). */
  preAuthBudgetBytes?: number;
  /** Told of every device past a quota (the relay counts, logs and streams it). */
  onQuota?(deviceId: string, quota: string, action: QuotaAction, detail: string): void;
}

export interface EmbeddedBroker {
  url: string;
  port: number;
  /** Drops a device's connection and forgets its quota state (when it is removed). */
  disconnect(clientId: string): void;
  /** Bytes unauthenticated connections hold right now. */
  readonly preAuthBytes: number;
  /** Serves a new server certificate and key to connections from now on (a renewal, no restart). */
  setCertificate(pair: { cert: string; key: string }): void;
  close(): Promise<void>;
}

const identities = new WeakMap<Client, BrokerIdentity>();
/** Each connection's TLS socket (aedes sees the PacketGuard in front of it). */
const tlsSockets = new WeakMap<object, TLSSocket>();
/**
 * Each connection's will, as its CONNECT carried it. aedes hands this same object to
 * `authorizePublish` when it publishes the will, which is how a will is told from a publish.
 */
const wills = new WeakMap<Client, NonNullable<ConnectPacket['will']>>();

/** Largest packet from a device: its largest payload, with room for the topic and header. */
const MAX_DEVICE_PACKET_BYTES = MAX_DEVICE_PAYLOAD_BYTES + 1024;
/** The relay's own client publishes desired states; it is trusted, but not without bound. */
const MAX_RELAY_PACKET_BYTES = 64 * 1024 * 1024;
/**
 * aedes refuses a publish only by disconnecting (authorizePublish's error). To drop one quietly
 * and keep the session, it is sent to a `$` topic: no client may subscribe to `$` topics.
 */
const DROPPED_TOPIC = '$outpost/dropped';

function refuse(code: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  const err = new Error(message) as AuthenticateError;
  err.returnCode = code as AuthenticateError['returnCode'];
  return err;
}

function equalStrings(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { log } = opts;
  const quotas = new DeviceQuotas(opts.deviceLimits);
  const packetLimits = { ...DEFAULT_PACKET_LIMITS, ...opts.packetLimits };
  const budget = new PreAuthBudget(opts.preAuthBudgetBytes ?? 16 * 1024 * 1024);
  const refusedLog = new LogThrottle();
  const connected = new Map<string, Client>();
  const onQuota = (deviceId: string, v: Exclude<Verdict, { action: 'allow' }>) => {
    const action: QuotaAction = v.action === 'drop' ? 'dropped' : v.action === 'unretain' ? 'unretained' : 'disconnected';
    opts.onQuota?.(deviceId, v.quota, action, v.detail);
  };

  /** Times each device was disconnected by the relay (removed, revoked): a check in flight across one fails. */
  const disconnects = new Map<string, number>();
  const authenticate = async (client: Client, username: string | undefined, password: Readonly<Buffer> | undefined, done: AuthenticateDone): Promise<void> => {
      const secret = password?.toString() ?? '';
      // A device disconnected (removed) while its credentials were being checked is not let in.
      const claimed = peerDevice(tlsSockets.get(client.conn as unknown as PacketGuard));
      const disconnectsBefore = disconnects.get((claimed && !('refused' in claimed) ? claimed.deviceId : username) ?? '') ?? 0;
      const conn = client.conn as unknown as PacketGuard;
      const cert = peerDevice(tlsSockets.get(conn));
      if (cert && 'refused' in cert) {
        if (refusedLog.take(`${client.id}`)) log.warn({ clientId: client.id, why: cert.refused }, 'mqtt connection refused: device certificate');
        return done(refuse(5, cert.refused), false);
      }
      if (!cert && username === opts.relayUsername && equalStrings(secret, opts.relayPassword)) {
        identities.set(client, { kind: 'relay' });
        conn.authenticated(MAX_RELAY_PACKET_BYTES);
        return done(null, true);
      }
      if (cert) {
        // The certificate is the identity: the username may only repeat it, the secret is not needed.
        const revoked = opts.deviceCertificate ? await opts.deviceCertificate(cert.deviceId, cert.serial) : 'this broker takes no device certificates';
        if (revoked) {
          if (refusedLog.take(`${client.id}`)) log.warn({ clientId: client.id, deviceId: cert.deviceId, why: revoked }, 'mqtt connection refused: device certificate');
          return done(refuse(5, revoked), false);
        }
        if (username && username !== cert.deviceId) {
          if (refusedLog.take(`${client.id}`)) log.warn({ clientId: client.id, username, deviceId: cert.deviceId }, "mqtt connection refused: a device certificate cannot act as another device");
          return done(refuse(4, `the certificate is ${cert.deviceId}'s`), false);
        }
      }
      const deviceId = cert?.deviceId ?? (username && (await opts.authenticateDevice(username, secret)) ? username : undefined);
      if (deviceId) {
        // A device must connect with its own id as client id, or it could take over another
        // device's session (a second CONNECT with the same client id evicts the first).
        // MQTT-3.1.3-9: a client id the server rejects gets CONNACK 2.
        if (client.id !== deviceId) {
          if (refusedLog.take(`${client.id}`)) log.warn({ clientId: client.id, deviceId }, 'mqtt connection refused: a device must use its id as client id');
          return done(refuse(2, 'a device connects with its id as client id'), false);
        }
        const device: BrokerIdentity = { kind: 'device', deviceId };
        // Refused at CONNECT, before it is stored, so a device that names another topic learns
        // at once (Mosquitto takes it, then drops it by its ACL when the connection closes).
        const will = wills.get(client);
        if (will && !mayWill(device, will.topic)) {
          opts.onQuota?.(deviceId, 'topic', 'refused', `its will goes to "${will.topic}"; a device's will may go only to its own status topic`);
          return done(refuse(5, 'will outside the device status topic'), false);
        }
        if ((disconnects.get(deviceId) ?? 0) !== disconnectsBefore) {
          log.warn({ clientId: client.id, deviceId }, 'mqtt connection refused: the device was disconnected (removed) while it connected');
          return done(refuse(5, 'the device was removed'), false);
        }
        if (!quotas.mayConnect(deviceId)) {
          opts.onQuota?.(deviceId, 'cooldown', 'refused', `disconnected for its quotas; it may reconnect ${quotas.limits.cooldownMs / 1000} s later`);
          return done(refuse(5, 'cooling down after a quota disconnect'), false);
        }
        identities.set(client, device);
        conn.authenticated(MAX_DEVICE_PACKET_BYTES);
        return done(null, true);
      }
      if (refusedLog.take(`${client.id}`)) log.warn({ clientId: client.id, username }, 'mqtt connection refused: bad credentials');
      done(refuse(4, 'bad username or password'), false);
  };
  const broker = await Aedes.createBroker({
    persistence: new BrokerPersistence((clientId) =>
      opts.onQuota?.(clientId, 'session', 'dropped', `its CleanSession 0 session already has ${MAX_WAITING_MESSAGES} messages waiting or unacknowledged`),
    ) as never,
    maxClientsIdLength: 64,
    drainTimeout: 10_000,
    // A socket that sends no CONNECT is closed after 10 s (aedes waits 30 s by default).
    connectTimeout: 10_000,
    preConnect(client, packet, done) {
      if (packet.will) wills.set(client, packet.will);
      done(null, true);
    },
    authenticate(client, username, password, done) {
      // The checks read the store; one that fails refuses this connection, not the broker.
      authenticate(client, username, password, done).catch((err: unknown) => {
        log.error({ clientId: client.id, err }, 'mqtt connection refused: the device could not be checked');
        done(refuse(3, 'the relay could not check the device'), false);
      });
    },
    authorizePublish(client, packet, done) {
      // A null client is aedes publishing a stored will whose connection is gone (after its
      // broker missed heartbeats); every stored will passed `mayWill` at CONNECT.
      if (!client) return done(null);
      const who = identities.get(client);
      if (!who) return done(new Error('not authenticated'));
      if (who.kind === 'relay') {
        if (!isReserved(packet.topic)) return done(null);
        // Acknowledged and dropped, as Mosquitto does with a write to `$SYS` (MQTT-3.3.5-2).
        if (refusedLog.take('relay $')) log.warn({ topic: packet.topic }, 'mqtt publish dropped: $ topics are the broker\'s own');
        packet.topic = DROPPED_TOPIC;
        packet.retain = false;
        return done(null);
      }
      if ((packet as object) === wills.get(client)) {
        // The broker's own act for the device, on every close without DISCONNECT (MQTT-3.1.2-8).
        if (!mayWill(who, packet.topic)) return done(new Error('will outside the device status topic'));
        if (quotas.will(who.deviceId, 'status', packet.payload.length, packet.retain).action === 'unretain') packet.retain = false;
        return done(null);
      }
      if (!mayPublish(who, packet.topic)) {
        opts.onQuota?.(who.deviceId, 'topic', 'disconnected', `published to "${packet.topic}", outside its own prefix`);
        return done(new Error('publish outside the device prefix'));
      }
      if (packet.payload.length > MAX_DEVICE_PAYLOAD_BYTES) {
        opts.onQuota?.(who.deviceId, 'payload', 'disconnected', `a ${packet.payload.length}-byte payload (at most ${MAX_DEVICE_PAYLOAD_BYTES})`);
        return done(new Error('payload too large'));
      }
      const leaf = parseDeviceTopic(packet.topic)?.leaf ?? '';
      const verdict = quotas.publish(who.deviceId, leaf, packet.payload.length, packet.retain);
      if (verdict.action === 'allow') return done(null);
      onQuota(who.deviceId, verdict);
      if (verdict.action === 'disconnect') return done(new Error(`quota: ${verdict.detail}`));
      if (verdict.action === 'unretain') packet.retain = false;
      else {
        packet.topic = DROPPED_TOPIC;
        packet.retain = false;
      }
      done(null);
    },
    authorizeSubscribe(client, sub, done) {
      const who = identities.get(client);
      if (who?.kind === 'relay') return done(null, maySubscribe(who, sub.topic) ? sub : null);
      if (!who) return done(null, null);
      const verdict = quotas.subscribe(who.deviceId, maySubscribe(who, sub.topic), sub.topic);
      if (verdict.action === 'allow') return done(null, sub);
      onQuota(who.deviceId, verdict);
      // A null grant denies quietly (an error would disconnect: moscajs/aedes#48); past its
      // strikes the session ends as well, once the SUBACK is out.
      done(null, null);
      if (verdict.action === 'disconnect') setImmediate(() => client.close());
    },
    authorizeForward(client, packet) {
      const who = identities.get(client);
      return who && mayReceive(who, packet.topic) ? packet : null;
    },
  });

  broker.on('client', (client) => connected.set(client.id, client));
  broker.on('clientDisconnect', (client) => {
    if (connected.get(client.id) === client) connected.delete(client.id);
    log.debug({ clientId: client.id }, 'mqtt client disconnected');
  });
  broker.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
  broker.on('connectionError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt connection error'));

  const accept = guarded(log, 'accepting an mqtt connection', (socket: Socket) => {
    // Packets leave whole (PacketGuard._writev); none should wait for an ACK of the one before.
    socket.setNoDelay(true);
    const conn = new PacketGuard(socket, packetLimits, budget);
    if (opts.tls) tlsSockets.set(conn, socket as TLSSocket);
    conn.once('refused', (why: string) => {
      if (refusedLog.take(`packet ${socket.remoteAddress}`)) log.warn({ remote: socket.remoteAddress, why }, 'mqtt connection closed: packet limits');
    });
    broker.handle(conn as never);
  });
  // Client certificates are asked for, not required: the relay's own client and devices that
  // use their secret have none. Whether one that came is good is decided at CONNECT.
  const server: Server = opts.tls
    ? createTlsServer({ ...serverContextOptions(opts.tls, opts.tls.ca), requestCert: true, rejectUnauthorized: false, handshakeTimeout: 10_000 }, accept)
    : createServer(accept);
  if (opts.tls) {
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      if (refusedLog.take(`tls ${socket.remoteAddress}`)) log.debug({ remote: socket.remoteAddress, err: err.message }, 'mqtt tls handshake failed');
    });
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => resolve());
    });
  } catch (err) {
    // The port is taken (or not ours to take): aedes's own timers must not outlive the attempt.
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw err;
  }
  server.on('error', (err) => log.error({ err }, 'mqtt listener error'));
  const port = (server.address() as AddressInfo).port;
  const urlHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;

  return {
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://${urlHost}:${port}`,
    port,
    disconnect(clientId) {
      // Counted for a CONNECT of this device whose check is in flight now (see authenticate).
      disconnects.set(clientId, (disconnects.get(clientId) ?? 0) + 1);
      // Forgotten once closed: its will, published as it closes, counts retained bytes again.
      const client = connected.get(clientId);
      if (client) client.close(() => quotas.forget(clientId));
      else quotas.forget(clientId);
    },
    get preAuthBytes() {
      return budget.used;
    },
    setCertificate(pair) {
      if (!opts.tls) throw new Error('the embedded broker runs without TLS');
      (server as TlsServer).setSecureContext(serverContextOptions(pair, opts.tls.ca));
    },
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

