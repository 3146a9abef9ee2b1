// Who may do what on the broker. A device reaches only topics under its own prefix; the relay's
// privileged client reaches every device's. `$` topics are the broker's own, for everyone: aedes
// acts on some of them (a publish to `$SYS/{id}/new/clients` closes the client of that id) and
// Mosquitto refuses writes to `$SYS` to every client too. Pure functions, so every rule is
// tested without a broker.

import { deviceTopic, isWithinDevicePrefix } from '@outpost/shared';

export type BrokerIdentity = { kind: 'relay' } | { kind: 'device'; deviceId: string };

/** Largest payload a device may publish; heartbeats and state reports are a few KB. */
export const MAX_DEVICE_PAYLOAD_BYTES = 256 * 1024;

/** A `$` topic or filter (MQTT 3.1.1 §4.7.2): the broker's, no client's. */
export function isReserved(topicOrFilter: string): boolean {
  return topicOrFilter.startsWith('$');
}

export function mayPublish(who: BrokerIdentity, topic: string): boolean {
  return !isReserved(topic) && (who.kind === 'relay' || isWithinDevicePrefix(topic, who.deviceId));
}

/** Subscriptions outside the prefix are denied quietly (a null grant), so `#` simply gets nothing. */
export function maySubscribe(who: BrokerIdentity, filter: string): boolean {
  return !isReserved(filter) && (who.kind === 'relay' || isWithinDevicePrefix(filter, who.deviceId));
}

/** Checked again for every message delivered, retained ones included (moscajs/aedes-cli#158). */
export function mayReceive(who: BrokerIdentity, topic: string): boolean {
  return !isReserved(topic) && (who.kind === 'relay' || isWithinDevicePrefix(topic, who.deviceId));
}

/**
 * A device's will may go only to its own status topic: the broker publishes it on the
 * device's behalf when the connection drops, and it is how the relay learns the device is gone.
 */
export function mayWill(who: BrokerIdentity, topic: string): boolean {
  return who.kind === 'relay' ? mayPublish(who, topic) : topic === deviceTopic(who.deviceId, 'status');
}
