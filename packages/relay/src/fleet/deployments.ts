// Creating a deployment: resolve the model version, record per-device rollouts, publish the
// new desired state to each device.

import { randomBytes } from 'node:crypto';
import { OutpostError } from '@outpost/shared';
import type { FleetContext } from './context.js';
import type { DeploymentRecord } from '../store/records.js';
import { publishDesiredState } from './desired-state.js';
import { applyReportedState } from './rollout-progress.js';
import { requireDevice } from './devices.js';
import { deploymentView } from './views.js';

export interface DeployRequest {
  model: string;
  version?: number;
  devices: string[];
}

export async function createDeployment(ctx: FleetContext, req: DeployRequest): Promise<DeploymentRecord> {
  const model = ctx.store.getModelVersion(req.model, req.version);
  if (!model) {
    const what = req.version === undefined ? `model "${req.model}"` : `version ${req.version} of model "${req.model}"`;
    throw new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `no ${what}: push it first (outpost-relay models push FILE --name ${req.model})`);
  }
  const deviceIds = [...new Set(req.devices)];
  if (deviceIds.length === 0) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a deployment needs at least one device (--device ID)');
  for (const id of deviceIds) requireDevice(ctx, id);

  const id = `dep_${randomBytes(6).toString('hex')}`;
  ctx.store.createDeployment({ id, model: model.name, version: model.version, sha256: model.sha256, deviceIds }, ctx.now());
  ctx.log.info({ deploymentId: id, model: model.name, version: model.version, devices: deviceIds.length }, 'deployment created');
  ctx.events.emit({ type: 'deployment.created', deployment: deploymentView(ctx.store.getDeployment(id)!) });
  for (const deviceId of deviceIds) {
    await publishDesiredState(ctx, deviceId);
    // A device that already serves these bytes reports nothing new; count what it last said.
    const reported = ctx.store.getDevice(deviceId)?.reported;
    applyReportedState(ctx, deviceId, reported ?? { revision: 0, models: [] });
  }
  return ctx.store.getDeployment(id)!;
}

export function requireDeployment(ctx: FleetContext, id: string): DeploymentRecord {
  const d = ctx.store.getDeployment(id);
  if (!d) throw new OutpostError('OUTPOST_ERR_DEPLOYMENT_NOT_FOUND', `no deployment "${id}": list them with outpost-relay deployments list`);
  return d;
}
