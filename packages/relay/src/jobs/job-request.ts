// A job as submitted (POST /v1/jobs), checked and turned into the spec the queue keeps: the
// bundle exists, the target parses and can run it now (attached, consenting, with the dataset),
// the model to register and its output path are sane. Each refusal names its fix.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { ONNX_FLOAT, OutpostError, parseLabels, readModelWeights, type Labels } from '@outpost/shared';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';
import { matchesSelector } from '../fleet/deployments.js';
import { requireDevice } from '../fleet/devices.js';
import type { FederatedSpec, JobSpec, JobTarget, RolloutStrategy } from '../store/records.js';
import { modelNotFound } from '../fleet/model-lookup.js';
import { UPDATE_FILE } from '../federated/updates.js';
import { trainingProblem } from './job-queue.js';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface SubmitRequest {
  bundleSha256: string;
  target: string;
  nodes?: number;
  command: string;
  env?: Record<string, string>;
  dataset?: string;
  /** Accelerators the device must report (checked by the API's schema: names, at most 8). */
  require?: string[];
  timeoutMs?: number;
  registerModel?: { name: string; output: string };
  federated?: FederatedRequest;
  /** An N-node job: how long its ranks wait for each other at rank 0 (default a minute). */
  rendezvousTimeoutMs?: number;
  /** A scoring job (no bundle, no command): this model over the dataset on every matching device. */
  score?: { model: { name: string; version?: number }; format?: 'jsonl' | 'csv' };
}

const RENDEZVOUS_TIMEOUT_MS = 60_000;

/** A federated job's settings as asked; checkFederated fills in the defaults. */
export interface FederatedRequest {
  rounds: number;
  minClients: number;
  fraction?: number;
  roundDeadlineMs?: number;
  strategy?: 'fedavg' | 'fedprox';
  proximalMu?: number;
  maxAttempts?: number;
  initialModel: { name: string; version?: number };
  deploy?: { selector: Labels; strategy?: RolloutStrategy };
}

/** Flower's defaults where it has them (fraction 1); a round gets ten minutes. */
const FEDERATED_DEFAULTS = { fraction: 1, roundDeadlineMs: 10 * 60_000, maxAttempts: 3 };

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

export async function checkJobRequest(c: JobRequestContext, request: SubmitRequest): Promise<JobSpec> {
  const { ctx, artifacts, localDatasets } = c;
  const score = request.score ? await checkScore(c, request) : undefined;
  // A scoring job's "bundle" is its model's file, its command what it does (shown, never run).
  const req = score ? { ...request, bundleSha256: score.spec.model.sha256, command: `score ${score.spec.model.name}:${score.spec.model.version}`, nodes: score.nodes } : request;
  const bundleSize = await artifacts.size(req.bundleSha256);
  if (bundleSize === undefined) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `no bundle ${req.bundleSha256}: upload it first (POST /v1/bundles)`);
  if (!req.command.trim()) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a job needs a command (--command "...")');
  const target = parseTarget(req.target);
  const federated = req.federated ? await checkFederated(ctx, artifacts, req, target) : undefined;
  // A federated job needs its minimum of clients able to train, as an N-node job its N.
  const nodes = federated ? federated.minClients : (req.nodes ?? 1);
  if (!federated && target.kind !== 'selector' && nodes !== 1) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--nodes ${nodes} needs a selector target (k=v,...), not ${req.target}`);
  let registerModel = req.registerModel;
  if (registerModel) {
    if (!MODEL_NAME.test(registerModel.name)) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `"${registerModel.name}" is not a model name`);
    const out = posix.normalize(registerModel.output);
    if (posix.isAbsolute(out) || out.startsWith('..')) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--output must be a path inside OUTPOST_OUTPUT_DIR, not ${registerModel.output}`);
    registerModel = { name: registerModel.name, output: out };
  }
  const require = [...new Set(req.require ?? [])].sort();
  // The relay host reports no accelerators: a job that needs one would wait forever.
  if (require.length && target.kind === 'local') throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--require ${require.join(',')} needs devices that report it: give a device or a selector k=v,... (not local)`);
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
    const matching = (await ctx.store.devices.list()).filter((d) => matchesSelector(d, target.selector));
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
    nodes: federated ? 1 : nodes,
    command: req.command,
    env: req.env ?? {},
    ...(req.dataset ? { dataset: req.dataset } : {}),
    ...(require.length ? { require } : {}),
    ...(req.timeoutMs ? { timeoutMs: req.timeoutMs } : {}),
    ...(registerModel ? { registerModel } : {}),
    ...(federated ? { federated } : {}),
    ...(score ? { score: score.spec } : {}),
    // Ranks on devices meet at rank 0 (MASTER_ADDR/MASTER_PORT), checking in with this secret.
    ...(!federated && !score && nodes > 1 ? { rendezvous: { secret: randomBytes(24).toString('base64url'), timeoutMs: req.rendezvousTimeoutMs ?? RENDEZVOUS_TIMEOUT_MS } } : {}),
  };
}

/**
 * A scoring job: a model version on devices (one, or every one a selector matches that can run
 * jobs and has the dataset), as many runs as devices.
 */
async function checkScore({ ctx }: JobRequestContext, req: SubmitRequest): Promise<{ spec: NonNullable<JobSpec['score']>; nodes: number }> {
  const s = req.score!;
  const target = parseTarget(req.target);
  if (target.kind === 'local') throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'scoring runs where the data lives: give a device or a selector k=v,..., not local');
  if (!req.dataset) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a scoring job needs the dataset to score (--dataset NAME, as the agents offer it)');
  const model = s.model.version === undefined ? await ctx.store.models.get(s.model.name) : await ctx.store.models.get(s.model.name, s.model.version);
  if (!model) throw await modelNotFound(ctx, s.model.name, s.model.version, `push it first (outpost-relay models push FILE --name ${s.model.name})`);
  let nodes = 1;
  if (target.kind === 'selector') {
    // The devices that can score now: one offline would hold the whole job until it is back.
    const able = (await ctx.store.devices.list()).filter((d) => d.online && matchesSelector(d, target.selector) && trainingProblem(d) === null && d.datasets.includes(req.dataset!) && (req.require ?? []).every((a) => d.accelerators.includes(a)));
    nodes = Math.max(1, able.length);
  }
  return { spec: { model: { name: model.name, version: model.version, sha256: model.sha256 }, format: s.format ?? 'jsonl' }, nodes };
}

/**
 * A federated job: on devices by selector, from a model version whose weights the relay can read
 * and average, with settings that can be met. Registering the result keeps its model.onnx.
 */
async function checkFederated(ctx: FleetContext, artifacts: ArtifactStore, req: SubmitRequest, target: JobTarget): Promise<FederatedSpec> {
  const f = req.federated!;
  if (target.kind !== 'selector') throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `a federated job trains on devices chosen by labels: give --target k=v,... (not ${req.target})`);
  if (req.nodes !== undefined && req.nodes !== 1) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a federated job asks --min-clients devices each round, not --nodes');
  if (req.registerModel && req.registerModel.output !== UPDATE_FILE) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `a federated job registers its averaged ${UPDATE_FILE}: drop --output ${req.registerModel.output}`);
  const strategy = f.strategy ?? 'fedavg';
  const proximalMu = f.proximalMu ?? 0;
  if (strategy === 'fedprox' && !(proximalMu > 0)) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'FedProx needs its proximal term: add --proximal-mu MU (e.g. 0.01)');
  if (strategy === 'fedavg' && proximalMu > 0) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--proximal-mu ${proximalMu} is FedProx's: add --strategy fedprox`);
  if (f.deploy && Object.keys(f.deploy.selector).length === 0) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', 'a rollout of the result needs a selector with at least one label (--deploy-selector k=v)');
  const model = f.initialModel.version === undefined ? await ctx.store.models.get(f.initialModel.name) : await ctx.store.models.get(f.initialModel.name, f.initialModel.version);
  const named = `${f.initialModel.name}${f.initialModel.version === undefined ? '' : `:${f.initialModel.version}`}`;
  if (!model) throw await modelNotFound(ctx, f.initialModel.name, f.initialModel.version, `push the initial model first (outpost-relay models push FILE --name ${f.initialModel.name})`);
  let weights;
  try {
    weights = readModelWeights(await readFile(artifacts.path(model.sha256)));
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_MODEL_INVALID', `the weights of ${named} cannot be read for averaging: ${(err as Error).message}`);
  }
  if (!weights.initializers.some((i) => i.dataType === ONNX_FLOAT)) throw new OutpostError('OUTPOST_ERR_MODEL_INVALID', `${named} has no float weights (initializers) to train and average`);
  return {
    rounds: f.rounds,
    minClients: f.minClients,
    fraction: f.fraction ?? FEDERATED_DEFAULTS.fraction,
    roundDeadlineMs: f.roundDeadlineMs ?? FEDERATED_DEFAULTS.roundDeadlineMs,
    strategy,
    proximalMu,
    maxAttempts: f.maxAttempts ?? FEDERATED_DEFAULTS.maxAttempts,
    initialModel: { name: model.name, version: model.version, sha256: model.sha256 },
    ...(f.deploy ? { deploy: f.deploy } : {}),
  };
}
