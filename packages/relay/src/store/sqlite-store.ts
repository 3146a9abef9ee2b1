// The Store on SQLite (better-sqlite3): prepared statements, WAL journal. The engine below is
// synchronous; SqliteStore hands its methods out as the async repositories, and runs a
// transaction's awaits behind a gate that holds every other call until it ends (one connection
// cannot keep two transactions apart).

import { KeyedMutex } from './keyed-mutex.js';
import { Scope } from './scope.js';
import { ROUND_COLUMNS, roundValues, toActor, toApiToken, toRound, type ApiTokenRow, type AuditActorColumns, type RoundRow } from './rows.js';
import Database from 'better-sqlite3';
import type { HealthMessage, Labels, ModelSignature, ReportedState, SelfTestResult, ServingConfig } from '@outpost/shared';
import { migrate } from './migrations.js';
import { MEMBER_STATES } from './records.js';
import type { DeviceCertificateRecord, NewDeployment, NewDevice, Repositories, Synchronous } from './store.js';
import { RepositoryStore } from './repository-store.js';
import type {
  DeviceHardware,
  ModelVersionExtras,
  ApiTokenRecord,
  AuditEntry,
  DeploymentDeviceRecord,
  DeploymentInfo,
  DeploymentRecord,
  DeviceDeployment,
  DeploymentState,
  DeviceRecord,
  DeviceRolloutState,
  EnrollTokenRecord,
  HealthSample,
  JobLogLine,
  JobMetricRecord,
  JobOutputRecord,
  FederatedRoundRecord,
  JobRecord,
  JobRunRecord,
  JobSpec,
  JobRunState,
  JobState,
  ModelLineage,
  RolloutStrategy,
  ModelRolloutRecord,
  ModelSummary,
  ModelVersionRecord,
  NewApiToken,
  NewAuditEntry,
} from './records.js';

interface DeviceRow {
  id: string;
  name: string;
  labels: string;
  created_at: number;
  online: number;
  last_seen: number | null;
  health: string | null;
  reported: string | null;
  training_attached: number;
  accepts_training: number;
  datasets: string;
  accelerators: string;
  execution_providers: string;
}

interface ModelRow {
  name: string;
  version: number;
  sha256: string;
  size: number;
  signature: string;
  created_at: number;
  lineage: string | null;
  sample_sha256: string | null;
  sample_size: number | null;
  self_test: string | null;
}

interface JobRow {
  seq: number;
  id: string;
  state: JobState;
  spec: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
  model: string | null;
}

interface DeploymentRow {
  id: string;
  model: string;
  version: number;
  sha256: string;
  state: DeploymentState;
  selector: string | null;
  strategy: string | null;
  serving: string | null;
  created_at: number;
}

/** A deployment row joined with one device's rollout row (absent in a LEFT JOIN: null). */
interface RolloutJoinRow extends DeploymentRow {
  rollout_state: DeviceRolloutState | null;
  rollout_reason: string | null;
}

const toDeploymentInfo = (r: DeploymentRow): DeploymentInfo => ({
  id: r.id,
  model: r.model,
  version: r.version,
  sha256: r.sha256,
  state: r.state,
  selector: r.selector ? (JSON.parse(r.selector) as Labels) : null,
  strategy: r.strategy ? (JSON.parse(r.strategy) as RolloutStrategy) : null,
  serving: r.serving ? (JSON.parse(r.serving) as ServingConfig) : null,
  createdAt: r.created_at,
});

const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  name: r.name,
  labels: JSON.parse(r.labels) as Labels,
  createdAt: r.created_at,
  online: r.online === 1,
  lastSeen: r.last_seen,
  health: r.health ? (JSON.parse(r.health) as HealthMessage) : null,
  reported: r.reported ? (JSON.parse(r.reported) as ReportedState) : null,
  trainingAttached: r.training_attached === 1,
  acceptsTraining: r.accepts_training === 1,
  datasets: JSON.parse(r.datasets) as string[],
  accelerators: JSON.parse(r.accelerators) as string[],
  executionProviders: JSON.parse(r.execution_providers) as string[],
});

const toModel = (r: ModelRow): ModelVersionRecord => ({
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  size: r.size,
  signature: JSON.parse(r.signature) as ModelSignature,
  createdAt: r.created_at,
  lineage: r.lineage ? (JSON.parse(r.lineage) as ModelLineage) : null,
  sample: r.sample_sha256 ? { sha256: r.sample_sha256, size: r.sample_size ?? 0 } : null,
  selfTest: r.self_test ? (JSON.parse(r.self_test) as SelfTestResult) : null,
});

interface AuditRow extends AuditActorColumns {
  seq: number;
  ts: number;
  action: string;
  target: string | null;
  outcome: AuditEntry['outcome'];
  status: number | null;
  address: string | null;
  detail: string | null;
}

const toAudit = (r: AuditRow): AuditEntry => ({
  seq: r.seq,
  ts: r.ts,
  actor: toActor(r),
  action: r.action,
  target: r.target,
  outcome: r.outcome,
  status: r.status,
  address: r.address,
  detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
});

/** A deployment of a deleted model version applies to no device: it is history. */
const VERSION_EXISTS = 'EXISTS (SELECT 1 FROM models m WHERE m.name = d.model AND m.version = d.version)';

/** The tables and their statements, one synchronous method per query. */
class SqliteEngine {
  readonly #db: Database.Database;
  readonly #stmt;

  constructor(file: string) {
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('foreign_keys = ON');
    migrate(this.#db);
    const db = this.#db;
    this.#stmt = {
      addApiToken: db.prepare('INSERT INTO api_tokens (id, name, hash, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)'),
      getApiToken: db.prepare('SELECT * FROM api_tokens WHERE id = ?'),
      listApiTokens: db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id'),
      countApiTokens: db.prepare('SELECT count(*) AS n FROM api_tokens'),
      revokeApiToken: db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      setApiTokenLastUsed: db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?'),
      addAudit: db.prepare('INSERT INTO audit_log (ts, actor_kind, actor_id, actor_name, action, target, outcome, status, address, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      trimAudit: db.prepare('DELETE FROM audit_log WHERE seq <= ?'),
      listAudit: db.prepare('SELECT * FROM audit_log WHERE ts >= ? AND seq < ? ORDER BY seq DESC LIMIT ?'),
      addEnrollToken: db.prepare('INSERT INTO enroll_tokens (id, hash, labels, expires_at, used_at, allow_device_labels) VALUES (?, ?, ?, ?, NULL, ?)'),
      getEnrollToken: db.prepare('SELECT id, hash, labels, expires_at, used_at, allow_device_labels FROM enroll_tokens WHERE id = ?'),
      useEnrollToken: db.prepare('UPDATE enroll_tokens SET used_at = ?, device_id = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?'),
      addDevice: db.prepare('INSERT INTO devices (id, name, labels, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)'),
      getDevice: db.prepare('SELECT * FROM devices WHERE id = ?'),
      getSecretHash: db.prepare('SELECT secret_hash FROM devices WHERE id = ?'),
      getCertificate: db.prepare('SELECT cert_serial, cert_previous_serial, cert_expires_at, cert_renew_before, cert_issued_at FROM devices WHERE id = ?'),
      setCertificateRenewBefore: db.prepare('UPDATE devices SET cert_renew_before = ? WHERE id = ?'),
      setCertificate: db.prepare('UPDATE devices SET cert_previous_serial = ?, cert_serial = ?, cert_expires_at = ?, cert_issued_at = ? WHERE id = ?'),
      countDevices: db.prepare('SELECT count(*) AS total, coalesce(sum(online), 0) AS online FROM devices'),
      activeDeployments: db.prepare("SELECT * FROM deployments WHERE state = 'in-progress' OR seq IN (SELECT seq FROM deployments WHERE state != 'in-progress' ORDER BY seq DESC LIMIT ?) ORDER BY seq DESC"),
      countDeployments: db.prepare('SELECT state, count(*) AS n FROM deployments GROUP BY state'),
      listDevices: db.prepare('SELECT * FROM devices ORDER BY created_at, id'),
      silentDevices: db.prepare('SELECT id FROM devices WHERE online = 1 AND coalesce(last_seen, 0) < ? ORDER BY id'),
      setLabels: db.prepare('UPDATE devices SET labels = ? WHERE id = ?'),
      removeDevice: db.prepare('DELETE FROM devices WHERE id = ?'),
      setOnline: db.prepare('UPDATE devices SET online = ?, last_seen = ? WHERE id = ?'),
      setHealth: db.prepare('UPDATE devices SET health = ?, last_seen = ? WHERE id = ?'),
      setReported: db.prepare('UPDATE devices SET reported = ?, last_seen = ? WHERE id = ?'),
      latestModel: db.prepare('SELECT * FROM models WHERE name = ? ORDER BY version DESC LIMIT 1'),
      modelBySha: db.prepare('SELECT * FROM models WHERE name = ? AND sha256 = ?'),
      addModel: db.prepare('INSERT INTO models (name, version, sha256, size, signature, created_at, lineage, sample_sha256, sample_size, self_test) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      setModelSample: db.prepare('UPDATE models SET sample_sha256 = ?, sample_size = ?, self_test = ? WHERE name = ? AND version = ?'),
      lastVersion: db.prepare('SELECT last_version FROM model_names WHERE name = ?'),
      setLastVersion: db.prepare('INSERT INTO model_names (name, last_version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version'),
      deleteModel: db.prepare('DELETE FROM models WHERE name = ? AND version = ?'),
      modelRollouts: db.prepare(
        `SELECT r.device_id, d.id, d.version, d.state AS deployment_state, r.state FROM deployments d JOIN rollouts r ON r.deployment_id = d.id WHERE d.model = ? AND d.state != 'rolled-back' AND r.state IN (${[...MEMBER_STATES, 'waiting'].map((x) => `'${x}'`).join(', ')}) AND ${VERSION_EXISTS} ORDER BY d.seq DESC`,
      ),
      artifactReferenced: db.prepare(
        "SELECT 1 FROM models WHERE sha256 = ? OR sample_sha256 = ? UNION ALL SELECT 1 FROM job_outputs WHERE sha256 = ? UNION ALL SELECT 1 FROM jobs WHERE json_extract(spec, '$.bundleSha256') = ? UNION ALL SELECT 1 FROM federated_rounds WHERE global_sha256 = ? OR result_sha256 = ? LIMIT 1",
      ),
      listModels: db.prepare(
        'SELECT name, max(version) AS latest, count(*) AS versions, max(created_at) AS updated FROM models GROUP BY name ORDER BY name',
      ),
      listModelVersions: db.prepare('SELECT * FROM models WHERE name = ? ORDER BY version'),
      getModelVersion: db.prepare('SELECT * FROM models WHERE name = ? AND version = ?'),
      addDeployment: db.prepare('INSERT INTO deployments (id, model, version, sha256, state, selector, strategy, serving, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      addRolloutAs: db.prepare('INSERT INTO rollouts (deployment_id, device_id, state, reason, updated_at) VALUES (?, ?, ?, NULL, ?)'),
      stagedDeployments: db.prepare("SELECT * FROM deployments WHERE state = 'in-progress' AND strategy IS NOT NULL ORDER BY seq"),
      addRollout: db.prepare("INSERT INTO rollouts (deployment_id, device_id, state, reason, updated_at) VALUES (?, ?, 'pending', NULL, ?) ON CONFLICT (deployment_id, device_id) DO UPDATE SET state = 'pending', reason = NULL, updated_at = excluded.updated_at"),
      selectorDeployments: db.prepare(
        `SELECT d.*, r.state AS rollout_state, r.reason AS rollout_reason FROM deployments d LEFT JOIN rollouts r ON r.deployment_id = d.id AND r.device_id = ? WHERE d.selector IS NOT NULL AND d.state NOT IN ('canceled', 'rolled-back') AND ${VERSION_EXISTS} ORDER BY d.seq`,
      ),
      rolloutCounts: db.prepare('SELECT state, count(*) AS n FROM rollouts WHERE deployment_id = ? GROUP BY state'),
      getDeployment: db.prepare('SELECT * FROM deployments WHERE id = ?'),
      listDeployments: db.prepare('SELECT * FROM deployments ORDER BY seq DESC LIMIT ?'),
      lastDeploymentPerVersion: db.prepare('SELECT id, version, state FROM deployments WHERE seq IN (SELECT max(seq) FROM deployments WHERE model = ? GROUP BY version)'),
      rolloutsOf: db.prepare('SELECT device_id, state, reason, updated_at FROM rollouts WHERE deployment_id = ? ORDER BY device_id'),
      deploymentsForDevice: db.prepare(
        `SELECT d.*, r.state AS rollout_state, r.reason AS rollout_reason FROM deployments d JOIN rollouts r ON r.deployment_id = d.id WHERE r.device_id = ? AND r.state IN (${[...MEMBER_STATES].map((x) => `'${x}'`).join(', ')}) AND d.state NOT IN ('rolled-back') AND ${VERSION_EXISTS} ORDER BY d.seq DESC`,
      ),
      setRollout: db.prepare('UPDATE rollouts SET state = ?, reason = ?, updated_at = ? WHERE deployment_id = ? AND device_id = ? AND (state != ? OR coalesce(reason, \'\') != coalesce(?, \'\'))'),
      setRolloutIf: db.prepare('UPDATE rollouts SET state = ?, reason = ?, updated_at = ? WHERE deployment_id = ? AND device_id = ? AND (state != ? OR coalesce(reason, \'\') != coalesce(?, \'\')) AND state = ?'),
      setDeploymentState: db.prepare('UPDATE deployments SET state = ? WHERE id = ?'),
      addSample: db.prepare(
        'INSERT INTO health_samples (device_id, ts, cpu, mem_used, mem_total, rss, req_rate, err_rate, p50, p99) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      addRollup: db.prepare(
        `INSERT INTO health_rollups (device_id, bucket, n, cpu, mem_used, mem_total, rss, req_rate, err_rate, n_lat, p50, p99)
         VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (device_id, bucket) DO UPDATE SET n = n + 1, cpu = cpu + excluded.cpu, mem_used = mem_used + excluded.mem_used,
           mem_total = excluded.mem_total, rss = rss + excluded.rss, req_rate = req_rate + excluded.req_rate,
           err_rate = err_rate + excluded.err_rate, n_lat = n_lat + excluded.n_lat, p50 = p50 + excluded.p50,
           p99 = max(coalesce(p99, excluded.p99), coalesce(excluded.p99, p99))`,
      ),
      samples: db.prepare('SELECT * FROM health_samples WHERE device_id = ? AND ts >= ? ORDER BY ts'),
      rollups: db.prepare('SELECT * FROM health_rollups WHERE device_id = ? AND bucket >= ? AND bucket < ? ORDER BY bucket'),
      pruneSamples: db.prepare('DELETE FROM health_samples WHERE ts < ?'),
      pruneRollups: db.prepare('DELETE FROM health_rollups WHERE bucket < ?'),
      deleteSamples: db.prepare('DELETE FROM health_samples WHERE device_id = ?'),
      deleteRollups: db.prepare('DELETE FROM health_rollups WHERE device_id = ?'),
      mayFetch: db.prepare('SELECT 1 FROM deployments d JOIN rollouts r ON r.deployment_id = d.id WHERE r.device_id = ? AND d.sha256 = ? LIMIT 1'),
      // A version's sample goes with it: a device may fetch the sample of a version deployed to it.
      mayFetchSample: db.prepare('SELECT 1 FROM deployments d JOIN rollouts r ON r.deployment_id = d.id JOIN models m ON m.name = d.model AND m.version = d.version WHERE r.device_id = ? AND m.sample_sha256 = ? LIMIT 1'),
      mayFetchBundle: db.prepare("SELECT 1 FROM jobs j JOIN job_runs r ON r.job_id = j.id WHERE r.target = ? AND json_extract(j.spec, '$.bundleSha256') = ? LIMIT 1"),
      // A federated job's global models go to the devices that are its clients.
      mayFetchGlobalModel: db.prepare('SELECT 1 FROM federated_rounds f JOIN job_runs r ON r.job_id = f.job_id WHERE r.target = ? AND f.global_sha256 = ? LIMIT 1'),
      setAttached: db.prepare('UPDATE devices SET training_attached = ? WHERE id = ?'),
      setCapabilities: db.prepare('UPDATE devices SET accepts_training = ?, datasets = ?, accelerators = ?, execution_providers = ? WHERE id = ?'),
      addJob: db.prepare("INSERT INTO jobs (id, state, spec, created_at) VALUES (?, 'queued', ?, ?)"),
      getJob: db.prepare('SELECT * FROM jobs WHERE id = ?'),
      listJobs: db.prepare('SELECT * FROM jobs ORDER BY seq DESC LIMIT ?'),
      jobsInState: db.prepare('SELECT * FROM jobs WHERE state = ? ORDER BY seq'),
      setJobState: db.prepare(
        "UPDATE jobs SET state = ?, started_at = CASE WHEN ? = 'running' THEN ? ELSE started_at END, finished_at = CASE WHEN ? IN ('succeeded','failed','canceled') THEN ? ELSE finished_at END, error = coalesce(?, error) WHERE id = ?",
      ),
      setJobModel: db.prepare('UPDATE jobs SET model = ? WHERE id = ?'),
      addRun: db.prepare("INSERT INTO job_runs (job_id, rank, target, state, started_at) VALUES (?, ?, ?, 'starting', ?)"),
      runsOf: db.prepare('SELECT * FROM job_runs WHERE job_id = ? ORDER BY rank'),
      setRendezvous: db.prepare('UPDATE job_runs SET rendezvous = ? WHERE job_id = ? AND rank = ? AND rendezvous IS NULL'),
      setRun: db.prepare(
        "UPDATE job_runs SET state = ?, exit_code = coalesce(?, exit_code), error = coalesce(?, error), finished_at = CASE WHEN ? IN ('succeeded','failed','canceled') THEN ? ELSE finished_at END WHERE job_id = ? AND rank = ? AND state NOT IN ('succeeded','failed','canceled') AND state != ?",
      ),
      logCount: db.prepare('SELECT coalesce(max(seq), 0) AS n FROM job_logs WHERE job_id = ?'),
      addLog: db.prepare('INSERT INTO job_logs (job_id, seq, rank, ts, stream, text) VALUES (?, ?, ?, ?, ?, ?)'),
      logs: db.prepare('SELECT seq, rank, ts, stream, text FROM job_logs WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
      addMetric: db.prepare('INSERT INTO job_metrics (job_id, rank, name, value, step, ts) VALUES (?, ?, ?, ?, ?, ?)'),
      metrics: db.prepare('SELECT rank, name, value, step, ts FROM job_metrics WHERE job_id = ? ORDER BY rowid'),
      metricSummary: db.prepare(
        'SELECT g.name, m.value AS latest, m.step, g.lowest, g.highest FROM (SELECT name, min(value) AS lowest, max(value) AS highest, max(rowid) AS last FROM job_metrics WHERE job_id = ? GROUP BY name) g JOIN job_metrics m ON m.rowid = g.last ORDER BY g.name',
      ),
      countRunLogs: db.prepare('SELECT count(*) AS n FROM job_logs WHERE job_id = ? AND rank = ?'),
      countRunMetrics: db.prepare('SELECT count(*) AS n FROM job_metrics WHERE job_id = ? AND rank = ?'),
      countRunOutputs: db.prepare('SELECT count(*) AS n FROM job_outputs WHERE job_id = ? AND rank = ?'),
      addOutput: db.prepare('INSERT OR REPLACE INTO job_outputs (job_id, rank, path, sha256, size) VALUES (?, ?, ?, ?, ?)'),
      outputs: db.prepare('SELECT rank, path, sha256, size FROM job_outputs WHERE job_id = ? ORDER BY rank, path'),
      outputsOfRanks: db.prepare('SELECT rank, path, sha256, size FROM job_outputs WHERE job_id = ? AND rank IN (SELECT value FROM json_each(?)) ORDER BY rank, path'),
      latestMetrics: db.prepare(
        'SELECT m.rank, m.name, m.value FROM job_metrics m JOIN (SELECT max(rowid) AS last FROM job_metrics WHERE job_id = ? AND rank IN (SELECT value FROM json_each(?)) GROUP BY rank, name) g ON m.rowid = g.last ORDER BY m.rank, m.name',
      ),
      putRound: db.prepare(`INSERT OR REPLACE INTO federated_rounds (${ROUND_COLUMNS}) VALUES (${ROUND_COLUMNS.split(',').map(() => '?').join(', ')})`),
      listRounds: db.prepare('SELECT * FROM federated_rounds WHERE job_id = ? ORDER BY round, attempt'),
      busy: db.prepare("SELECT DISTINCT r.target FROM job_runs r JOIN jobs j ON j.id = r.job_id WHERE j.state = 'running' AND r.state IN ('starting', 'running')"),
    };
  }

  addApiToken(t: NewApiToken): ApiTokenRecord {
    const createdAt = Date.now();
    this.#stmt.addApiToken.run(t.id, t.name, t.hash, t.role, createdAt, t.expiresAt ?? null);
    return { id: t.id, name: t.name, hash: t.hash, role: t.role, createdAt, expiresAt: t.expiresAt ?? null, revokedAt: null, lastUsedAt: null };
  }

  getApiToken(id: string): ApiTokenRecord | undefined {
    const r = this.#stmt.getApiToken.get(id) as ApiTokenRow | undefined;
    return r && toApiToken(r);
  }

  listApiTokens(): ApiTokenRecord[] {
    return (this.#stmt.listApiTokens.all() as ApiTokenRow[]).map(toApiToken);
  }

  countApiTokens(): number {
    return (this.#stmt.countApiTokens.get() as { n: number }).n;
  }

  revokeApiToken(id: string, at: number): boolean {
    return this.#stmt.revokeApiToken.run(at, id).changes === 1;
  }

  setApiTokenLastUsed(id: string, at: number): void {
    this.#stmt.setApiTokenLastUsed.run(at, id);
  }

  appendAudit(e: NewAuditEntry, keep: number): AuditEntry {
    const a = e.actor;
    const [actorId, actorName] = a.kind === 'token' ? [a.id, a.name] : a.kind === 'device' ? [a.id, a.id] : [null, 'relay'];
    return this.#db.transaction(() => {
      const seq = Number(this.#stmt.addAudit.run(e.ts, a.kind, actorId, actorName, e.action, e.target, e.outcome, e.status, e.address, e.detail ? JSON.stringify(e.detail) : null).lastInsertRowid);
      // seq only grows (AUTOINCREMENT), so the newest `keep` are those above seq - keep.
      this.#stmt.trimAudit.run(seq - keep);
      return { ...e, seq };
    })();
  }

  listAudit(q: { since?: number; before?: number; limit: number }): AuditEntry[] {
    return (this.#stmt.listAudit.all(q.since ?? 0, q.before ?? Number.MAX_SAFE_INTEGER, q.limit) as AuditRow[]).map(toAudit);
  }

  addEnrollToken(t: EnrollTokenRecord): void {
    this.#stmt.addEnrollToken.run(t.id, t.hash, JSON.stringify(t.labels), t.expiresAt, t.allowDeviceLabels ? 1 : 0);
  }

  getEnrollToken(id: string): EnrollTokenRecord | undefined {
    const r = this.#stmt.getEnrollToken.get(id) as
      | { id: string; hash: string; labels: string; expires_at: number; used_at: number | null; allow_device_labels: number }
      | undefined;
    return r && { id: r.id, hash: r.hash, labels: JSON.parse(r.labels) as Labels, expiresAt: r.expires_at, usedAt: r.used_at, allowDeviceLabels: r.allow_device_labels === 1 };
  }

  enrollDevice(tokenId: string, now: number, device: NewDevice): boolean {
    return this.#db.transaction(() => {
      if (this.#stmt.useEnrollToken.run(now, device.id, tokenId, now).changes !== 1) return false;
      this.#stmt.addDevice.run(device.id, device.name, JSON.stringify(device.labels), device.secretHash, now);
      return true;
    })();
  }

  getDevice(id: string): DeviceRecord | undefined {
    const r = this.#stmt.getDevice.get(id) as DeviceRow | undefined;
    return r && toDevice(r);
  }

  getDeviceSecretHash(id: string): string | undefined {
    return (this.#stmt.getSecretHash.get(id) as { secret_hash: string } | undefined)?.secret_hash;
  }

  getDeviceCertificate(id: string): DeviceCertificateRecord | undefined {
    const r = this.#stmt.getCertificate.get(id) as { cert_serial: string | null; cert_previous_serial: string | null; cert_expires_at: number | null; cert_renew_before: number | null; cert_issued_at: number | null } | undefined;
    return r && { serial: r.cert_serial, previousSerial: r.cert_previous_serial, expiresAt: r.cert_expires_at, renewBefore: r.cert_renew_before, issuedAt: r.cert_issued_at };
  }

  setDeviceCertificateRenewBefore(id: string, at: number): void {
    this.#stmt.setCertificateRenewBefore.run(at, id);
  }

  setDeviceCertificate(id: string, cert: { serial: string; issuedAt: number; expiresAt: number }, previousSerial: string | null): void {
    this.#stmt.setCertificate.run(previousSerial, cert.serial, cert.expiresAt, cert.issuedAt, id);
  }

  countDevices(): { online: number; total: number } {
    return this.#stmt.countDevices.get() as { online: number; total: number };
  }

  listDevices(): DeviceRecord[] {
    return (this.#stmt.listDevices.all() as DeviceRow[]).map(toDevice);
  }

  silentDevices(before: number): string[] {
    return (this.#stmt.silentDevices.all(before) as { id: string }[]).map((r) => r.id);
  }

  setDeviceLabels(id: string, labels: Labels): void {
    this.#stmt.setLabels.run(JSON.stringify(labels), id);
  }

  removeDevice(id: string): void {
    this.#stmt.removeDevice.run(id);
  }

  setDeviceOnline(id: string, online: boolean, at: number): void {
    this.#stmt.setOnline.run(online ? 1 : 0, at, id);
  }

  setDeviceReported(id: string, reported: ReportedState, at: number): void {
    this.#stmt.setReported.run(JSON.stringify(reported), at, id);
  }

  addModelVersion(name: string, sha256: string, size: number, signature: ModelSignature, extras: ModelVersionExtras = {}): { record: ModelVersionRecord; created: boolean } {
    const { lineage, sample, selfTest } = extras;
    return this.#db.transaction(() => {
      // Pushing the same bytes again is idempotent: it names the version that already holds them
      // (and gives it the sample pushed with them, when there is one).
      const existing = this.#stmt.modelBySha.get(name, sha256) as ModelRow | undefined;
      if (existing) {
        if (sample) this.#stmt.setModelSample.run(sample.sha256, sample.size, selfTest ? JSON.stringify(selfTest) : null, name, existing.version);
        return { record: toModel((this.#stmt.modelBySha.get(name, sha256) as ModelRow)), created: false };
      }
      const latest = this.#stmt.latestModel.get(name) as ModelRow | undefined;
      const last = this.#stmt.lastVersion.get(name) as { last_version: number } | undefined;
      const version = Math.max(latest?.version ?? 0, last?.last_version ?? 0) + 1;
      const createdAt = Date.now();
      this.#stmt.addModel.run(name, version, sha256, size, JSON.stringify(signature), createdAt, lineage ? JSON.stringify(lineage) : null, sample?.sha256 ?? null, sample?.size ?? null, selfTest ? JSON.stringify(selfTest) : null);
      this.#stmt.setLastVersion.run(name, version);
      return { record: { name, version, sha256, size, signature, createdAt, lineage: lineage ?? null, sample: sample ?? null, selfTest: selfTest ?? null }, created: true };
    })();
  }

  listModels(): ModelSummary[] {
    return (this.#stmt.listModels.all() as Array<{ name: string; latest: number; versions: number; updated: number }>).map((r) => ({
      name: r.name,
      latestVersion: r.latest,
      versions: r.versions,
      updatedAt: r.updated,
    }));
  }

  listModelVersions(name: string): ModelVersionRecord[] {
    return (this.#stmt.listModelVersions.all(name) as ModelRow[]).map(toModel);
  }

  getModelVersion(name: string, version?: number): ModelVersionRecord | undefined {
    const r = (version === undefined ? this.#stmt.latestModel.get(name) : this.#stmt.getModelVersion.get(name, version)) as ModelRow | undefined;
    return r && toModel(r);
  }

  deleteModelVersion(name: string, version: number): boolean {
    return this.#stmt.deleteModel.run(name, version).changes > 0;
  }

  modelRollouts(model: string): ModelRolloutRecord[] {
    type Row = { device_id: string; id: string; version: number; deployment_state: DeploymentState; state: DeviceRolloutState };
    return (this.#stmt.modelRollouts.all(model) as Row[]).map((r) => ({ deviceId: r.device_id, deploymentId: r.id, version: r.version, deploymentState: r.deployment_state, state: r.state }));
  }

  artifactReferenced(sha256: string): boolean {
    return this.#stmt.artifactReferenced.get(sha256, sha256, sha256, sha256, sha256, sha256) !== undefined;
  }

  createDeployment(d: NewDeployment, at: number): DeploymentRecord {
    this.#db.transaction(() => {
      this.#stmt.addDeployment.run(d.id, d.model, d.version, d.sha256, 'in-progress', d.selector ? JSON.stringify(d.selector) : null, d.strategy ? JSON.stringify(d.strategy) : null, d.serving ? JSON.stringify(d.serving) : null, at);
      for (const deviceId of d.deviceIds) this.#stmt.addRolloutAs.run(d.id, deviceId, d.initialState ?? 'pending', at);
    })();
    return this.getDeployment(d.id)!;
  }

  #withDevices(r: DeploymentRow): DeploymentRecord {
    const devices = (this.#stmt.rolloutsOf.all(r.id) as Array<{ device_id: string; state: DeviceRolloutState; reason: string | null; updated_at: number }>).map(
      (x): DeploymentDeviceRecord => ({ deviceId: x.device_id, state: x.state, reason: x.reason, updatedAt: x.updated_at }),
    );
    return { ...toDeploymentInfo(r), devices };
  }

  getDeployment(id: string): DeploymentRecord | undefined {
    const r = this.#stmt.getDeployment.get(id) as DeploymentRow | undefined;
    return r && this.#withDevices(r);
  }

  getDeploymentInfo(id: string): DeploymentInfo | undefined {
    const r = this.#stmt.getDeployment.get(id) as DeploymentRow | undefined;
    return r && toDeploymentInfo(r);
  }

  rolloutCounts(deploymentId: string): Partial<Record<DeviceRolloutState, number>> {
    return Object.fromEntries((this.#stmt.rolloutCounts.all(deploymentId) as Array<{ state: DeviceRolloutState; n: number }>).map((r) => [r.state, r.n]));
  }

  lastDeploymentPerVersion(model: string): Array<{ id: string; version: number; state: DeploymentState }> {
    return this.#stmt.lastDeploymentPerVersion.all(model) as Array<{ id: string; version: number; state: DeploymentState }>;
  }

  listDeployments(limit = 100): DeploymentRecord[] {
    return (this.#stmt.listDeployments.all(limit) as DeploymentRow[]).map((r) => this.#withDevices(r));
  }

  activeDeployments(recent: number): DeploymentRecord[] {
    return (this.#stmt.activeDeployments.all(recent) as DeploymentRow[]).map((r) => this.#withDevices(r));
  }

  countDeploymentsByState(): Record<string, number> {
    return Object.fromEntries((this.#stmt.countDeployments.all() as Array<{ state: string; n: number }>).map((r) => [r.state, r.n]));
  }

  selectorDeployments(deviceId: string): Array<DeploymentInfo & { rollout: DeviceDeployment['rollout'] | null }> {
    return (this.#stmt.selectorDeployments.all(deviceId) as RolloutJoinRow[]).map((r) => ({
      ...toDeploymentInfo(r),
      rollout: r.rollout_state === null ? null : { state: r.rollout_state, reason: r.rollout_reason },
    }));
  }

  stagedDeployments(): DeploymentRecord[] {
    return (this.#stmt.stagedDeployments.all() as DeploymentRow[]).map((r) => this.#withDevices(r));
  }

  addRollout(deploymentId: string, deviceId: string, at: number): void {
    this.#stmt.addRollout.run(deploymentId, deviceId, at);
  }

  deploymentsForDevice(deviceId: string): DeviceDeployment[] {
    return (this.#stmt.deploymentsForDevice.all(deviceId) as RolloutJoinRow[]).map((r) => ({
      ...toDeploymentInfo(r),
      rollout: { state: r.rollout_state!, reason: r.rollout_reason },
    }));
  }

  setRolloutState(deploymentId: string, deviceId: string, state: DeviceRolloutState, reason: string | null, at: number, expected?: DeviceRolloutState): boolean {
    if (expected !== undefined) return this.#stmt.setRolloutIf.run(state, reason, at, deploymentId, deviceId, state, reason, expected).changes > 0;
    return this.#stmt.setRollout.run(state, reason, at, deploymentId, deviceId, state, reason).changes > 0;
  }

  setDeploymentState(deploymentId: string, state: DeploymentState): void {
    this.#stmt.setDeploymentState.run(state, deploymentId);
  }

  deviceMayFetch(deviceId: string, sha256: string): boolean {
    return this.#stmt.mayFetch.get(deviceId, sha256) !== undefined || this.#stmt.mayFetchBundle.get(deviceId, sha256) !== undefined || this.#stmt.mayFetchSample.get(deviceId, sha256) !== undefined || this.#stmt.mayFetchGlobalModel.get(deviceId, sha256) !== undefined;
  }

  setDeviceTrainingAttached(id: string, attached: boolean): void {
    this.#stmt.setAttached.run(attached ? 1 : 0, id);
  }

  setDeviceCapabilities(id: string, acceptsTraining: boolean, datasets: string[], hardware?: DeviceHardware): void {
    this.#stmt.setCapabilities.run(acceptsTraining ? 1 : 0, JSON.stringify(datasets), JSON.stringify(hardware?.accelerators ?? []), JSON.stringify(hardware?.executionProviders ?? []), id);
  }

  #job(r: JobRow): JobRecord {
    type RunRow = { rank: number; target: string; state: JobRunState; exit_code: number | null; error: string | null; started_at: number | null; finished_at: number | null; rendezvous: string | null };
    const runs = (this.#stmt.runsOf.all(r.id) as RunRow[]).map(
      (x): JobRunRecord => ({ rank: x.rank, target: x.target, state: x.state, exitCode: x.exit_code, error: x.error, startedAt: x.started_at, finishedAt: x.finished_at, rendezvous: x.rendezvous ? (JSON.parse(x.rendezvous) as JobRunRecord['rendezvous']) : null }),
    );
    return {
      id: r.id,
      seq: r.seq,
      state: r.state,
      spec: JSON.parse(r.spec) as JobSpec,
      createdAt: r.created_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      error: r.error,
      model: r.model ? (JSON.parse(r.model) as { name: string; version: number }) : null,
      runs,
    };
  }

  createJob(id: string, spec: JobSpec, at: number): JobRecord {
    this.#stmt.addJob.run(id, JSON.stringify(spec), at);
    return this.getJob(id)!;
  }

  getJob(id: string): JobRecord | undefined {
    const r = this.#stmt.getJob.get(id) as JobRow | undefined;
    return r && this.#job(r);
  }

  listJobs(limit = 100): JobRecord[] {
    return (this.#stmt.listJobs.all(limit) as JobRow[]).map((r) => this.#job(r));
  }

  jobsInState(state: JobState): JobRecord[] {
    return (this.#stmt.jobsInState.all(state) as JobRow[]).map((r) => this.#job(r));
  }

  setJobState(id: string, state: JobState, at: number, error: string | null = null): void {
    this.#stmt.setJobState.run(state, state, at, state, at, error, id);
  }

  setJobModel(id: string, model: { name: string; version: number; deploymentId?: string }): void {
    this.#stmt.setJobModel.run(JSON.stringify(model), id);
  }

  addJobRuns(jobId: string, runs: Array<{ rank: number; target: string }>, at: number): void {
    this.#db.transaction(() => {
      for (const r of runs) this.#stmt.addRun.run(jobId, r.rank, r.target, at);
    })();
  }

  setJobRunState(jobId: string, rank: number, state: string, at: number, exitCode: number | null = null, error: string | null = null): boolean {
    return this.#stmt.setRun.run(state, exitCode, error, state, at, jobId, rank, state).changes > 0;
  }

  setJobRunRendezvous(jobId: string, rank: number, point: { addr: string; port: number }): boolean {
    return this.#stmt.setRendezvous.run(JSON.stringify({ addr: point.addr, port: point.port }), jobId, rank).changes > 0;
  }

  appendJobLogs(jobId: string, lines: Array<Omit<JobLogLine, 'seq'>>, maxLines: number): JobLogLine[] {
    return this.#db.transaction(() => {
      let seq = (this.#stmt.logCount.get(jobId) as { n: number }).n;
      const kept: JobLogLine[] = [];
      for (const l of lines) {
        if (seq >= maxLines) break;
        seq++;
        this.#stmt.addLog.run(jobId, seq, l.rank, l.ts, l.stream, l.text);
        kept.push({ ...l, seq });
      }
      return kept;
    })();
  }

  jobLogs(jobId: string, afterSeq: number, limit: number): JobLogLine[] {
    return this.#stmt.logs.all(jobId, afterSeq, limit) as JobLogLine[];
  }

  addJobMetrics(jobId: string, points: JobMetricRecord[]): void {
    this.#db.transaction(() => {
      for (const p of points) this.#stmt.addMetric.run(jobId, p.rank, p.name, p.value, p.step, p.ts);
    })();
  }

  jobMetrics(jobId: string): JobMetricRecord[] {
    return this.#stmt.metrics.all(jobId) as JobMetricRecord[];
  }

  jobMetricSummary(jobId: string): Array<{ name: string; latest: number; step: number | null; lowest: number; highest: number }> {
    return this.#stmt.metricSummary.all(jobId) as Array<{ name: string; latest: number; step: number | null; lowest: number; highest: number }>;
  }

  countRunRecords(jobId: string, rank: number): { logs: number; metrics: number; outputs: number } {
    const n = (s: Database.Statement) => (s.get(jobId, rank) as { n: number }).n;
    return { logs: n(this.#stmt.countRunLogs), metrics: n(this.#stmt.countRunMetrics), outputs: n(this.#stmt.countRunOutputs) };
  }

  addJobOutput(jobId: string, o: JobOutputRecord): void {
    this.#stmt.addOutput.run(jobId, o.rank, o.path, o.sha256, o.size);
  }

  jobOutputsOfRanks(jobId: string, ranks: readonly number[]): JobOutputRecord[] {
    return this.#stmt.outputsOfRanks.all(jobId, JSON.stringify(ranks)) as JobOutputRecord[];
  }

  latestJobMetrics(jobId: string, ranks: readonly number[]): Array<{ rank: number; name: string; value: number }> {
    return this.#stmt.latestMetrics.all(jobId, JSON.stringify(ranks)) as Array<{ rank: number; name: string; value: number }>;
  }

  jobOutputs(jobId: string): JobOutputRecord[] {
    return this.#stmt.outputs.all(jobId) as JobOutputRecord[];
  }

  putRound(r: FederatedRoundRecord): void {
    this.#stmt.putRound.run(...roundValues(r));
  }

  listRounds(jobId: string): FederatedRoundRecord[] {
    return (this.#stmt.listRounds.all(jobId) as RoundRow[]).map((r) => toRound(r));
  }

  busyTargets(): Set<string> {
    return new Set((this.#stmt.busy.all() as Array<{ target: string }>).map((r) => r.target));
  }

  addHealthSamples(samples: HealthSample[], bucketMs: number, latest: Array<{ deviceId: string; health: HealthMessage; at: number }> = []): void {
    this.#db.transaction(() => {
      for (const l of latest) this.#stmt.setHealth.run(JSON.stringify(l.health), l.at, l.deviceId);
      for (const s of samples) {
        this.#stmt.addSample.run(s.deviceId, s.ts, s.cpu, s.memUsed, s.memTotal, s.rss, s.reqRate, s.errRate, s.p50, s.p99);
        const bucket = s.ts - (s.ts % bucketMs);
        this.#stmt.addRollup.run(s.deviceId, bucket, s.cpu, s.memUsed, s.memTotal, s.rss, s.reqRate, s.errRate, s.p50 === null ? 0 : 1, s.p50 ?? 0, s.p99);
      }
    })();
  }

  healthSamples(deviceId: string, sinceMs: number): HealthSample[] {
    type Row = { device_id: string; ts: number; cpu: number; mem_used: number; mem_total: number; rss: number; req_rate: number; err_rate: number; p50: number | null; p99: number | null };
    return (this.#stmt.samples.all(deviceId, sinceMs) as Row[]).map((r) => ({
      deviceId: r.device_id,
      ts: r.ts,
      cpu: r.cpu,
      memUsed: r.mem_used,
      memTotal: r.mem_total,
      rss: r.rss,
      reqRate: r.req_rate,
      errRate: r.err_rate,
      p50: r.p50,
      p99: r.p99,
    }));
  }

  healthRollups(deviceId: string, sinceMs: number, untilMs: number, bucketMs: number): HealthSample[] {
    type Row = { device_id: string; bucket: number; n: number; cpu: number; mem_used: number; mem_total: number; rss: number; req_rate: number; err_rate: number; n_lat: number; p50: number; p99: number | null };
    // Buckets hold sums; a point is their average, placed at the bucket's middle.
    return (this.#stmt.rollups.all(deviceId, sinceMs, untilMs) as Row[]).map((r) => ({
      deviceId: r.device_id,
      ts: r.bucket + bucketMs / 2,
      cpu: r.cpu / r.n,
      memUsed: r.mem_used / r.n,
      memTotal: r.mem_total,
      rss: r.rss / r.n,
      reqRate: r.req_rate / r.n,
      errRate: r.err_rate / r.n,
      p50: r.n_lat > 0 ? r.p50 / r.n_lat : null,
      p99: r.p99,
    }));
  }

  pruneHealth(samplesBefore: number, rollupsBefore: number): void {
    this.#stmt.pruneSamples.run(samplesBefore);
    this.#stmt.pruneRollups.run(rollupsBefore);
  }

  deleteHealth(deviceId: string): void {
    this.#stmt.deleteSamples.run(deviceId);
    this.#stmt.deleteRollups.run(deviceId);
  }

  /** BEGIN IMMEDIATE … COMMIT around async work (the caller keeps every other call out meanwhile). */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = await work();
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  close(): void {
    this.#db.close();
  }
}

type SyncRepositories = { [K in keyof Repositories]: Synchronous<Repositories[K]> };

/** The engine's methods, grouped as the repositories. */
function repositories(e: SqliteEngine): SyncRepositories {
  return {
    tokens: {
      add: (t) => e.addApiToken(t),
      get: (id) => e.getApiToken(id),
      list: () => e.listApiTokens(),
      count: () => e.countApiTokens(),
      revoke: (id, at) => e.revokeApiToken(id, at),
      setLastUsed: (id, at) => e.setApiTokenLastUsed(id, at),
    },
    enrollment: {
      addToken: (t) => e.addEnrollToken(t),
      getToken: (id) => e.getEnrollToken(id),
      enroll: (tokenId, now, device) => e.enrollDevice(tokenId, now, device),
    },
    devices: {
      get: (id) => e.getDevice(id),
      secretHash: (id) => e.getDeviceSecretHash(id),
      certificate: (id) => e.getDeviceCertificate(id),
      setCertificate: (id, cert, previous) => e.setDeviceCertificate(id, cert, previous),
      setCertificateRenewBefore: (id, at) => e.setDeviceCertificateRenewBefore(id, at),
      count: () => e.countDevices(),
      list: () => e.listDevices(),
      silentSince: (before) => e.silentDevices(before),
      setLabels: (id, labels) => e.setDeviceLabels(id, labels),
      remove: (id) => e.removeDevice(id),
      setOnline: (id, online, at) => e.setDeviceOnline(id, online, at),
      setReported: (id, reported, at) => e.setDeviceReported(id, reported, at),
      setTrainingAttached: (id, attached) => e.setDeviceTrainingAttached(id, attached),
      setCapabilities: (id, accepts, datasets, hardware) => e.setDeviceCapabilities(id, accepts, datasets, hardware),
    },
    models: {
      addVersion: (name, sha256, size, signature, extras) => e.addModelVersion(name, sha256, size, signature, extras),
      list: () => e.listModels(),
      versions: (name) => e.listModelVersions(name),
      get: (name, version) => e.getModelVersion(name, version),
      deleteVersion: (name, version) => e.deleteModelVersion(name, version),
      rollouts: (model) => e.modelRollouts(model),
    },
    deployments: {
      create: (d, at) => e.createDeployment(d, at),
      get: (id) => e.getDeployment(id),
      info: (id) => e.getDeploymentInfo(id),
      rolloutCounts: (id) => e.rolloutCounts(id),
      list: (limit) => e.listDeployments(limit),
      lastPerVersion: (model) => e.lastDeploymentPerVersion(model),
      active: (recent) => e.activeDeployments(recent),
      countByState: () => e.countDeploymentsByState(),
      forDevice: (deviceId) => e.deploymentsForDevice(deviceId),
      withSelector: (deviceId) => e.selectorDeployments(deviceId),
      addRollout: (id, deviceId, at) => e.addRollout(id, deviceId, at),
      staged: () => e.stagedDeployments(),
      setRolloutState: (id, deviceId, state, reason, at, expected) => e.setRolloutState(id, deviceId, state, reason, at, expected),
      setState: (id, state) => e.setDeploymentState(id, state),
    },
    artifactRefs: {
      referenced: (sha256) => e.artifactReferenced(sha256),
      deviceMayFetch: (deviceId, sha256) => e.deviceMayFetch(deviceId, sha256),
    },
    health: {
      add: (samples, bucketMs, latest) => e.addHealthSamples(samples, bucketMs, latest),
      samples: (deviceId, since) => e.healthSamples(deviceId, since),
      rollups: (deviceId, since, until, bucketMs) => e.healthRollups(deviceId, since, until, bucketMs),
      prune: (samplesBefore, rollupsBefore) => e.pruneHealth(samplesBefore, rollupsBefore),
      deleteDevice: (deviceId) => e.deleteHealth(deviceId),
    },
    jobs: {
      create: (id, spec, at) => e.createJob(id, spec, at),
      get: (id) => e.getJob(id),
      list: (limit) => e.listJobs(limit),
      inState: (state) => e.jobsInState(state),
      setState: (id, state, at, error) => e.setJobState(id, state, at, error),
      setModel: (id, model) => e.setJobModel(id, model),
      addRuns: (jobId, runs, at) => e.addJobRuns(jobId, runs, at),
      setRunState: (jobId, rank, state, at, exitCode, error) => e.setJobRunState(jobId, rank, state, at, exitCode, error),
      setRunRendezvous: (jobId, rank, point) => e.setJobRunRendezvous(jobId, rank, point),
      appendLogs: (jobId, lines, maxLines) => e.appendJobLogs(jobId, lines, maxLines),
      logs: (jobId, after, limit) => e.jobLogs(jobId, after, limit),
      addMetrics: (jobId, points) => e.addJobMetrics(jobId, points),
      metrics: (jobId) => e.jobMetrics(jobId),
      metricSummary: (jobId) => e.jobMetricSummary(jobId),
      countRunRecords: (jobId, rank) => e.countRunRecords(jobId, rank),
      addOutput: (jobId, output) => e.addJobOutput(jobId, output),
      outputs: (jobId, ranks) => (ranks ? e.jobOutputsOfRanks(jobId, ranks) : e.jobOutputs(jobId)),
      latestMetrics: (jobId, ranks) => e.latestJobMetrics(jobId, ranks),
      busyTargets: () => e.busyTargets(),
    },
    rounds: {
      put: (r) => e.putRound(r),
      list: (jobId) => e.listRounds(jobId),
    },
    audit: {
      append: (entry, keep) => e.appendAudit(entry, keep),
      list: (query) => e.listAudit(query),
    },
  };
}

/** Each method as an async one that first waits for `gate` (an open transaction), when given. */
function asynchronous(sync: SyncRepositories, gate?: () => Promise<void> | undefined): Repositories {
  const wrap = <R extends object>(repo: R) =>
    Object.fromEntries(
      Object.entries(repo).map(([name, fn]: [string, (...args: unknown[]) => unknown]) => [
        name,
        async (...args: unknown[]) => {
          for (let open = gate?.(); open; open = gate?.()) await open;
          return fn(...args);
        },
      ]),
    );
  return Object.fromEntries(Object.entries(sync).map(([name, repo]) => [name, wrap(repo as object)])) as unknown as Repositories;
}

/** The open transaction, if any: calls from outside it wait for `open`; calls inside its work do not. */
class TransactionGate {
  /** Settles when the open transaction ends; undefined when none is open. */
  open: Promise<void> | undefined;
  /** Set inside a transaction's work: a call there on the store itself joins it (it would wait for itself). */
  readonly inside = new Scope<true>();

  /** What a call from here waits for. */
  waiting(): Promise<void> | undefined {
    return this.inside.get() ? undefined : this.open;
  }
}

export class SqliteStore extends RepositoryStore {
  readonly kind = 'sqlite';
  readonly #engine: SqliteEngine;
  /** The repositories as a transaction sees them: no gate. */
  readonly #inside: Repositories;
  readonly #gate: TransactionGate;
  readonly #exclusive = new KeyedMutex();

  constructor(file: string) {
    const engine = new SqliteEngine(file);
    const gate = new TransactionGate();
    const sync = repositories(engine);
    super(asynchronous(sync, () => gate.waiting()));
    this.#engine = engine;
    this.#gate = gate;
    this.#inside = asynchronous(sync);
  }

  async transaction<T>(work: (tx: Repositories) => Promise<T>): Promise<T> {
    // Nested: part of the one open (SQLite has one writer; its savepoints are not needed here).
    if (this.#gate.inside.get()) return work(this.#inside);
    while (this.#gate.open) await this.#gate.open;
    let end!: () => void;
    this.#gate.open = new Promise((resolve) => (end = resolve));
    try {
      return await this.#gate.inside.run(true, () => this.#engine.transaction(() => work(this.#inside)));
    } finally {
      this.#gate.open = undefined;
      end();
    }
  }

  /** One relay holds a SQLite workspace: a lock in this process is enough. */
  protected lockKey<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.#exclusive.run(key, work);
  }

  async close(): Promise<void> {
    while (this.#gate.open) await this.#gate.open;
    this.#engine.close();
  }
}
