// Which queued jobs start now, and on which targets: pure, so the queue's rules are unit-tested
// without a store. Jobs wait in submission order, one at a time per target (`local`, or a
// device); a job for N nodes starts only when N matching training devices are free at once,
// and a job that cannot start yet holds the targets it waits for, so later ones cannot jump it.

import { matchesSelector } from '../fleet/deployments.js';
import type { DeviceRecord, JobRecord } from '../store/records.js';

/** Why a device cannot take training jobs, or null when it can. */
export function trainingProblem(d: DeviceRecord): string | null {
  const missing: string[] = [];
  if (!d.trainingAttached) missing.push(`it is not attached for training (outpost-relay targets attach ${d.id} --training)`);
  if (!d.acceptsTraining) missing.push(`its agent does not accept training jobs (on the device: outpost-agent start --accept-training)`);
  return missing.length ? `device ${d.id} cannot train: ${missing.join('; and ')}` : null;
}

/** The targets that could run `job` now (online, able to train, with its dataset), busy or not. */
export function candidateTargets(job: JobRecord, devices: readonly DeviceRecord[]): string[] {
  const t = job.spec.target;
  if (t.kind === 'local') return ['local'];
  const ok = (d: DeviceRecord) => d.online && trainingProblem(d) === null && (!job.spec.dataset || d.datasets.includes(job.spec.dataset));
  if (t.kind === 'device') return devices.filter((d) => d.id === t.deviceId && ok(d)).map((d) => d.id);
  return devices.filter((d) => matchesSelector(d.labels, t.selector) && ok(d)).map((d) => d.id);
}

export interface Placement {
  job: JobRecord;
  /** One per rank, in rank order. */
  targets: string[];
}

/** The queued jobs (in submission order) that start now, given the targets already busy. */
export function placeQueued(queued: readonly JobRecord[], busy: ReadonlySet<string>, devices: readonly DeviceRecord[]): Placement[] {
  const taken = new Set(busy);
  const held = new Set<string>();
  const placements: Placement[] = [];
  for (const job of queued) {
    const candidates = candidateTargets(job, devices);
    const free = candidates.filter((c) => !taken.has(c) && !held.has(c));
    if (free.length >= job.spec.nodes) {
      const targets = free.slice(0, job.spec.nodes);
      for (const c of targets) taken.add(c);
      placements.push({ job, targets });
    } else {
      // Later jobs may not jump the queue on the targets this one waits for.
      for (const c of candidates) held.add(c);
    }
  }
  return placements;
}
