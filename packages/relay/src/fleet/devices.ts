// Device registry operations an admin performs.

import { OutpostError, deviceTopic, didYouMean, type Labels } from '@outpost/shared';
import type { FleetContext } from './context.js';
import type { DeviceRecord } from '../store/records.js';
import { deviceView } from './views.js';

const LIST_HINT = 'list them with outpost-relay devices list';

/**
 * The device a person or a script named, by id or by name: every route that takes a device
 * resolves it here. An exact id wins, then an exact name; a name several devices have is
 * refused with their ids, and one no device has gets the nearest names and ids as a hint.
 * `hint` says where to look (for job targets: local, a device, or a selector).
 */
export async function requireDevice(ctx: FleetContext, ref: string, hint = LIST_HINT): Promise<DeviceRecord> {
  return (await ctx.store.devices.get(ref)) ?? byName(ref, await ctx.store.devices.list(), hint);
}

/** Several at once (a deployment's devices): the device list is read once, not once per name. */
export async function requireDevices(ctx: FleetContext, refs: string[]): Promise<DeviceRecord[]> {
  let all: DeviceRecord[] | undefined;
  const found: DeviceRecord[] = [];
  for (const ref of refs) found.push((await ctx.store.devices.get(ref)) ?? byName(ref, (all ??= await ctx.store.devices.list()), LIST_HINT));
  return found;
}

function byName(ref: string, all: DeviceRecord[], hint: string): DeviceRecord {
  const named = all.filter((d) => d.name === ref);
  if (named.length === 1) return named[0]!;
  if (named.length > 1) {
    const ids = named.slice(0, 10).map((d) => d.id).join(', ') + (named.length > 10 ? ` and ${named.length - 10} more` : '');
    throw new OutpostError('OUTPOST_ERR_AMBIGUOUS', `${named.length} devices are named "${ref}": ${ids}; name one by its id`);
  }
  const suggestion = didYouMean(ref, all.flatMap((d) => [d.name, d.id]));
  throw new OutpostError('OUTPOST_ERR_DEVICE_NOT_FOUND', suggestion ? `no device "${ref}"${suggestion} (${hint})` : `no device "${ref}": ${hint}`);
}

/** A device as the API shows it, with what the relay sees wrong with it now. */
export function viewDevice(ctx: FleetContext, d: DeviceRecord) {
  return deviceView(d, ctx.duplicates.problem(d.id, ctx.now()));
}

/** Sets labels (`k: v`, already checked) and removes those whose value is null, like `kubectl label k-`. */
export async function labelDevice(ctx: FleetContext, ref: string, changes: Record<string, string | null>): Promise<DeviceRecord> {
  const { id } = await requireDevice(ctx, ref);
  // Read and written as one unit: two label changes at once both land.
  const updated = await ctx.store.transaction(async (tx) => {
    const device = await tx.devices.get(id);
    if (!device) throw new OutpostError('OUTPOST_ERR_DEVICE_NOT_FOUND', `device ${id} was removed meanwhile`);
    const labels: Labels = { ...device.labels };
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) delete labels[key];
      else labels[key] = value;
    }
    await tx.devices.setLabels(id, labels);
    return { ...device, labels };
  });
  ctx.events.emit({ type: 'device.updated', device: viewDevice(ctx, updated) });
  return updated;
}

/** Forgets a device: its credentials stop working at once and its retained topics are cleared. */
export async function removeDevice(ctx: FleetContext, ref: string): Promise<void> {
  const { id } = await requireDevice(ctx, ref);
  await ctx.store.devices.remove(id);
  // Every relay stops taking its messages now, whatever the broker steps below cost or throw.
  ctx.presence.forget(id);
  ctx.duplicates.forget(id);
  ctx.events.emit({ type: 'device.removed', deviceId: id });
  ctx.disconnectDevice?.(id);
  // Deleting the Mosquitto client also disconnects it. The device is gone from the store either
  // way, so the relay ignores it; an account left behind is reported for the operator to delete.
  await ctx.brokerAccounts?.removeDevice(id).catch((err: Error) =>
    ctx.log.error({ deviceId: id, err: err.message }, `the device's broker account is still there: delete it by hand (mosquitto_ctrl dynsec deleteClient ${id})`),
  );
  await Promise.all((['desired', 'reported', 'status', 'notice'] as const).map((leaf) => ctx.mqtt.clearRetained(deviceTopic(id, leaf))));
  await ctx.history.forget(id);
  ctx.log.info({ deviceId: id }, 'device removed');
}
