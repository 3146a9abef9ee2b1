// Turns what devices report into per-device deployment progress, and a deployment's overall state.

import type { ReportedState } from '@outpost/shared';
import type { FleetContext } from './context.js';
import { MEMBER_STATES, type DeploymentRecord, type DeploymentState, type DeviceRolloutState, type RolloutStrategy } from '../store/records.js';
import { effectiveDeployments } from './desired-state.js';

const TERMINAL: ReadonlySet<DeviceRolloutState> = new Set(['serving', 'healthy', 'failed', 'superseded']);

/** The state of a deployment from its member devices (canceled and rolled back ones stay so). */
export function deploymentState(d: Pick<DeploymentRecord, 'devices'> & { state?: DeploymentState; strategy?: RolloutStrategy | null }): DeploymentState {
  if (d.state === 'canceled' || d.state === 'rolled-back') return d.state;
  if (d.devices.some((x) => x.state === 'waiting')) return 'in-progress';
  const members = d.devices.filter((x) => MEMBER_STATES.has(x.state));
  // With a health window, serving is not done yet: the rollout controller says when it is.
  const done = (s: DeviceRolloutState) => TERMINAL.has(s) && !(s === 'serving' && (d.strategy?.healthWindowMs ?? 0) > 0);
  if (members.some((x) => !done(x.state))) return 'in-progress';
  return members.some((x) => x.state === 'failed') ? 'failed' : 'succeeded';
}

export function refreshDeploymentState(ctx: FleetContext, deploymentId: string): void {
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
    // A device found healthy stays so while it keeps serving (reports repeat on reconnect).
    if (entry && !(mine.state === 'healthy' && entry.state === 'serving')) progress(d.id, entry.state, entry.state === 'failed' ? (entry.reason ?? 'failed') : null);
  }
  for (const id of touched) refreshDeploymentState(ctx, id);
}
