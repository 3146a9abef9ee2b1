// Who may do what on the broker. A device reaches only topics under its own prefix; the relay's
// privileged client reaches everything. Pure functions, so every rule is tested without a broker.

import { deviceTopic, isWithinDevicePrefix } from '@outpost/shared';

export type BrokerIdentity = { kind: 'relay' } | { kind: 'device'; deviceId: string };

/** Largest payload a device may publish; heartbeats and state reports are a few KB. */
export const MAX_DEVICE_PAYLOAD_BYTES = 256 * 1024;

export function mayPublish(who: BrokerIdentity, topic: string): boolean {
  return who.kind === 'relay' || isWithinDevicePrefix(topic, who.deviceId);
}

/** Subscriptions outside the prefix are denied quietly (a null grant), so `#` simply gets nothing. */
export function maySubscribe(who: BrokerIdentity, filter: string): boolean {
  return who.kind === 'relay' || isWithinDevicePrefix(filter, who.deviceId);
}

/** Checked again for every message delivered, retained ones included (moscajs/aedes-cli#158). */
export function mayReceive(who: BrokerIdentity, topic: string): boolean {
  return who.kind === 'relay' || isWithinDevicePrefix(topic, who.deviceId);
}

/**
 * A device's will may go only to its own status topic: the broker publishes it on the
 * device's behalf when the connection drops, and it is how the relay learns the device is gone.
 */
export function mayWill(who: BrokerIdentity, topic: string): boolean {
  return who.kind === 'relay' ? mayPublish(who, topic) : topic === deviceTopic(who.deviceId, 'status');
}
