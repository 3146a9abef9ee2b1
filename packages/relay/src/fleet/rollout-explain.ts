// What `deployments show` tells a person about a staged rollout: the stage it is at, which
// devices are its canary, how long each serving device's health window has left, and why each
// waiting device waits. Derived from the rows (in release order) and the rollout controller's
// open windows; nothing here is stored.

import { rolloutSettled, type DeploymentRecord } from '../store/records.js';
import { resolveCount } from './rollout-controller.js';

export interface RolloutExplanation {
  /** "canary", "batch 2 of 4", or the deployment's state when it is not rolling out. */
  stage: string;
  canary: string[];
  devices: Record<string, { why?: string; healthWindowLeftMs?: number }>;
}

export function explainRollout(d: DeploymentRecord, windowLeftMs: (deviceId: string) => number | undefined): RolloutExplanation | null {
  const s = d.strategy;
  if (!s) return null;
  const rows = d.devices;
  const canary = rows.slice(0, Math.min(s.canary, rows.length)).map((r) => r.deviceId);
  const released = rows.filter((r) => r.state !== 'waiting');
  const batch = resolveCount(s.batch, rows.length);
  const afterCanary = Math.max(0, released.length - canary.length);
  const batches = Math.ceil(Math.max(0, rows.length - canary.length) / batch);
  let stage: string = d.state;
  if (d.state === 'in-progress') stage = released.length <= canary.length && canary.length > 0 ? 'canary' : `batch ${Math.max(1, Math.ceil(afterCanary / batch))} of ${batches}`;
  const devices: RolloutExplanation['devices'] = {};
  const unsettled = released.filter((r) => !rolloutSettled(r.state, s.healthWindowMs));
  const failed = rows.filter((r) => r.state === 'failed').length;
  for (const r of rows) {
    if (r.state === 'serving' && s.healthWindowMs > 0) {
      const left = windowLeftMs(r.deviceId);
      devices[r.deviceId] = {
        ...(left !== undefined ? { healthWindowLeftMs: left } : {}),
        why: left === undefined || left > 0 ? 'serving: in its health window' : 'serving: its window has passed; waiting for a heartbeat from after it',
      };
    }
    if (r.state !== 'waiting' || d.state !== 'in-progress') continue;
    const blocking = unsettled.length;
    const what = released.length <= canary.length && canary.length > 0 ? 'the canary' : 'the released batch';
    devices[r.deviceId] = {
      why: blocking > 0
        ? `waiting for ${what}: ${blocking} device(s) not yet ${s.healthWindowMs > 0 ? 'serving through their health window' : 'serving'}`
        : failed > 0
          ? `waiting: ${failed} device(s) failed (threshold ${s.failureThreshold ?? 'none'})`
          : 'next to be released',
    };
  }
  return { stage, canary, devices };
}
