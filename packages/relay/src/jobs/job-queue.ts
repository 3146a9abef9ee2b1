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

/** Whether a device reports every accelerator the job requires. */
export function hasRequired(job: JobRecord, d: DeviceRecord): boolean {
  return (job.spec.require ?? []).every((a) => d.accelerators.includes(a));
}

/** The targets that could run `job` now (online, able to train, with its dataset and required accelerators), busy or not. */
export function candidateTargets(job: JobRecord, devices: readonly DeviceRecord[]): string[] {
  const t = job.spec.target;
  if (t.kind === 'local') return ['local'];
  const ok = (d: DeviceRecord) => d.online && trainingProblem(d) === null && (!job.spec.dataset || d.datasets.includes(job.spec.dataset)) && hasRequired(job, d);
  if (t.kind === 'device') return devices.filter((d) => d.id === t.deviceId && ok(d)).map((d) => d.id);
  return devices.filter((d) => matchesSelector(d, t.selector) && ok(d)).map((d) => d.id);
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

/**
 * Why a queued job has not started, in a line (`jobs show`): no target reports what it requires,
 * too few targets can run it, all of them busy, or earlier jobs ahead of it. Null for jobs
 * that are not queued, and for federated ones (their rounds say why: federated-rounds.ts).
 */
export function waitingReason(job: JobRecord, busy: ReadonlySet<string>, devices: readonly DeviceRecord[]): string | null {
  if (job.state !== 'queued' || job.spec.federated) return null;
  const t = job.spec.target;
  const need = job.spec.nodes;
  if (t.kind === 'local') return busy.has('local') ? 'waiting: local is busy' : 'waiting: jobs ahead of it in the queue go first';
  const require = job.spec.require ?? [];
  const what = require.join(' and ');
  const inTarget = t.kind === 'device' ? devices.filter((d) => d.id === t.deviceId) : devices.filter((d) => matchesSelector(d, t.selector));
  const named = t.kind === 'device' ? `device ${t.deviceId}` : `${inTarget.length} device(s) match the selector`;
  if (require.length && !inTarget.some((d) => hasRequired(job, d))) return `waiting: no target reports ${what} (${named}; on a device: outpost-agent start --accelerator NAME)`;
  const candidates = candidateTargets(job, devices);
  const withWhat = require.length ? ` with ${what}` : '';
  if (candidates.length < need) {
    return `waiting: ${candidates.length} target(s)${withWhat} online and able to run it, it needs ${need}${t.kind === 'selector' ? ` (${named})` : ''}`;
  }
  const freeCount = candidates.filter((c) => !busy.has(c)).length;
  if (freeCount < need) {
    const n = candidates.length;
    const counts = `${n} match, ${n === 2 && freeCount === 0 ? 'both' : n - freeCount} busy`;
    return freeCount === 0 ? `waiting: no free target${withWhat} (${counts})` : `waiting: ${freeCount} free target(s)${withWhat}, it needs ${need} (${counts})`;
  }
  return 'waiting: jobs ahead of it in the queue hold its targets';
}
