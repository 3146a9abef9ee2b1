// Turns what devices report into per-device deployment progress, and a deployment's overall state.

import type { ReportedState } from '@outpost/shared';
import type { FleetContext } from './context.js';
import type { DeploymentRecord, DeploymentState, DeviceRolloutState } from '../store/records.js';
import { effectiveDeployments } from './desired-state.js';

const TERMINAL: ReadonlySet<DeviceRolloutState> = new Set(['serving', 'failed', 'superseded']);

export function deploymentState(d: DeploymentRecord): DeploymentState {
  if (d.devices.some((x) => !TERMINAL.has(x.state))) return 'in-progress';
  return d.devices.some((x) => x.state === 'failed') ? 'failed' : 'succeeded';
}

function refreshDeploymentState(ctx: FleetContext, deploymentId: string): void {
  const d = ctx.store.getDeployment(deploymentId);
  if (!d) return;
  const state = deploymentState(d);
  if (state !== d.state) {
    ctx.store.setDeploymentState(d.id, state);
    ctx.events.emit({ type: 'deployment.state', deploymentId: d.id, state });
    ctx.log.info({ deploymentId: d.id, model: d.model, version: d.version, state }, 'deployment state changed');
  }
}

/**
 * Applies a device's reported state to the deployments it follows. Older deployments of the
 * same model on the device are marked superseded, so they stop waiting for it.
 */
export function applyReportedState(ctx: FleetContext, deviceId: string, reported: ReportedState): void {
  const now = ctx.now();
  const all = ctx.store.deploymentsForDevice(deviceId);
  const current = new Set(effectiveDeployments(all).map((d) => d.id));
  const touched = new Set<string>();
  const progress = (deploymentId: string, state: DeviceRolloutState, reason: string | null) => {
    if (!ctx.store.setRolloutState(deploymentId, deviceId, state, reason, now)) return;
    touched.add(deploymentId);
    ctx.events.emit({ type: 'deployment.progress', deploymentId, deviceId, state, reason });
  };
  for (const d of all) {
    const mine = d.devices.find((x) => x.deviceId === deviceId)!;
    if (!current.has(d.id)) {
      if (!TERMINAL.has(mine.state)) progress(d.id, 'superseded', null);
      continue;
    }
    const entry = reported.models.find((m) => m.name === d.model && m.sha256 === d.sha256);
    if (entry) progress(d.id, entry.state, entry.state === 'failed' ? (entry.reason ?? 'failed') : null);
  }
  for (const id of touched) refreshDeploymentState(ctx, id);
}
