// Creating a deployment: resolve the model version, record per-device rollouts, publish the
// new desired state to each device.

import { randomBytes } from 'node:crypto';
import { KNOWN_EXECUTION_PROVIDERS, OutpostError, background, formatLabels, type Labels, type ServingConfig } from '@outpost/shared';
import type { FleetContext } from './context.js';
import { MEMBER_STATES, type DeploymentRecord, type ModelVersionRecord, type RolloutStrategy } from '../store/records.js';
import { publishDesiredState } from './desired-state.js';
import { PUBLISH_CONCURRENCY, eachBounded } from './bounded.js';
import { applyReportedState, refreshDeploymentState } from './rollout-progress.js';
import { requireDevices } from './devices.js';
import { modelNotFound } from './model-lookup.js';
import { deploymentView } from './views.js';
import { corruptArtifact } from '../artifacts/hot-artifacts.js';

export interface DeployRequest {
  model: string;
  version?: number;
  devices?: string[];
  /** Every device with these labels, now and later. */
  selector?: Labels;
  strategy?: RolloutStrategy;
  serving?: ServingConfig;
  /** A selector that matches no device yet: create it anyway (it waits for devices). */
  allowEmpty?: boolean;
  /** Deploy a version that failed its self-test at push: devices run it themselves. */
  force?: boolean;
}

/** A deployment made, with a line for the person when the relay chose something for them. */
export interface CreatedDeployment {
  deployment: DeploymentRecord;
  notice?: string;
}

/** The selector key matched against the accelerators a device's agent reports, never against its labels. */
export const ACCELERATOR_KEY = 'accelerator';
/** Selector keys the relay fills itself; devices cannot carry them as labels (api/schemas.ts). */
export const RESERVED_SELECTOR_KEYS: readonly string[] = [ACCELERATOR_KEY];

/**
 * Whether a device is one a selector picks: every `k=v` is a label of it, except
 * `accelerator=X`, which its agent reports. A label named so can only be from before the key
 * was reserved, set by an admin (labels of that key are refused now): it still counts, so a
 * fleet that labelled its GPUs keeps its selector deployments. What an agent reports is the
 * device's own claim, as its datasets are (README, "GPUs and accelerators").
 */
export function matchesSelector(device: { labels: Labels; accelerators?: readonly string[] }, selector: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => device.labels[k] === v || (k === ACCELERATOR_KEY && (device.accelerators ?? []).includes(v)));
}

/**
 * The version `deploy NAME` means: the newest one, unless it was rolled back (its newest
 * deployment ended rolled-back), then the newest one that was not, saying so. A rolled-back
 * version goes out again only when it is named.
 */
async function chooseVersion(ctx: FleetContext, name: string): Promise<{ model: ModelVersionRecord; notice?: string }> {
  const versions = (await ctx.store.models.versions(name)).sort((a, b) => b.version - a.version);
  if (versions.length === 0) throw await modelNotFound(ctx, name, undefined, `push it first (outpost-relay models push FILE --name ${name})`);
  const rolledBack = new Map((await ctx.store.deployments.lastPerVersion(name)).filter((d) => d.state === 'rolled-back').map((d) => [d.version, d.id]));
  const model = versions.find((v) => !rolledBack.has(v.version));
  const latest = versions[0]!;
  if (!model) throw new OutpostError('OUTPOST_ERR_CONFLICT', `every version of "${name}" was rolled back; name the one to deploy again (outpost-relay deploy ${name}:${latest.version})`);
  if (model === latest) return { model };
  const skipped = versions.filter((v) => v.version > model.version).map((v) => `${name}:${v.version} (rolled back in ${rolledBack.get(v.version)})`);
  return { model, notice: `deploying ${name}:${model.version}, the newest version not rolled back: ${skipped.join(', ')}; to send one of those again, name it (outpost-relay deploy ${name}:${latest.version})` };
}

export async function createDeployment(ctx: FleetContext, req: DeployRequest): Promise<CreatedDeployment> {
  let model: ModelVersionRecord | undefined;
  let notice: string | undefined;
  if (req.version === undefined) ({ model, notice } = await chooseVersion(ctx, req.model));
  else {
    model = await ctx.store.models.get(req.model, req.version);
    if (!model) throw await modelNotFound(ctx, req.model, req.version, `push it first (outpost-relay models push FILE --name ${req.model})`);
  }
  if (model.selfTest && !model.selfTest.ok && req.serving?.selfTest !== 'off' && !req.force) {
    throw new OutpostError('OUTPOST_ERR_SELF_TEST_FAILED', `${model.name}:${model.version} failed its self-test at push (${model.selfTest.error}); push it again with --sample REQUEST.json, or deploy with --self-test off (devices skip the test) or --force (devices run it themselves)`);
  }
  const unknown = (req.serving?.executionProviders ?? []).filter((p) => !(KNOWN_EXECUTION_PROVIDERS as readonly string[]).includes(p));
  if (unknown.length) {
    // A provider some device lacks is skipped there (cpu is the fallback); a name onnxruntime has nowhere is a mistake.
    throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `execution provider${unknown.length > 1 ? 's' : ''} ${unknown.map((p) => `"${p}"`).join(', ')} unknown to onnxruntime: use ${KNOWN_EXECUTION_PROVIDERS.join(', ')} (devices without one skip it for the next, finally cpu)`);
  }
  const file = ctx.artifactFile?.(model.sha256);
  if (file?.state === 'quarantined') throw corruptArtifact(model.sha256);
  if (file?.state === 'missing') throw new OutpostError('OUTPOST_ERR_ARTIFACT_NOT_FOUND', `the relay has no file for ${model.name}:${model.version} (${model.sha256}); push it again (outpost-relay models push FILE --name ${model.name})`);
  if (req.selector && req.devices?.length) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'give devices or a selector, not both');
  if (req.selector && Object.keys(req.selector).length === 0) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a selector needs at least one label (k=v)');
  if (!req.selector && !req.devices?.length) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a deployment needs at least one device (--device ID or NAME) or a selector (--selector k=v)');
  const id = `dep_${randomBytes(6).toString('hex')}`;
  // A staged rollout starts with every device waiting; the rollout controller releases them.
  const staged = req.strategy && (req.strategy.kind === 'rolling' || req.strategy.canary > 0 || req.strategy.healthWindowMs > 0 || req.strategy.failureThreshold !== null);
  // One unit: a device whose labels change meanwhile (on any relay) is in it or not by its
  // labels after the change, never by the ones read before it.
  const deviceIds = await ctx.store.transaction(async (tx) => {
    // Devices named by id or name; the same device twice is one row.
    const ids = req.selector
      ? (await tx.devices.list()).filter((d) => matchesSelector(d, req.selector!)).map((d) => d.id)
      : [...new Set((await requireDevices(ctx, req.devices!)).map((d) => d.id))];
    if (req.selector && ids.length === 0 && !req.allowEmpty) {
      throw new OutpostError('OUTPOST_ERR_NO_MATCHING_DEVICES', `no device has the labels ${formatLabels(req.selector)}: check them with outpost-relay devices list (accelerators: outpost-relay targets list), or deploy with --allow-empty to wait for devices that will match`);
    }
    await tx.deployments.create(
      { id, model: model.name, version: model.version, sha256: model.sha256, deviceIds: ids, selector: req.selector, strategy: staged ? req.strategy : undefined, serving: req.serving && Object.keys(req.serving).length > 0 ? req.serving : undefined, initialState: staged ? 'waiting' : 'pending' },
      ctx.now(),
    );
    return ids;
  });
  ctx.log.info({ deploymentId: id, model: model.name, version: model.version, devices: deviceIds.length }, 'deployment created');
  ctx.events.emit({ type: 'deployment.created', deployment: deploymentView((await ctx.store.deployments.get(id))!) });
  // The call is answered at once; thousands of desired states go out behind it, a bounded
  // number at a time (a failed publish is logged; the relay republishes on every reconnect).
  if (!staged) background(ctx.log, `publishing deployment ${id}`, converge(ctx, deviceIds).then(() => refreshDeploymentState(ctx, id)));
  await refreshDeploymentState(ctx, id);
  if (notice) ctx.log.info({ deploymentId: id }, notice);
  return { deployment: (await ctx.store.deployments.get(id))!, ...(notice ? { notice } : {}) };
}

/** Publishes the devices' desired states and counts what they already report. */
export async function converge(ctx: FleetContext, deviceIds: Iterable<string>): Promise<void> {
  await eachBounded([...deviceIds], PUBLISH_CONCURRENCY, async (deviceId) => {
    await publishDesiredState(ctx, deviceId);
    // A device that already serves these bytes reports nothing new; count what it last said,
    // read under the lock its reports are applied under (so it is the newest).
    await ctx.store.exclusive(`reported:${deviceId}`, async () => {
      const reported = (await ctx.store.devices.get(deviceId))?.reported;
      await applyReportedState(ctx, deviceId, reported ?? { revision: 0, models: [] });
    });
  });
}

/** Stops a rollout where it is: devices that serve it keep it, the others go back. */
export async function cancelDeployment(ctx: FleetContext, id: string): Promise<DeploymentRecord> {
  return endDeployment(ctx, id, 'canceled', (state) => state !== 'serving' && state !== 'healthy');
}

/** Returns every device of the deployment to what it had before. */
export async function rollbackDeployment(ctx: FleetContext, id: string): Promise<DeploymentRecord> {
  return endDeployment(ctx, id, 'rolled-back', () => true);
}

async function endDeployment(ctx: FleetContext, id: string, state: 'canceled' | 'rolled-back', leaves: (s: string) => boolean): Promise<DeploymentRecord> {
  const d = await requireDeployment(ctx, id);
  if (d.state === 'rolled-back' || (d.state === 'canceled' && state === 'canceled')) return d;
  const now = ctx.now();
  const touched: string[] = [];
  for (const x of d.devices) {
    if (!(MEMBER_STATES.has(x.state) || x.state === 'waiting') || !leaves(x.state)) continue;
    touched.push(x.deviceId);
    // A failed device stays failed with its reason: it explains the rollback (and whether the
    // rollback or the device's report came first, the answer is the same).
    if (state === 'rolled-back' && x.state === 'failed') continue;
    await ctx.store.deployments.setRolloutState(id, x.deviceId, state, x.reason, now);
    ctx.events.emit({ type: 'deployment.progress', deploymentId: id, deviceId: x.deviceId, state, reason: x.reason });
  }
  await ctx.store.deployments.setState(id, state);
  ctx.events.emit({ type: 'deployment.state', deploymentId: id, state });
  ctx.log.info({ deploymentId: id, state, devices: touched.length }, state === 'canceled' ? 'deployment canceled' : 'deployment rolled back');
  await converge(ctx, touched);
  return (await ctx.store.deployments.get(id))!;
}

/**
 * Keeps selector deployments true for one device after it enrolled or its labels changed:
 * it joins those it now matches and leaves those it no longer matches.
 */
export async function syncSelectorMembership(ctx: FleetContext, deviceId: string): Promise<void> {
  // Two label changes of one device (on any relays) sync one after the other, each reading after the last.
  // Its desired state goes out after, outside the lock (publishing takes locks of its own).
  if (await ctx.store.exclusive(`membership:${deviceId}`, () => syncMembership(ctx, deviceId))) await converge(ctx, [deviceId]);
}

/** True when the device joined or left a deployment. */
async function syncMembership(ctx: FleetContext, deviceId: string): Promise<boolean> {
  const device = await ctx.store.devices.get(deviceId);
  if (!device) return false;
  const now = ctx.now();
  let changed = false;
  for (const d of await ctx.store.deployments.withSelector(deviceId)) {
    const row = d.rollout;
    const member = row !== null && MEMBER_STATES.has(row.state);
    const matches = matchesSelector(device, d.selector!);
    if (matches && !member && row?.state !== 'canceled' && row?.state !== 'rolled-back') {
      await ctx.store.deployments.addRollout(d.id, deviceId, now);
      ctx.events.emit({ type: 'deployment.progress', deploymentId: d.id, deviceId, state: 'pending', reason: null });
    } else if (!matches && member) {
      await ctx.store.deployments.setRolloutState(d.id, deviceId, 'removed', 'no longer matches the selector', now);
      ctx.events.emit({ type: 'deployment.progress', deploymentId: d.id, deviceId, state: 'removed', reason: 'no longer matches the selector' });
    } else {
      continue;
    }
    changed = true;
    await refreshDeploymentState(ctx, d.id);
  }
  return changed;
}

export async function requireDeployment(ctx: FleetContext, id: string): Promise<DeploymentRecord> {
  const d = await ctx.store.deployments.get(id);
  if (!d) throw new OutpostError('OUTPOST_ERR_DEPLOYMENT_NOT_FOUND', `no deployment "${id}": list them with outpost-relay deployments list`);
  return d;
}
