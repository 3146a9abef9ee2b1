// Turns what devices report into per-device deployment progress, and a deployment's overall state.

import { servingKey, type ReportedModel, type ReportedState } from '@outpost/shared';
import type { FleetContext } from './context.js';
import { MEMBER_STATES, rolloutSettled, type DeploymentState, type DeviceRolloutState, type RolloutStrategy } from '../store/records.js';
import { effectiveDeployments } from './desired-state.js';

/**
 * The state of a deployment from how many of its devices are in each rollout state
 * (canceled and rolled back deployments stay so).
 */
export function deploymentState(d: { state?: DeploymentState; strategy?: RolloutStrategy | null; counts: Partial<Record<DeviceRolloutState, number>> }): DeploymentState {
  if (d.state === 'canceled' || d.state === 'rolled-back') return d.state;
  const windowMs = d.strategy?.healthWindowMs ?? 0;
  let failed = false;
  // No device at all is not a success: the deployment waits for devices to match.
  if (Object.values(d.counts).every((n) => !n)) return 'waiting-for-devices';
  for (const [state, n] of Object.entries(d.counts) as Array<[DeviceRolloutState, number]>) {
    if (!n) continue;
    if (state === 'waiting' || (MEMBER_STATES.has(state) && !rolloutSettled(state, windowMs))) return 'in-progress';
    if (state === 'failed') failed = true;
  }
  return failed ? 'failed' : 'succeeded';
}

export async function refreshDeploymentState(ctx: FleetContext, deploymentId: string): Promise<void> {
  // One unit: a cancel or rollback landing between the read and the write must not be undone.
  const changed = await ctx.store.transaction(async (tx) => {
    const d = await tx.deployments.info(deploymentId);
    if (!d) return undefined;
    const state = deploymentState({ ...d, counts: await tx.deployments.rolloutCounts(deploymentId) });
    if (state === d.state) return undefined;
    await tx.deployments.setState(d.id, state);
    return { d, state };
  });
  if (changed) {
    const { d, state } = changed;
    ctx.events.emit({ type: 'deployment.state', deploymentId: d.id, state });
    ctx.log.info({ deploymentId: d.id, model: d.model, version: d.version, state }, 'deployment state changed');
  }
}

/**
 * Whether a row keeps its state against a report. A device found healthy stays so while it keeps
 * serving (reports repeat on reconnect). A device that served a deployment does not go back to
 * downloading or loading in it: those are steps towards serving, which it has shown, and two
 * agents on one identity each republish their own last report on every reconnect, so a copy
 * still downloading would otherwise turn a finished deployment back to in-progress, again and
 * again. What the device does now is in its own reported models; a failure still counts.
 */
function holds(row: DeviceRolloutState, reported: ReportedModel['state']): boolean {
  if (reported === 'failed') return false;
  if (row === 'healthy') return true;
  return row === 'serving' && reported !== 'serving';
}

/**
 * Applies a device's reported state to the deployments it follows. Older deployments of the
 * same model on the device are marked superseded, so they stop waiting for it.
 */
export async function applyReportedState(ctx: FleetContext, deviceId: string, reported: ReportedState): Promise<void> {
  const now = ctx.now();
  const all = await ctx.store.deployments.forDevice(deviceId);
  const current = new Set(effectiveDeployments(all).map((d) => d.id));
  const touched = new Set<string>();
  const progress = async (deploymentId: string, state: DeviceRolloutState, reason: string | null) => {
    if (!await ctx.store.deployments.setRolloutState(deploymentId, deviceId, state, reason, now)) return;
    touched.add(deploymentId);
    ctx.events.emit({ type: 'deployment.progress', deploymentId, deviceId, state, reason });
  };
  for (const d of all) {
    const mine = d.rollout;
    if (!current.has(d.id)) {
      if (!rolloutSettled(mine.state, 0)) await progress(d.id, 'superseded', null);
      continue;
    }
    // The same file under other serving settings is another deployment's report (older agents
    // do not say which settings they report on).
    const key = servingKey(d.serving);
    const entry = reported.models.find((m) => m.name === d.model && m.sha256 === d.sha256 && (m.servingKey === undefined || m.servingKey === key));
    if (!entry || holds(mine.state, entry.state)) continue;
    await progress(d.id, entry.state, entry.state === 'failed' ? (entry.reason ?? 'failed') : null);
  }
  for (const id of touched) await refreshDeploymentState(ctx, id);
}
