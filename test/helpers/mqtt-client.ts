// MQTT clients for tests that play a device (or anyone): one connection, no reconnecting,
// resolving on CONNACK or rejecting with the refusal. TLS options for the relay come from
// helpers/trust.ts unless given.

import mqtt, { type MqttClient } from 'mqtt';
import type { TlsClientOptions } from '@outpost/shared';
import { deviceTls, type Device, type TestRelay } from './programs.js';
import { trustFor } from './trust.js';

export function connectAs(url: string, opts: mqtt.IClientOptions & TlsClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...trustFor(url), ...opts });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('connection closed')));
  });
}

/** As the agent connects: its certificate, no secret (`extra` may replace either). */
export function certClient(relay: TestRelay, d: Device, extra: mqtt.IClientOptions & TlsClientOptions = {}): Promise<MqttClient> {
  return connectAs(relay.mqttUrl, { clientId: d.deviceId, username: d.deviceId, ...deviceTls(d), ...extra });
}
