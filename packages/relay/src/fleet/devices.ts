// Device registry operations an admin performs.

import { OutpostError, deviceTopic, type Labels } from '@outpost/shared';
import type { FleetContext } from './context.js';
import type { DeviceRecord } from '../store/records.js';
import { deviceView } from './views.js';

export function requireDevice(ctx: FleetContext, id: string): DeviceRecord {
  const device = ctx.store.getDevice(id);
  if (!device) throw new OutpostError('OUTPOST_ERR_DEVICE_NOT_FOUND', `no device "${id}": list them with outpost-relay devices list`);
  return device;
}

/** Sets labels (`k: v`, already checked) and removes those whose value is null, like `kubectl label k-`. */
export function labelDevice(ctx: FleetContext, id: string, changes: Record<string, string | null>): DeviceRecord {
  const device = requireDevice(ctx, id);
  const labels: Labels = { ...device.labels };
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete labels[key];
    else labels[key] = value;
  }
  ctx.store.setDeviceLabels(id, labels);
  const updated = { ...device, labels };
  ctx.events.emit({ type: 'device.updated', device: deviceView(updated) });
  ctx.jobs?.onTargetsChanged();
  return updated;
}

/** Forgets a device: its credentials stop working at once and its retained topics are cleared. */
export async function removeDevice(ctx: FleetContext, id: string): Promise<void> {
  requireDevice(ctx, id);
  ctx.store.removeDevice(id);
  ctx.disconnectDevice?.(id);
  // Deleting the Mosquitto client also disconnects it. The device is gone from the store either
  // way, so the relay ignores it; an account left behind is reported for the operator to delete.
  await ctx.brokerAccounts?.removeDevice(id).catch((err: Error) =>
    ctx.log.error({ deviceId: id, err: err.message }, `the device's broker account is still there: delete it by hand (mosquitto_ctrl dynsec deleteClient ${id})`),
  );
  await Promise.all((['desired', 'reported', 'status'] as const).map((leaf) => ctx.mqtt.clearRetained(deviceTopic(id, leaf))));
  ctx.history.forget(id);
  ctx.presence.forget(id);
  ctx.events.emit({ type: 'device.removed', deviceId: id });
  ctx.log.info({ deviceId: id }, 'device removed');
}
