// The Store on SQLite (better-sqlite3): synchronous, prepared statements, WAL journal.

import Database from 'better-sqlite3';
import type { HealthMessage, Labels, ModelSignature, ReportedState } from '@outpost/shared';
import { migrate } from './migrations.js';
import type { NewDeployment, NewDevice, Store } from './store.js';
import type {
  ApiTokenRecord,
  DeploymentDeviceRecord,
  DeploymentRecord,
  DeploymentState,
  DeviceRecord,
  DeviceRolloutState,
  EnrollTokenRecord,
  ModelSummary,
  ModelVersionRecord,
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
}

interface ModelRow {
  name: string;
  version: number;
  sha256: string;
  size: number;
  signature: string;
  created_at: number;
}

interface DeploymentRow {
  id: string;
  model: string;
  version: number;
  sha256: string;
  state: DeploymentState;
  created_at: number;
}

const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  name: r.name,
  labels: JSON.parse(r.labels) as Labels,
  createdAt: r.created_at,
  online: r.online === 1,
  lastSeen: r.last_seen,
  health: r.health ? (JSON.parse(r.health) as HealthMessage) : null,
  reported: r.reported ? (JSON.parse(r.reported) as ReportedState) : null,
});

const toModel = (r: ModelRow): ModelVersionRecord => ({
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  size: r.size,
  signature: JSON.parse(r.signature) as ModelSignature,
  createdAt: r.created_at,
});

export class SqliteStore implements Store {
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
      addApiToken: db.prepare('INSERT INTO api_tokens (id, name, hash, role, created_at) VALUES (?, ?, ?, ?, ?)'),
      getApiToken: db.prepare('SELECT id, name, hash, role FROM api_tokens WHERE id = ?'),
      countApiTokens: db.prepare('SELECT count(*) AS n FROM api_tokens'),
      addEnrollToken: db.prepare('INSERT INTO enroll_tokens (id, hash, labels, expires_at, used_at) VALUES (?, ?, ?, ?, NULL)'),
      getEnrollToken: db.prepare('SELECT id, hash, labels, expires_at, used_at FROM enroll_tokens WHERE id = ?'),
      useEnrollToken: db.prepare('UPDATE enroll_tokens SET used_at = ?, device_id = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?'),
      addDevice: db.prepare('INSERT INTO devices (id, name, labels, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)'),
      getDevice: db.prepare('SELECT * FROM devices WHERE id = ?'),
      getSecretHash: db.prepare('SELECT secret_hash FROM devices WHERE id = ?'),
      listDevices: db.prepare('SELECT * FROM devices ORDER BY created_at, id'),
      setLabels: db.prepare('UPDATE devices SET labels = ? WHERE id = ?'),
      removeDevice: db.prepare('DELETE FROM devices WHERE id = ?'),
      setOnline: db.prepare('UPDATE devices SET online = ?, last_seen = ? WHERE id = ?'),
      setHealth: db.prepare('UPDATE devices SET health = ?, last_seen = ? WHERE id = ?'),
      setReported: db.prepare('UPDATE devices SET reported = ?, last_seen = ? WHERE id = ?'),
      latestModel: db.prepare('SELECT * FROM models WHERE name = ? ORDER BY version DESC LIMIT 1'),
      modelBySha: db.prepare('SELECT * FROM models WHERE name = ? AND sha256 = ?'),
      addModel: db.prepare('INSERT INTO models (name, version, sha256, size, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      listModels: db.prepare(
        'SELECT name, max(version) AS latest, count(*) AS versions, max(created_at) AS updated FROM models GROUP BY name ORDER BY name',
      ),
      listModelVersions: db.prepare('SELECT * FROM models WHERE name = ? ORDER BY version'),
      getModelVersion: db.prepare('SELECT * FROM models WHERE name = ? AND version = ?'),
      addDeployment: db.prepare('INSERT INTO deployments (id, model, version, sha256, state, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      addRollout: db.prepare("INSERT INTO rollouts (deployment_id, device_id, state, reason, updated_at) VALUES (?, ?, 'pending', NULL, ?)"),
      getDeployment: db.prepare('SELECT * FROM deployments WHERE id = ?'),
      listDeployments: db.prepare('SELECT * FROM deployments ORDER BY seq DESC LIMIT ?'),
      rolloutsOf: db.prepare('SELECT device_id, state, reason, updated_at FROM rollouts WHERE deployment_id = ? ORDER BY device_id'),
      deploymentsForDevice: db.prepare(
        'SELECT d.* FROM deployments d JOIN rollouts r ON r.deployment_id = d.id WHERE r.device_id = ? ORDER BY d.seq DESC',
      ),
      setRollout: db.prepare('UPDATE rollouts SET state = ?, reason = ?, updated_at = ? WHERE deployment_id = ? AND device_id = ? AND (state != ? OR coalesce(reason, \'\') != coalesce(?, \'\'))'),
      setDeploymentState: db.prepare('UPDATE deployments SET state = ? WHERE id = ?'),
      mayFetch: db.prepare('SELECT 1 FROM deployments d JOIN rollouts r ON r.deployment_id = d.id WHERE r.device_id = ? AND d.sha256 = ? LIMIT 1'),
    };
  }

  addApiToken(t: ApiTokenRecord): void {
    this.#stmt.addApiToken.run(t.id, t.name, t.hash, t.role, Date.now());
  }

  getApiToken(id: string): ApiTokenRecord | undefined {
    return this.#stmt.getApiToken.get(id) as ApiTokenRecord | undefined;
  }

  countApiTokens(): number {
    return (this.#stmt.countApiTokens.get() as { n: number }).n;
  }

  addEnrollToken(t: EnrollTokenRecord): void {
    this.#stmt.addEnrollToken.run(t.id, t.hash, JSON.stringify(t.labels), t.expiresAt);
  }

  getEnrollToken(id: string): EnrollTokenRecord | undefined {
    const r = this.#stmt.getEnrollToken.get(id) as
      | { id: string; hash: string; labels: string; expires_at: number; used_at: number | null }
      | undefined;
    return r && { id: r.id, hash: r.hash, labels: JSON.parse(r.labels) as Labels, expiresAt: r.expires_at, usedAt: r.used_at };
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

  listDevices(): DeviceRecord[] {
    return (this.#stmt.listDevices.all() as DeviceRow[]).map(toDevice);
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

  setDeviceHealth(id: string, health: HealthMessage, at: number): void {
    this.#stmt.setHealth.run(JSON.stringify(health), at, id);
  }

  setDeviceReported(id: string, reported: ReportedState, at: number): void {
    this.#stmt.setReported.run(JSON.stringify(reported), at, id);
  }

  addModelVersion(name: string, sha256: string, size: number, signature: ModelSignature): { record: ModelVersionRecord; created: boolean } {
    return this.#db.transaction(() => {
      // Pushing the same bytes again is idempotent: it names the version that already holds them.
      const existing = this.#stmt.modelBySha.get(name, sha256) as ModelRow | undefined;
      if (existing) return { record: toModel(existing), created: false };
      const latest = this.#stmt.latestModel.get(name) as ModelRow | undefined;
      const version = (latest?.version ?? 0) + 1;
      const createdAt = Date.now();
      this.#stmt.addModel.run(name, version, sha256, size, JSON.stringify(signature), createdAt);
      return { record: { name, version, sha256, size, signature, createdAt }, created: true };
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

  createDeployment(d: NewDeployment, at: number): DeploymentRecord {
    this.#db.transaction(() => {
      this.#stmt.addDeployment.run(d.id, d.model, d.version, d.sha256, 'in-progress', at);
      for (const deviceId of d.deviceIds) this.#stmt.addRollout.run(d.id, deviceId, at);
    })();
    return this.getDeployment(d.id)!;
  }

  #withDevices(r: DeploymentRow): DeploymentRecord {
    const devices = (this.#stmt.rolloutsOf.all(r.id) as Array<{ device_id: string; state: DeviceRolloutState; reason: string | null; updated_at: number }>).map(
      (x): DeploymentDeviceRecord => ({ deviceId: x.device_id, state: x.state, reason: x.reason, updatedAt: x.updated_at }),
    );
    return { id: r.id, model: r.model, version: r.version, sha256: r.sha256, state: r.state, createdAt: r.created_at, devices };
  }

  getDeployment(id: string): DeploymentRecord | undefined {
    const r = this.#stmt.getDeployment.get(id) as DeploymentRow | undefined;
    return r && this.#withDevices(r);
  }

  listDeployments(limit = 100): DeploymentRecord[] {
    return (this.#stmt.listDeployments.all(limit) as DeploymentRow[]).map((r) => this.#withDevices(r));
  }

  deploymentsForDevice(deviceId: string): DeploymentRecord[] {
    return (this.#stmt.deploymentsForDevice.all(deviceId) as DeploymentRow[]).map((r) => this.#withDevices(r));
  }

  setRolloutState(deploymentId: string, deviceId: string, state: DeviceRolloutState, reason: string | null, at: number): boolean {
    return this.#stmt.setRollout.run(state, reason, at, deploymentId, deviceId, state, reason).changes > 0;
  }

  setDeploymentState(deploymentId: string, state: DeploymentState): void {
    this.#stmt.setDeploymentState.run(state, deploymentId);
  }

  deviceMayFetch(deviceId: string, sha256: string): boolean {
    return this.#stmt.mayFetch.get(deviceId, sha256) !== undefined;
  }

  close(): void {
    this.#db.close();
  }
}
