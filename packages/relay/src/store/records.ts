// The records the relay keeps. The store interface and its implementations speak these.

import type { HealthMessage, JobRunState, JobState, Labels, RoundState, ModelSignature, ModelState, ReportedState, SelfTestResult, ServingConfig } from '@outpost/shared';
import type { Role } from '../auth/roles.js';

export interface DeviceRecord {
  id: string;
  name: string;
  labels: Labels;
  createdAt: number;
  online: boolean;
  lastSeen: number | null;
  health: HealthMessage | null;
  reported: ReportedState | null;
  /** An admin attached it as a training target. */
  trainingAttached: boolean;
  /** Its agent runs with --accept-training. */
  acceptsTraining: boolean;
  datasets: string[];
  /** Accelerators its agent reports (found or declared): selectors' `accelerator=X` and jobs' `require` match them. */
  accelerators: string[];
  /** onnxruntime execution providers its agent can use. */
  executionProviders: string[];
}

/** What an agent's status says it computes on (see StatusMessage). */
export interface DeviceHardware {
  accelerators: string[];
  executionProviders: string[];
}

export interface ModelVersionRecord {
  name: string;
  version: number;
  sha256: string;
  size: number;
  signature: ModelSignature;
  createdAt: number;
  lineage: ModelLineage | null;
  /** The request the self-test and warm-up run on, when the pusher gave one. */
  sample: { sha256: string; size: number } | null;
  /** How the model did when the relay ran it at push (null for versions pushed before). */
  selfTest: SelfTestResult | null;
}

/** What a push adds to a version besides its file. */
export interface ModelVersionExtras {
  lineage?: ModelLineage;
  sample?: { sha256: string; size: number };
  selfTest?: SelfTestResult;
}

export interface ModelSummary {
  name: string;
  latestVersion: number;
  versions: number;
  updatedAt: number;
}

/**
 * A device's place in a deployment. `superseded`: a newer deployment of the same model targets
 * it (it comes back if that one is rolled back). `removed`: it stopped matching the selector.
 * `canceled` and `rolled-back`: the deployment no longer applies to it.
 */
export type DeviceRolloutState = 'waiting' | 'pending' | ModelState | 'healthy' | 'superseded' | 'removed' | 'canceled' | 'rolled-back';

/**
 * How a deployment rolls out. Devices start `waiting` and are released in batches (the
 * first `canary` devices, then `batch` at a time), each batch once the previous one is done:
 * serving, and (with a health window) healthy for that long. Past `failureThreshold` failed
 * devices the rollout stops and rolls back.
 */
export interface RolloutStrategy {
  kind: 'all' | 'rolling';
  /** Devices per batch: a count, or a percentage of the deployment's devices ("25%"). */
  batch: number | string;
  canary: number;
  /** Failures tolerated: a count or a percentage; null for no limit (no automatic rollback). */
  failureThreshold: number | string | null;
  healthWindowMs: number;
}
/** `waiting-for-devices`: a selector deployment (made with --allow-empty) that no device matches yet. */
export type DeploymentState = 'in-progress' | 'waiting-for-devices' | 'succeeded' | 'failed' | 'canceled' | 'rolled-back';

/** Rollout states in which a deployment still applies to the device. */
export const MEMBER_STATES: ReadonlySet<DeviceRolloutState> = new Set(['pending', 'downloading', 'loading', 'serving', 'healthy', 'failed', 'superseded']);

/**
 * Whether a device's part of a rollout is settled: it needs nothing more from the rollout.
 * Serving is settled only without a health window; with one, healthy (or failed) is.
 */
export function rolloutSettled(state: DeviceRolloutState, healthWindowMs: number): boolean {
  if (state === 'waiting' || state === 'pending' || state === 'downloading' || state === 'loading') return false;
  return !(state === 'serving' && healthWindowMs > 0);
}

/** One device's row in a deployment of a model, for deciding which versions are in use. */
export interface ModelRolloutRecord {
  deviceId: string;
  deploymentId: string;
  version: number;
  deploymentState: DeploymentState;
  state: DeviceRolloutState;
}

export interface DeploymentDeviceRecord {
  deviceId: string;
  state: DeviceRolloutState;
  reason: string | null;
  updatedAt: number;
}

/** A deployment without its per-device rows (a deployment can have thousands). */
export interface DeploymentInfo {
  id: string;
  model: string;
  version: number;
  sha256: string;
  state: DeploymentState;
  /** Set for a deployment to every device matching these labels, now and later. */
  selector: Labels | null;
  strategy: RolloutStrategy | null;
  /** How devices serve it (batching, session options); null for the agent's defaults. */
  serving: ServingConfig | null;
  createdAt: number;
}

export interface DeploymentRecord extends DeploymentInfo {
  devices: DeploymentDeviceRecord[];
}

/** A deployment as one device sees it: with that device's row only. */
export interface DeviceDeployment extends DeploymentInfo {
  rollout: { state: DeviceRolloutState; reason: string | null };
}

/** One heartbeat, reduced to what the charts plot. Rates are per second. */
export interface HealthSample {
  deviceId: string;
  ts: number;
  cpu: number;
  memUsed: number;
  memTotal: number;
  rss: number;
  reqRate: number;
  errRate: number;
  p50: number | null;
  p99: number | null;
}

export type JobTarget = { kind: 'local' } | { kind: 'device'; deviceId: string } | { kind: 'selector'; selector: Labels };

export interface JobSpec {
  bundleSha256: string;
  bundleSize: number;
  target: JobTarget;
  nodes: number;
  command: string;
  env: Record<string, string>;
  dataset?: string;
  /** Accelerators a device must report to run it (`jobs submit --require cuda`); it waits until one that does is free. */
  require?: string[];
  timeoutMs?: number;
  registerModel?: { name: string; output: string };
  /** An N-node job on devices: the secret its ranks check in with at rank 0, and how long they wait. */
  rendezvous?: { secret: string; timeoutMs: number };
  /** A federated job: rounds of training on the selected devices, averaged on the relay. */
  federated?: FederatedSpec;
  /** A scoring job: the model the agents run over their dataset (its file is the job's bundle). */
  score?: { model: { name: string; version: number; sha256: string }; format: 'jsonl' | 'csv' };
}

export interface FederatedSpec {
  rounds: number;
  minClients: number;
  /** Share of the available clients a round asks (Flower's fraction_fit). */
  fraction: number;
  roundDeadlineMs: number;
  strategy: 'fedavg' | 'fedprox';
  proximalMu: number;
  initialModel: { name: string; version: number; sha256: string };
  /** Tries of one round with too few good updates before the job fails. */
  maxAttempts: number;
  /** A staged rollout of the final model, made when the job succeeds. */
  deploy?: { selector: Labels; strategy?: RolloutStrategy };
}

export type { JobRunState, JobState, RoundState } from '@outpost/shared';

/** One attempt at a federated round (the `federated_rounds` table). */
export interface FederatedRoundRecord {
  jobId: string;
  round: number;
  attempt: number;
  state: RoundState;
  globalSha256: string;
  resultSha256: string | null;
  clients: Array<{ deviceId: string; rank: number }>;
  participants: Array<{ deviceId: string; numExamples: number }>;
  dropped: Array<{ client: string; reason: string }>;
  metrics: Record<string, number>;
  startedAt: number;
  deadlineAt: number;
  finishedAt: number | null;
  error: string | null;
}

export interface JobRunRecord {
  rank: number;
  /** `local` or a device id. */
  target: string;
  state: JobRunState;
  exitCode: number | null;
  error: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  /** Rank 0 of an N-node job: where the other ranks reach it, once it said. */
  rendezvous: { addr: string; port: number } | null;
}

export interface JobRecord {
  id: string;
  seq: number;
  state: JobState;
  spec: JobSpec;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  error: string | null;
  /** The model version the job registered, and the rollout it started (federated jobs with a deploy selector). */
  model: { name: string; version: number; deploymentId?: string } | null;
  runs: JobRunRecord[];
}

export interface JobLogLine {
  seq: number;
  rank: number;
  ts: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface JobMetricRecord {
  rank: number;
  name: string;
  value: number;
  step: number | null;
  ts: number;
}

export interface JobOutputRecord {
  rank: number;
  path: string;
  sha256: string;
  size: number;
}

export interface ModelLineage {
  jobId: string;
  target: string;
  metrics: Record<string, { latest: number; best: number }>;
  /** A federated job's: the rounds averaged, the devices whose updates counted, the model it began from. */
  federated?: { rounds: number; participants: string[]; initialModel: { name: string; version: number } };
}

export interface ApiTokenRecord {
  id: string;
  name: string;
  hash: string;
  role: Role;
  createdAt: number;
  /** null: it never expires (the admin token made on first start). */
  expiresAt: number | null;
  revokedAt: number | null;
  /** When it last authenticated a request, to the minute (auth/api-tokens.ts writes it at most once a minute). */
  lastUsedAt: number | null;
}

export interface NewApiToken {
  id: string;
  name: string;
  hash: string;
  role: Role;
  expiresAt?: number | null;
}

/** Who did something: an API token, a device, or the relay itself (an automatic rollback). */
export type AuditActor = { kind: 'token'; id: string; name: string } | { kind: 'device'; id: string } | { kind: 'relay' };

export type AuditOutcome = 'ok' | 'refused' | 'failed';

export interface NewAuditEntry {
  ts: number;
  actor: AuditActor;
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  /** The HTTP status answered, for actions taken over the API. */
  status: number | null;
  /** The caller's address (request.ip). */
  address: string | null;
  detail: Record<string, unknown> | null;
}

export interface AuditEntry extends NewAuditEntry {
  seq: number;
}

export interface EnrollTokenRecord {
  id: string;
  hash: string;
  labels: Labels;
  /** Whether the enrolling device may add labels of its own (`tokens enroll --allow-device-labels`). */
  allowDeviceLabels: boolean;
  expiresAt: number;
  usedAt: number | null;
}
