// The relay's persistent state. SQLite is the embedded implementation; the interface is what
// the rest of the relay depends on, so another database can implement it later.

import type { HealthMessage, Labels, ModelSignature, ReportedState, ServingConfig } from '@outpost/shared';
import type {
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
  JobRecord,
  JobSpec,
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

export interface Store {
  // tokens
  addApiToken(token: NewApiToken): ApiTokenRecord;
  getApiToken(id: string): ApiTokenRecord | undefined;
  /** Every API token, revoked and expired ones included, oldest first. */
  listApiTokens(): ApiTokenRecord[];
  /** Ever made, revoked ones included (none: the first start makes the admin token). */
  countApiTokens(): number;
  /** False when it was revoked already (or does not exist). */
  revokeApiToken(id: string, at: number): boolean;
  setApiTokenLastUsed(id: string, at: number): void;
  addEnrollToken(token: EnrollTokenRecord): void;
  getEnrollToken(id: string): EnrollTokenRecord | undefined;
  /** Marks the token used and creates the device, atomically; false when it was used or expired meanwhile. */
  enrollDevice(tokenId: string, now: number, device: NewDevice): boolean;

  // devices
  getDevice(id: string): DeviceRecord | undefined;
  getDeviceSecretHash(id: string): string | undefined;
  /** The serials of the device's certificates that stand: the newest, and the one it replaced. */
  getDeviceCertificate(id: string): DeviceCertificateRecord | undefined;
  /** Records a newly issued certificate and the one that stays good beside it (null: none does). */
  setDeviceCertificate(id: string, cert: { serial: string; issuedAt: number; expiresAt: number }, previousSerial: string | null): void;
  setDeviceCertificateRenewBefore(id: string, at: number): void;
  countDevices(): { online: number; total: number };
  listDevices(): DeviceRecord[];
  setDeviceLabels(id: string, labels: Labels): void;
  removeDevice(id: string): void;
  setDeviceOnline(id: string, online: boolean, at: number): void;
  setDeviceReported(id: string, reported: ReportedState, at: number): void;

  // models
  /** Registers the next version of a model (or returns the existing one with the same bytes). */
  addModelVersion(name: string, sha256: string, size: number, signature: ModelSignature, extras?: ModelVersionExtras): { record: ModelVersionRecord; created: boolean };
  listModels(): ModelSummary[];
  listModelVersions(name: string): ModelVersionRecord[];
  getModelVersion(name: string, version?: number): ModelVersionRecord | undefined;
  /** Forgets a version; its number is never given again. False when there was no such version. */
  deleteModelVersion(name: string, version: number): boolean;
  /**
   * The rows of a model's deployments that apply or will apply to a device (member states and
   * waiting; not rolled back), newest deployment first. Deleted versions are left out.
   */
  modelRollouts(model: string): ModelRolloutRecord[];
  /** Whether any model version, job output or job bundle refers to this file. */
  artifactReferenced(sha256: string): boolean;

  // deployments
  createDeployment(deployment: NewDeployment, at: number): DeploymentRecord;
  getDeployment(id: string): DeploymentRecord | undefined;
  /** The deployment without its device rows. */
  getDeploymentInfo(id: string): DeploymentInfo | undefined;
  /** How many of its devices are in each rollout state. */
  rolloutCounts(deploymentId: string): Partial<Record<DeviceRolloutState, number>>;
  listDeployments(limit?: number): DeploymentRecord[];
  /** The newest deployment of each version of a model (to tell versions that were rolled back). */
  lastDeploymentPerVersion(model: string): Array<{ id: string; version: number; state: DeploymentState }>;
  /** Deployments still in progress, and the newest `recent` others. */
  activeDeployments(recent: number): DeploymentRecord[];
  countDeploymentsByState(): Record<string, number>;
  /** Deployments that still apply to a device (see MEMBER_STATES), newest first; not those of deleted versions. */
  deploymentsForDevice(deviceId: string): DeviceDeployment[];
  /** Selector deployments that are not canceled or rolled back (nor of a deleted version), with the device's row if it has one. */
  selectorDeployments(deviceId: string): Array<DeploymentInfo & { rollout: DeviceDeployment['rollout'] | null }>;
  addRollout(deploymentId: string, deviceId: string, at: number): void;
  /** In-progress deployments with a staged rollout, oldest first. */
  stagedDeployments(): DeploymentRecord[];
  setRolloutState(deploymentId: string, deviceId: string, state: DeviceRolloutState, reason: string | null, at: number): boolean;
  setDeploymentState(deploymentId: string, state: DeploymentState): void;
  /** Whether the device may fetch this artifact: some deployment to it uses it. */
  deviceMayFetch(deviceId: string, sha256: string): boolean;

  // health history: raw samples (recent), and rollups (sums per bucket) for the longer range
  /** One transaction: the samples, their rollups, and each device's latest heartbeat. */
  addHealthSamples(samples: HealthSample[], bucketMs: number, latest?: Array<{ deviceId: string; health: HealthMessage; at: number }>): void;
  healthSamples(deviceId: string, sinceMs: number): HealthSample[];
  healthRollups(deviceId: string, sinceMs: number, untilMs: number, bucketMs: number): HealthSample[];
  pruneHealth(samplesBefore: number, rollupsBefore: number): void;
  deleteHealth(deviceId: string): void;

  // training
  setDeviceTrainingAttached(id: string, attached: boolean): void;
  setDeviceCapabilities(id: string, acceptsTraining: boolean, datasets: string[]): void;
  createJob(id: string, spec: JobSpec, at: number): JobRecord;
  getJob(id: string): JobRecord | undefined;
  listJobs(limit?: number): JobRecord[];
  jobsInState(state: JobState): JobRecord[];
  setJobState(id: string, state: JobState, at: number, error?: string | null): void;
  setJobModel(id: string, model: { name: string; version: number }): void;
  addJobRuns(jobId: string, runs: Array<{ rank: number; target: string }>, at: number): void;
  setJobRunState(jobId: string, rank: number, state: string, at: number, exitCode?: number | null, error?: string | null): boolean;
  /** Appends lines up to a cap per job; returns how many were kept. */
  appendJobLogs(jobId: string, lines: Array<Omit<JobLogLine, 'seq'>>, maxLines: number): JobLogLine[];
  jobLogs(jobId: string, afterSeq: number, limit: number): JobLogLine[];
  addJobMetrics(jobId: string, points: JobMetricRecord[]): void;
  jobMetrics(jobId: string): JobMetricRecord[];
  /** Per metric name: the latest value (and its step), the lowest and the highest. */
  jobMetricSummary(jobId: string): Array<{ name: string; latest: number; step: number | null; lowest: number; highest: number }>;
  /** What one run has stored so far, for its quotas. */
  countRunRecords(jobId: string, rank: number): { logs: number; metrics: number; outputs: number };
  addJobOutput(jobId: string, output: JobOutputRecord): void;
  jobOutputs(jobId: string): JobOutputRecord[];
  /** Device id → job run it is busy with (running jobs), for the scheduler. */
  busyTargets(): Set<string>;

  // audit log: append-only (no update or delete of an entry; the oldest go past `keep`)
  /** Appends an entry and drops the oldest past the newest `keep`; returns the entry with its seq. */
  appendAudit(entry: NewAuditEntry, keep: number): AuditEntry;
  /** Newest first: entries at or after `since` (ms), before seq `before`, at most `limit`. */
  listAudit(query: { since?: number; before?: number; limit: number }): AuditEntry[];

  close(): void;
}
