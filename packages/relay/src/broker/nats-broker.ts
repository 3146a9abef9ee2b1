// The relay on a NATS cluster (`--broker nats://…`): its NATS connection for device messages
// and the device accounts (JWTs it signs, revocations it pushes), from the credentials file
// `outpost-relay broker nats-config` wrote.

import type { Logger } from '@outpost/shared';
import type { Store } from '../store/store.js';
import { readNatsCredentials } from './nats-account.js';
import { connectNatsDeviceAccounts, type NatsDeviceAccounts } from './nats-device-accounts.js';
import { connectNatsRelayClient } from './nats-relay-client.js';
import type { RelayClient } from './relay-client.js';

export const NATS_CREDENTIALS_FILE = 'nats-credentials.json';

export interface NatsBroker {
  client: RelayClient;
  accounts: NatsDeviceAccounts;
  close(): Promise<void>;
}

export async function connectNats(opts: {
  servers: string[];
  advertisedMqtt: string[];
  credentialsFile: string;
  conflicts: { mqttUrl?: string; mosquittoDynsec?: boolean };
  store: Store;
  name: string;
  log: Logger;
  onMessage(topic: string, payload: Buffer): void;
  onReconnect(): void;
}): Promise<NatsBroker> {
  if (opts.conflicts.mqttUrl) throw new Error('--broker nats://… and --mqtt-url name two brokers: give one');
  if (opts.conflicts.mosquittoDynsec) throw new Error('--mosquitto-dynsec is for a Mosquitto broker; on NATS the relay signs device JWTs itself: drop the flag');
  if (opts.advertisedMqtt.length === 0) throw new Error("--broker nats://… needs --advertise-mqtt-url mqtt://NODE:1883[,mqtt://…]: the NATS nodes' MQTT listeners, which devices connect to");
  const creds = readNatsCredentials(opts.credentialsFile);
  const log = opts.log.child({ part: 'nats' });
  const accounts = await connectNatsDeviceAccounts({ servers: opts.servers, creds, store: opts.store, log, name: opts.name });
  let client: RelayClient;
  try {
    client = await connectNatsRelayClient({ servers: opts.servers, creds: creds.relayCreds, name: opts.name, log, onMessage: opts.onMessage, onReconnect: opts.onReconnect });
  } catch (err) {
    await accounts.close();
    throw err;
  }
  log.info({ servers: opts.servers, mqtt: opts.advertisedMqtt }, 'connected to the NATS cluster');
  return {
    client,
    accounts,
    async close() {
      await client.close();
      await accounts.close();
    },
  };
}
