// The embedded MQTT broker: aedes on a TCP port, with Outpost's authentication and access rules.
// The relay's own logic does not call into it; it connects to it as a client like any broker.

import { createServer, type AddressInfo, type Server } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { Aedes, type Client, type AuthenticateError } from 'aedes';
import type { Logger } from '@outpost/shared';
import { MAX_DEVICE_PAYLOAD_BYTES, mayPublish, mayReceive, maySubscribe, type BrokerIdentity } from './access-policy.js';
import { FloodGuard, type FloodLimits } from './flood-guard.js';
import { IndexedRetainedPersistence } from './retained-index.js';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  log: Logger;
  /** Credentials of the relay's privileged client. */
  relayUsername: string;
  relayPassword: string;
  /** Checks a device's id and secret (constant time, against the stored hash). */
  authenticateDevice(deviceId: string, secret: string): boolean;
  floodLimits?: FloodLimits;
}

export interface EmbeddedBroker {
  url: string;
  port: number;
  /** Drops a device's connection (when it is removed). */
  disconnect(clientId: string): void;
  close(): Promise<void>;
}

const identities = new WeakMap<Client, BrokerIdentity>();

function refuse(code: 4 | 5, message: string): AuthenticateError {
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
  const flood = new FloodGuard(opts.floodLimits);

  const broker = await Aedes.createBroker({
    persistence: new IndexedRetainedPersistence() as never,
    maxClientsIdLength: 64,
    drainTimeout: 10_000,
    authenticate(client, username, password, done) {
      const secret = password?.toString() ?? '';
      if (username === opts.relayUsername && equalStrings(secret, opts.relayPassword)) {
        identities.set(client, { kind: 'relay' });
        return done(null, true);
      }
      // A device must connect with its own id as client id, or it could take over another
      // device's session (a second CONNECT with the same client id evicts the first).
      if (username && client.id === username && opts.authenticateDevice(username, secret)) {
        identities.set(client, { kind: 'device', deviceId: username });
        return done(null, true);
      }
      log.warn({ clientId: client.id, username }, 'mqtt connection refused: bad credentials');
      done(refuse(4, 'bad username or password'), false);
    },
    authorizePublish(client, packet, done) {
      // A null client is aedes publishing a stored will of a client already gone.
      const who = client ? identities.get(client) : undefined;
      if (client && !who) return done(new Error('not authenticated'));
      if (!who || who.kind === 'relay') return done(null);
      if (!mayPublish(who, packet.topic)) {
        log.warn({ deviceId: who.deviceId, topic: packet.topic }, 'device published outside its prefix: dropped, disconnecting');
        return done(new Error('publish outside the device prefix'));
      }
      if (packet.payload.length > MAX_DEVICE_PAYLOAD_BYTES) {
        log.warn({ deviceId: who.deviceId, bytes: packet.payload.length }, 'device payload too large: dropped, disconnecting');
        return done(new Error('payload too large'));
      }
      if (!flood.allow(who.deviceId)) {
        log.warn({ deviceId: who.deviceId }, 'device is flooding the broker: disconnecting');
        return done(new Error('publish rate exceeded'));
      }
      done(null);
    },
    authorizeSubscribe(client, sub, done) {
      const who = identities.get(client);
      if (who && maySubscribe(who, sub.topic)) return done(null, sub);
      log.warn({ clientId: client.id, filter: sub.topic }, 'subscription outside the device prefix denied');
      // A null grant denies quietly; an error would disconnect (moscajs/aedes#48).
      done(null, null);
    },
    authorizeForward(client, packet) {
      const who = identities.get(client);
      return who && mayReceive(who, packet.topic) ? packet : null;
    },
  });

  const connected = new Map<string, Client>();
  broker.on('client', (client) => connected.set(client.id, client));
  broker.on('clientDisconnect', (client) => {
    if (connected.get(client.id) === client) connected.delete(client.id);
    const who = identities.get(client);
    if (who?.kind === 'device') flood.forget(who.deviceId);
  });
  broker.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
  broker.on('connectionError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt connection error'));

  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;

  return {
    url: `mqtt://${urlHost}:${port}`,
    port,
    disconnect(clientId) {
      connected.get(clientId)?.close();
    },
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
