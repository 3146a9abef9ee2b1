// How records look in API answers (ISO times, no secrets).

import type { FileState } from '../artifacts/artifact-store.js';
import type { DeploymentSummary, DeviceProblem, DeviceSummary } from '@outpost/shared';
import type { DeploymentRecord, DeviceRecord, ModelVersionRecord } from '../store/records.js';

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** `problem`: what the relay sees wrong with it now (ctx.duplicates), kept in memory only. */
export function deviceView(d: DeviceRecord, problem: DeviceProblem | null = null): DeviceSummary {
  return {
    id: d.id,
    name: d.name,
    labels: d.labels,
    online: d.online,
    lastSeen: iso(d.lastSeen),
    createdAt: iso(d.createdAt),
    models: d.reported?.models ?? [],
    health: d.health,
    problem,
    accelerators: d.accelerators,
    executionProviders: d.executionProviders,
  };
}

/** A model version; `file` says whether the relay's copy is sound (see artifacts/artifact-checks.ts). */
export function modelVersionView(m: ModelVersionRecord, file: FileState = { state: 'ok' }) {
  const fileView = file.state === 'quarantined' ? { state: file.state, foundAt: iso(file.at), foundBy: file.foundBy, actualSha256: file.actual } : file;
  return { name: m.name, version: m.version, sha256: m.sha256, size: m.size, signature: m.signature, createdAt: iso(m.createdAt), lineage: m.lineage, sample: m.sample, selfTest: m.selfTest, file: fileView };
}

export function deploymentView(d: DeploymentRecord): DeploymentSummary {
  const counts: Record<string, number> = {};
  for (const x of d.devices) counts[x.state] = (counts[x.state] ?? 0) + 1;
  return {
    id: d.id,
    model: d.model,
    version: d.version,
    sha256: d.sha256,
    state: d.state,
    selector: d.selector,
    strategy: d.strategy,
    serving: d.serving,
    createdAt: iso(d.createdAt),
    counts,
    devices: d.devices.map((x) => ({ deviceId: x.deviceId, state: x.state, reason: x.reason, updatedAt: iso(x.updatedAt) })),
  };
}
