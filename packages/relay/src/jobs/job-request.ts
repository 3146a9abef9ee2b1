// A job as submitted (POST /v1/jobs), checked and turned into the spec the queue keeps: the
// bundle exists, the target parses and can run it now (attached, consenting, with the dataset),
// the model to register and its output path are sane. Each refusal names its fix.

import { posix } from 'node:path';
import { OutpostError, parseLabels } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';
import { matchesSelector } from '../fleet/deployments.js';
import { requireDevice } from '../fleet/devices.js';
import type { JobSpec, JobTarget } from '../store/records.js';
import { trainingProblem } from './job-queue.js';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface SubmitRequest {
  bundleSha256: string;
  target: string;
  nodes?: number;
  command: string;
  env?: Record<string, string>;
  dataset?: string;
  timeoutMs?: number;
  registerModel?: { name: string; output: string };
}

export interface JobRequestContext {
  ctx: FleetContext;
  artifacts: ArtifactStore;
  /** Datasets on the relay host, for jobs on `local`. */
  localDatasets?: Record<string, string>;
}

export function parseTarget(text: string): JobTarget {
  if (text === 'local') return { kind: 'local' };
  if (!text.includes('=')) return { kind: 'device', deviceId: text };
  try {
    return { kind: 'selector', selector: parseLabels(text) };
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `target "${text}": ${(err as Error).message}; use local, a device id, or a selector k=v,...`);
  }
}

export async function checkJobRequest({ ctx, artifacts, localDatasets }: JobRequestContext, req: SubmitRequest): Promise<JobSpec> {
  const bundleSize = await artifacts.size(req.bundleSha256);
  if (bundleSize === undefined) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `no bundle ${req.bundleSha256}: upload it first (POST /v1/bundles)`);
  if (!req.command.trim()) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a job needs a command (--command "...")');
  const target = parseTarget(req.target);
  const nodes = req.nodes ?? 1;
  if (target.kind !== 'selector' && nodes !== 1) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--nodes ${nodes} needs a selector target (k=v,...), not ${req.target}`);
  let registerModel = req.registerModel;
  if (registerModel) {
    if (!MODEL_NAME.test(registerModel.name)) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `"${registerModel.name}" is not a model name`);
    const out = posix.normalize(registerModel.output);
    if (posix.isAbsolute(out) || out.startsWith('..')) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--output must be a path inside OUTPOST_OUTPUT_DIR, not ${registerModel.output}`);
    registerModel = { name: registerModel.name, output: out };
  }
  if (target.kind === 'local') {
    if (req.dataset && !localDatasets?.[req.dataset]) throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', `the relay host has no dataset "${req.dataset}" (outpost-relay start --dataset ${req.dataset}=PATH)`);
  } else if (target.kind === 'device') {
    // Named by id or name; the job keeps the id.
    const d = await requireDevice(ctx, target.deviceId, 'use local, a device id or name, or a selector k=v,...');
    target.deviceId = d.id;
    const problem = trainingProblem(d);
    if (problem) throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', problem);
    if (req.dataset && !d.datasets.includes(req.dataset)) throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', `device ${d.id} has no dataset "${req.dataset}" (outpost-agent start --dataset ${req.dataset}=PATH)`);
  } else {
    const matching = (await ctx.store.devices.list()).filter((d) => matchesSelector(d.labels, target.selector));
    const able = matching.filter((d) => trainingProblem(d) === null && (!req.dataset || d.datasets.includes(req.dataset)));
    if (able.length < nodes) {
      const why = matching.map((d) => trainingProblem(d) ?? (req.dataset && !d.datasets.includes(req.dataset) ? `device ${d.id} has no dataset "${req.dataset}"` : null)).filter(Boolean);
      throw new OutpostError('OUTPOST_ERR_TARGET_NOT_READY', `${able.length} of ${matching.length} devices matching ${req.target} can run this job; it needs ${nodes}${why.length ? `: ${why.join('; ')}` : ''}`);
    }
  }
  return {
    bundleSha256: req.bundleSha256,
    bundleSize,
    target,
    nodes,
    command: req.command,
    env: req.env ?? {},
    ...(req.dataset ? { dataset: req.dataset } : {}),
    ...(req.timeoutMs ? { timeoutMs: req.timeoutMs } : {}),
    ...(registerModel ? { registerModel } : {}),
  };
}
