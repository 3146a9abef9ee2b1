// A device's desired state is derived, never stored: for each model name, the newest
// deployment that targets the device. The relay publishes it retained; agents converge on it.

import { deviceTopic, type DesiredModel, type DesiredState } from '@outpost/shared';
import type { FleetContext } from './context.js';
import type { DeploymentRecord } from '../store/records.js';

/** The deployment each model name on the device follows: the newest one per name. */
export function effectiveDeployments(deployments: DeploymentRecord[]): DeploymentRecord[] {
  const byModel = new Map<string, DeploymentRecord>();
  for (const d of deployments) if (!byModel.has(d.model)) byModel.set(d.model, d); // newest first
  return [...byModel.values()];
}

export function desiredStateFor(ctx: FleetContext, deviceId: string): DesiredState {
  const models: DesiredModel[] = effectiveDeployments(ctx.store.deploymentsForDevice(deviceId)).map((d) => {
    const model = ctx.store.getModelVersion(d.model, d.version)!;
    return { name: d.model, version: d.version, sha256: d.sha256, size: model.size, deploymentId: d.id };
  });
  return { revision: ctx.now(), models };
}

export async function publishDesiredState(ctx: FleetContext, deviceId: string): Promise<void> {
  await ctx.mqtt.publishRetained(deviceTopic(deviceId, 'desired'), desiredStateFor(ctx, deviceId));
}
