// The relay's persistent state, as repositories per aggregate. Every method is asynchronous so
// that a networked database (PostgreSQL) can implement it; SQLite is the embedded default.
// Work that must see one state and change it as a whole runs in `store.transaction`.

import type { HealthMessage, Labels, ModelSignature, ReportedState, ServingConfig } from '@outpost/shared';
import type {
  DeviceHardware,
  ModelVersionExtras,
  ApiTokenRecord,
  AuditEntry,
  DeploymentInfo,
  DeploymentRecord,
  DeploymentState,
  DeviceDeployment,
  DeviceRecord,
  DeviceRolloutState,
  EnrollTokenRecord,
  HealthSample,
  JobLogLine,
  JobMetricRecord,
  JobOutputRecord,
  FederatedRoundRecord,
  JobRecord,
  JobSpec,
  JobRunState,
  JobState,
  RolloutStrategy,
  ModelRolloutRecord,
  ModelSummary,
  ModelVersionRecord,
  NewApiToken,
  NewAuditEntry,
} from './records.js';

export interface NewDevice {
  id: string;
  name: string;
  labels: Labels;
  secretHash: string;
}

export interface DeviceCertificateRecord {
  serial: string | null;
  previousSerial: string | null;
  expiresAt: number | null;
  /** `devices rotate`: certificates issued before this (ms) are to be renewed. */
  renewBefore: number | null;
  /** When the newest was issued (ms). */
  issuedAt: number | null;
}

export interface NewDeployment {
  id: string;
  model: string;
  version: number;
  sha256: string;
  deviceIds: string[];
  selector?: Labels;
  strategy?: RolloutStrategy;
  serving?: ServingConfig;
  /** The devices' first state: `pending` (released) or `waiting` (a staged rollout). */
  initialState?: 'pending' | 'waiting';
}

export interface ApiTokenRepository {
  add(token: NewApiToken): Promise<ApiTokenRecord>;
  get(id: string): Promise<ApiTokenRecord | undefined>;
  /** Every API token, revoked and expired ones included, oldest first. */
  list(): Promise<ApiTokenRecord[]>;
  /** Ever made, revoked ones included (none: the first start makes the admin token). */
  count(): Promise<number>;
  /** False when it was revoked already (or does not exist). */
  revoke(id: string, at: number): Promise<boolean>;
  setLastUsed(id: string, at: number): Promise<void>;
}

export interface EnrollmentRepository {
  addToken(token: EnrollTokenRecord): Promise<void>;
  getToken(id: string): Promise<EnrollTokenRecord | undefined>;
  /** Marks the token used and creates the device, atomically; false when it was used or expired meanwhile. */
  enroll(tokenId: string, now: number, device: NewDevice): Promise<boolean>;
}

export interface DeviceRepository {
  get(id: string): Promise<DeviceRecord | undefined>;
  secretHash(id: string): Promise<string | undefined>;
  /** The serials of the device's certificates that stand: the newest, and the one it replaced. */
  certificate(id: string): Promise<DeviceCertificateRecord | undefined>;
  /** Records a newly issued certificate and the one that stays good beside it (null: none does). */
  setCertificate(id: string, cert: { serial: string; issuedAt: number; expiresAt: number }, previousSerial: string | null): Promise<void>;
  setCertificateRenewBefore(id: string, at: number): Promise<void>;
  count(): Promise<{ online: number; total: number }>;
  list(): Promise<DeviceRecord[]>;
  /** Devices said online that nothing was heard from since `before` (ms): the silence sweep's query. */
  silentSince(before: number): Promise<string[]>;
  setLabels(id: string, labels: Labels): Promise<void>;
  /** The device and its rollout rows (its health history is the health repository's). */
  remove(id: string): Promise<void>;
  setOnline(id: string, online: boolean, at: number): Promise<void>;
  setReported(id: string, reported: ReportedState, at: number): Promise<void>;
  setTrainingAttached(id: string, attached: boolean): Promise<void>;
  /** What the agent's status says; `hardware` omitted: none (an agent from before accelerators). */
  setCapabilities(id: string, acceptsTraining: boolean, datasets: string[], hardware?: DeviceHardware): Promise<void>;
}

export interface ModelRepository {
  /** Registers the next version of a model (or returns the existing one with the same bytes). */
  addVersion(name: string, sha256: string, size: number, signature: ModelSignature, extras?: ModelVersionExtras): Promise<{ record: ModelVersionRecord; created: boolean }>;
  list(): Promise<ModelSummary[]>;
  versions(name: string): Promise<ModelVersionRecord[]>;
  /** One version, or the latest. */
  get(name: string, version?: number): Promise<ModelVersionRecord | undefined>;
  /** Forgets a version; its number is never given again. False when there was no such version. */
  deleteVersion(name: string, version: number): Promise<boolean>;
  /**
   * The rows of a model's deployments that apply or will apply to a device (member states and
   * waiting; not rolled back), newest deployment first. Deleted versions are left out.
   */
  rollouts(model: string): Promise<ModelRolloutRecord[]>;
}

export interface DeploymentRepository {
  create(deployment: NewDeployment, at: number): Promise<DeploymentRecord>;
  get(id: string): Promise<DeploymentRecord | undefined>;
  /** The deployment without its device rows. */
  info(id: string): Promise<DeploymentInfo | undefined>;
  /** How many of its devices are in each rollout state. */
  rolloutCounts(deploymentId: string): Promise<Partial<Record<DeviceRolloutState, number>>>;
  /** Newest first. */
  list(limit?: number): Promise<DeploymentRecord[]>;
  /** The newest deployment of each version of a model (to tell versions that were rolled back). */
  lastPerVersion(model: string): Promise<Array<{ id: string; version: number; state: DeploymentState }>>;
  /** Deployments still in progress, and the newest `recent` others. */
  active(recent: number): Promise<DeploymentRecord[]>;
  countByState(): Promise<Record<string, number>>;
  /** Deployments that still apply to a device (see MEMBER_STATES), newest first; not those of deleted versions. */
  forDevice(deviceId: string): Promise<DeviceDeployment[]>;
  /** Selector deployments that are not canceled or rolled back (nor of a deleted version), oldest first, with the device's row if it has one. */
  withSelector(deviceId: string): Promise<Array<DeploymentInfo & { rollout: DeviceDeployment['rollout'] | null }>>;
  /** Adds the device as pending (or makes its row pending again). */
  addRollout(deploymentId: string, deviceId: string, at: number): Promise<void>;
  /** In-progress deployments with a staged rollout, oldest first. */
  staged(): Promise<DeploymentRecord[]>;
  /**
   * False when the row was already in that state with that reason (or does not exist), or, with
   * `expected`, when its state is no longer that: a decision taken from a read (the rollout
   * controller's verdict on a serving device) must not undo what happened since (a failed
   * report, a cancel).
   */
  setRolloutState(deploymentId: string, deviceId: string, state: DeviceRolloutState, reason: string | null, at: number, expected?: DeviceRolloutState): Promise<boolean>;
  setState(deploymentId: string, state: DeploymentState): Promise<void>;
}

/** Which stored files are in use, and by whom: they span models, deployments and jobs. */
export interface ArtifactReferences {
  /** Whether any model version (its file or its sample), job output or job bundle refers to this file. */
  referenced(sha256: string): Promise<boolean>;
  /** Whether the device may fetch this file: a deployment to it, its sample, or a job bundle it runs. */
  deviceMayFetch(deviceId: string, sha256: string): Promise<boolean>;
}

/** Raw samples (recent), and rollups (sums per bucket) for the longer range. */
export interface HealthRepository {
  /** One unit: the samples, their rollups, and each device's latest heartbeat. */
  add(samples: HealthSample[], bucketMs: number, latest?: Array<{ deviceId: string; health: HealthMessage; at: number }>): Promise<void>;
  samples(deviceId: string, sinceMs: number): Promise<HealthSample[]>;
  rollups(deviceId: string, sinceMs: number, untilMs: number, bucketMs: number): Promise<HealthSample[]>;
  prune(samplesBefore: number, rollupsBefore: number): Promise<void>;
  deleteDevice(deviceId: string): Promise<void>;
}

export interface JobRepository {
  create(id: string, spec: JobSpec, at: number): Promise<JobRecord>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Newest first. */
  list(limit?: number): Promise<JobRecord[]>;
  /** Oldest first. */
  inState(state: JobState): Promise<JobRecord[]>;
  setState(id: string, state: JobState, at: number, error?: string | null): Promise<void>;
  setModel(id: string, model: { name: string; version: number; deploymentId?: string }): Promise<void>;
  addRuns(jobId: string, runs: Array<{ rank: number; target: string }>, at: number): Promise<void>;
  /** False when the run was in that state already (or does not exist). */
  setRunState(jobId: string, rank: number, state: JobRunState, at: number, exitCode?: number | null, error?: string | null): Promise<boolean>;
  /** Rank 0's rendezvous point, once: false when it was set already (or the run does not exist). */
  setRunRendezvous(jobId: string, rank: number, point: { addr: string; port: number }): Promise<boolean>;
  /** Appends lines up to a cap per job; returns the lines kept, with their seq. */
  appendLogs(jobId: string, lines: Array<Omit<JobLogLine, 'seq'>>, maxLines: number): Promise<JobLogLine[]>;
  logs(jobId: string, afterSeq: number, limit: number): Promise<JobLogLine[]>;
  addMetrics(jobId: string, points: JobMetricRecord[]): Promise<void>;
  metrics(jobId: string): Promise<JobMetricRecord[]>;
  /** Per metric name: the latest value (and its step), the lowest and the highest. */
  metricSummary(jobId: string): Promise<Array<{ name: string; latest: number; step: number | null; lowest: number; highest: number }>>;
  /** What one run has stored so far, for its quotas. */
  countRunRecords(jobId: string, rank: number): Promise<{ logs: number; metrics: number; outputs: number }>;
  addOutput(jobId: string, output: JobOutputRecord): Promise<void>;
  /** A job's outputs (only those of `ranks` when given), by rank and path. */
  outputs(jobId: string, ranks?: readonly number[]): Promise<JobOutputRecord[]>;
  /** The latest value of each metric of each of these ranks (a federated round reads its clients'). */
  latestMetrics(jobId: string, ranks: readonly number[]): Promise<Array<{ rank: number; name: string; value: number }>>;
  /** Device ids with a run of a running job, for the scheduler. */
  busyTargets(): Promise<Set<string>>;
}

/** Each attempt at each round of a federated job. */
export interface RoundRepository {
  /** Writes an attempt, new or changed (keyed by job, round and attempt). */
  put(r: FederatedRoundRecord): Promise<void>;
  /** A job's attempts, in round and attempt order. */
  list(jobId: string): Promise<FederatedRoundRecord[]>;
}

/** Append-only: no entry is changed or deleted, except the oldest past `keep`. */
export interface AuditRepository {
  /** Appends an entry and drops the oldest past the newest `keep`; returns the entry with its seq. */
  append(entry: NewAuditEntry, keep: number): Promise<AuditEntry>;
  /** Newest first: entries at or after `since` (ms), before seq `before`, at most `limit`. */
  list(query: { since?: number; before?: number; limit: number }): Promise<AuditEntry[]>;
}

/** Everything a unit of work can reach. */
export interface Repositories {
  readonly tokens: ApiTokenRepository;
  readonly enrollment: EnrollmentRepository;
  readonly devices: DeviceRepository;
  readonly models: ModelRepository;
  readonly deployments: DeploymentRepository;
  readonly artifactRefs: ArtifactReferences;
  readonly health: HealthRepository;
  readonly jobs: JobRepository;
  readonly rounds: RoundRepository;
  readonly audit: AuditRepository;
}

export interface Store extends Repositories {
  /** `sqlite` or `postgres`: for logs and `/metrics`. */
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Runs `work` as one transaction: it sees one state and its writes land together or not at all
   * (a throw rolls them back). A call on the store itself made inside `work` (in its async
   * context: a helper handed the store) is part of the transaction, as is a nested
   * `transaction`. Calls from outside wait until it is done on SQLite (one writer); on
   * PostgreSQL they run beside it on other connections, and the transaction is serializable:
   * one that lost a race with another relay's runs again, so `work` holds store calls only.
   */
  transaction<T>(work: (tx: Repositories) => Promise<T>): Promise<T>;
  /**
   * Runs `work` while no other work under `key` runs, on this relay or (PostgreSQL) any relay
   * of the workspace; it is not a transaction (store calls inside run as outside, and see what
   * the work before it wrote). For work that reads and then acts — publishing a device's desired
   * state, applying its report — so that the last to act also read last. Taking the key again
   * inside the work runs at once; do not take another key inside it (each holder takes a
   * connection from a small pool: holders waiting for a second one could wait for each other).
   */
  exclusive<T>(key: string, work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A repository's methods with their results unwrapped: what a synchronous engine writes. */
export type Synchronous<R> = { [K in keyof R]: R[K] extends (...args: infer A) => Promise<infer T> ? (...args: A) => T : never };
