// Devices that went quiet without a goodbye. On a NATS cluster a node that dies sends no last
// wills for the sessions it held: their devices reconnect to another node within seconds (and
// say online again), but one that died with the node would stay online at the relay for ever.
// The leader marks a device offline once nothing (no heartbeat, report or status) has been
// heard from it for the silence window.

import { setOnline } from './device-messages.js';
import type { FleetContext } from './context.js';

export async function markSilentDevicesOffline(ctx: FleetContext, silenceMs: number): Promise<number> {
  const before = ctx.now() - silenceMs;
  let marked = 0;
  // A query, not a list of every device: the sweep runs every 15 s on fleets of 100,000.
  for (const id of await ctx.store.devices.silentSince(before)) {
    const now = await ctx.store.devices.get(id); // heard from since the query ran?
    if (!now?.online || (now.lastSeen ?? 0) >= before) continue;
    // Every relay forgets what it knew of the device (relay.ts, on the `silent` event), so the
    // next heartbeat, whichever relay it reaches, brings it back.
    await setOnline(ctx, id, false, `device offline (nothing heard from it for ${Math.round(silenceMs / 1000)} s; its broker node may have died)`, true);
    marked++;
  }
  return marked;
}
