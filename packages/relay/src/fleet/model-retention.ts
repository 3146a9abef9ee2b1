// Deleting model versions, one (`models delete`) or the old ones of every model (`models
// prune`). A version is in use while a deployment of it is still rolling out, or while it is
// what some device's desired state names: the newest deployment of that model that applies
// to the device is one of it. Only versions not in use go; a deployment of a deleted version
// is history and applies to no device again (the store leaves it out), so no rollback or
// relabelling can bring a deleted version back. A file goes with its last reference.

import { OutpostError } from '@outpost/shared';
import type { FleetContext } from './context.js';
import type { ModelVersionRecord } from '../store/records.js';

/** One deployment that keeps a version in use. */
export interface VersionUse {
  deploymentId: string;
  /** Devices whose desired state names the version through this deployment. */
  devices: number;
  /** The deployment is still rolling out: it may yet reach more devices. */
  rollingOut: boolean;
}

export interface DeletedVersion {
  name: string;
  version: number;
  sha256: string;
  size: number;
  /** Whether its file left the relay's disk (false: another version or a job output has the same bytes). */
  fileRemoved: boolean;
}

/** Removes an artifact file nothing refers to; false when it is kept (see ArtifactStore.remove). */
export type RemoveArtifact = (sha256: string) => boolean;

/** For each version of `model` that is in use, the deployments that use it. */
export async function versionUses(ctx: FleetContext, model: string): Promise<Map<number, VersionUse[]>> {
  const uses = new Map<number, Map<string, VersionUse>>();
  const use = (version: number, deploymentId: string, rollingOut: boolean): VersionUse => {
    const byDeployment = uses.get(version) ?? new Map<string, VersionUse>();
    uses.set(version, byDeployment);
    const u = byDeployment.get(deploymentId) ?? { deploymentId, devices: 0, rollingOut };
    byDeployment.set(deploymentId, u);
    return u;
  };
  const seen = new Set<string>();
  // Newest deployment first: a device's first row that applies is the one it follows.
  for (const row of await ctx.store.models.rollouts(model)) {
    if (row.deploymentState === 'in-progress') use(row.version, row.deploymentId, true);
    if (row.state === 'waiting' || seen.has(row.deviceId)) continue;
    seen.add(row.deviceId);
    use(row.version, row.deploymentId, row.deploymentState === 'in-progress').devices++;
  }
  return new Map([...uses].map(([version, m]) => [version, [...m.values()]]));
}

function describeUses(uses: VersionUse[]): string {
  const shown = uses.slice(0, 3).map((u) => (u.rollingOut ? `${u.deploymentId} is still rolling it out` : `${u.deploymentId} sends it to ${u.devices} device${u.devices === 1 ? '' : 's'}`));
  return shown.join(', ') + (uses.length > 3 ? ` and ${uses.length - 3} more` : '');
}

/** Deletes versions known not to be in use, then each file no other record refers to. */
async function remove(ctx: FleetContext, removeArtifact: RemoveArtifact, versions: ModelVersionRecord[]): Promise<DeletedVersion[]> {
  for (const v of versions) await ctx.store.models.deleteVersion(v.name, v.version);
  const gone = new Set<string>();
  const deleted: DeletedVersion[] = [];
  for (const v of versions) {
    if (!gone.has(v.sha256) && !(await ctx.store.artifactRefs.referenced(v.sha256)) && removeArtifact(v.sha256)) gone.add(v.sha256);
    ctx.log.info({ model: v.name, version: v.version, sha256: v.sha256, fileRemoved: gone.has(v.sha256) }, 'model version deleted');
    deleted.push({ name: v.name, version: v.version, sha256: v.sha256, size: v.size, fileRemoved: gone.has(v.sha256) });
  }
  return deleted;
}

/** `models delete NAME:VERSION`: refused (409) while the version is in use, naming who uses it. */
export async function deleteModelVersion(ctx: FleetContext, removeArtifact: RemoveArtifact, name: string, version: number): Promise<DeletedVersion> {
  const record = await ctx.store.models.get(name, version);
  if (!record) throw new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `no version ${version} of model "${name}": see its versions with outpost-relay models show ${name}`);
  const uses = (await versionUses(ctx, name)).get(version);
  if (uses) {
    const first = uses[0]!.deploymentId;
    throw new OutpostError(
      'OUTPOST_ERR_CONFLICT',
      `${name}:${version} is in use: ${describeUses(uses)}; deploy another version to those devices (or roll it back: outpost-relay deployments rollback ${first}), then delete it`,
    );
  }
  return (await remove(ctx, removeArtifact, [record]))[0]!;
}

export interface PruneRequest {
  /** Versions kept per model, newest first, besides those in use. */
  keep: number;
  dryRun?: boolean;
  /** Only this model (default: every model). */
  model?: string;
}

export interface PruneResult {
  dryRun: boolean;
  keep: number;
  /** What was deleted (with dryRun: what would be; `fileRemoved` is then false). */
  deleted: DeletedVersion[];
  /** Older versions kept because deployments use them. */
  inUse: Array<{ name: string; version: number; deployments: string[] }>;
}

/** `models prune`: every version older than the newest `keep` of its model, unless it is in use. */
export async function pruneModels(ctx: FleetContext, removeArtifact: RemoveArtifact, req: PruneRequest): Promise<PruneResult> {
  const names = req.model ? [req.model] : (await ctx.store.models.list()).map((m) => m.name);
  if (req.model && (await ctx.store.models.versions(req.model)).length === 0) throw new OutpostError('OUTPOST_ERR_MODEL_NOT_FOUND', `no model "${req.model}": list them with outpost-relay models list`);
  const victims: ModelVersionRecord[] = [];
  const inUse: PruneResult['inUse'] = [];
  for (const name of names) {
    const uses = await versionUses(ctx, name);
    const versions = await ctx.store.models.versions(name); // oldest first
    const old = versions.slice(0, Math.max(0, versions.length - req.keep));
    for (const v of old) {
      const u = uses.get(v.version);
      if (u) inUse.push({ name, version: v.version, deployments: u.map((x) => x.deploymentId) });
      else victims.push(v);
    }
  }
  const deleted = req.dryRun ? victims.map((v) => ({ name: v.name, version: v.version, sha256: v.sha256, size: v.size, fileRemoved: false })) : await remove(ctx, removeArtifact, victims);
  return { dryRun: Boolean(req.dryRun), keep: req.keep, deleted, inUse };
}
