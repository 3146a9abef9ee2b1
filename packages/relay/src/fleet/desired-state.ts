// A device's desired state is derived, never stored: for each model name, the newest
// deployment that targets the device. The relay publishes it retained; agents converge on it.

import { deviceTopic, formatLabels, type DesiredModel, type DesiredState } from '@outpost/shared';
import type { FleetContext } from './context.js';
import { ACCELERATOR_KEY } from './deployments.js';
import type { DeploymentInfo } from '../store/records.js';

/** The deployment each model name on the device follows: the newest one per name. */
export function effectiveDeployments<D extends DeploymentInfo>(deployments: D[]): D[] {
  const byModel = new Map<string, D>();
  for (const d of deployments) if (!byModel.has(d.model)) byModel.set(d.model, d); // newest first
  return [...byModel.values()];
}

export async function desiredStateFor(ctx: FleetContext, deviceId: string): Promise<DesiredState> {
  const models: DesiredModel[] = [];
  for (const d of effectiveDeployments(await ctx.store.deployments.forDevice(deviceId))) {
    const model = await ctx.store.models.get(d.model, d.version);
    if (!model) continue; // deleted since the deployments were read: it applies to no device now
    models.push({ name: d.model, version: d.version, sha256: d.sha256, size: model.size, deploymentId: d.id, ...(d.serving ? { serving: d.serving } : {}), ...(model.sample ? { sample: model.sample } : {}) });
  }
  const renewBefore = (await ctx.store.devices.certificate(deviceId))?.renewBefore;
  return { revision: ctx.now(), models, ...(renewBefore ? { renewCertificateIssuedBefore: renewBefore } : {}) };
}

/**
 * Reads and publishes one device's desired state, one publish per device at a time across every
 * relay (the broker has it before the next one reads): the retained message is the newest state.
 */
export async function publishDesiredState(ctx: FleetContext, deviceId: string): Promise<void> {
  await ctx.store.exclusive(`desired:${deviceId}`, async () => ctx.mqtt.publishRetained(deviceTopic(deviceId, 'desired'), await desiredStateFor(ctx, deviceId)));
}

/** Why a device has what it has: per model, the deployment it follows and the others. */
export async function explainDevice(ctx: FleetContext, deviceId: string): Promise<Array<{ model: string; deploymentId: string; version: number; why: string }>> {
  const all = await ctx.store.deployments.forDevice(deviceId);
  return effectiveDeployments(all).map((d) => {
    const others = all.filter((x) => x.model === d.model && x.id !== d.id).length;
    const how = d.selector ? `${ACCELERATOR_KEY in d.selector ? 'it matches' : 'its labels match'} ${formatLabels(d.selector)}` : 'it was named';
    return {
      model: d.model,
      deploymentId: d.id,
      version: d.version,
      why: `${d.id} (${how}) is the newest deployment of ${d.model} for this device${others ? `; it overrides ${others} older one${others > 1 ? 's' : ''}` : ''}`,
    };
  });
}
