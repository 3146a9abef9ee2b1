// The Store on PostgreSQL (node-postgres): a pool of connections, the schema of
// postgres-migrations.ts. Every query mirrors one of sqlite-store.ts's statements, so that the
// two give the same records for the same calls; values always go as parameters (the IN lists
// of rollout states too, as arrays). Work that must be atomic (enroll, addVersion, appendLogs,
// audit.append, …) runs in a transaction of its own on the pool, or inside the caller's when
// it is made through `store.transaction`'s repositories.
//
// Concurrency, where SQLite's single writer serialized everything: addVersion takes an
// advisory lock on the model's name, appendLogs locks the job's row, audit.append takes an
// advisory lock of its own (so that seq order is commit order and the trim keeps exactly the
// newest `keep`), and enroll's UPDATE … WHERE used_at IS NULL lets one caller win.
//
// Inside `store.transaction`, a statement that fails aborts the transaction (PostgreSQL's rule;
// SQLite would undo that statement alone): let the error out of `work`. If `work` catches it and
// returns anyway, the COMMIT is really a rollback, and `transaction` throws rather than report it
// as committed.

import { Scope } from './scope.js';
import { ROUND_COLUMNS, roundValues, toActor, toApiToken, toRound, type ApiTokenRow, type AuditActorColumns, type RoundRow } from './rows.js';
import { RepositoryStore } from './repository-store.js';
import pg from 'pg';
import type { HealthMessage, Labels, Logger, ModelSignature, ReportedState, SelfTestResult, ServingConfig } from '@outpost/shared';
import { migratePostgres } from './postgres-migrations.js';
import { MEMBER_STATES } from './records.js';
import type {
  ApiTokenRepository,
  ArtifactReferences,
  AuditRepository,
  DeploymentRepository,
  DeviceRepository,
  EnrollmentRepository,
  HealthRepository,
  JobRepository,
  RoundRepository,
  ModelRepository,
  NewDeployment,
  Repositories,
} from './store.js';
import type {
  AuditEntry,
  DeploymentDeviceRecord,
  DeploymentInfo,
  DeploymentRecord,
  DeploymentState,
  DeviceDeployment,
  DeviceRecord,
  DeviceRolloutState,
  HealthSample,
  JobLogLine,
  JobMetricRecord,
  JobOutputRecord,
  JobRecord,
  JobRunRecord,
  JobSpec,
  JobRunState,
  JobState,
  ModelLineage,
  ModelRolloutRecord,
  ModelSummary,
  ModelVersionRecord,
  RolloutStrategy,
} from './records.js';

// ---------------------------------------------------------------- connections

/** BIGINT (and NUMERIC, should one appear) as JS numbers: ms timestamps, sizes and counts all fit. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/** Advisory lock keys (the two-int form, apart from the migration lock's single bigint). */
const LOCK_SPACE = 0x4f50; // "OP"
const LOCK_AUDIT = 1;
const LOCK_MODEL_NAME = 2;
const LOCK_JOB_LOGS = 3;

/** A place to run SQL: the pool (each query on any connection), or one connection in a transaction. */
interface Db {
  rows<R>(sql: string, params?: unknown[]): Promise<R[]>;
  one<R>(sql: string, params?: unknown[]): Promise<R | undefined>;
  /** The number of rows the statement changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
  /** `work` as one transaction: its own on the pool; part of the open one on a connection. */
  atomic<T>(work: (db: Db) => Promise<T>): Promise<T>;
}

/**
 * PostgreSQL's text cannot hold NUL, which SQLite stores: a NUL in a text parameter (a device's
 * failure reason, a name from a request) would fail the whole write, and with it the message or
 * request that carried it. It is stored as U+FFFD instead (job log lines are bytes and keep it).
 */
function textSafe(params: unknown[]): unknown[] {
  return params.map((p) => (typeof p === 'string' && p.includes('\u0000') ? p.replaceAll('\u0000', '\uFFFD') : Array.isArray(p) ? textSafe(p) : p));
}

function clientDb(client: pg.PoolClient): Db {
  const db: Db = {
    rows: async <R>(sql: string, params: unknown[] = []) => (await client.query(sql, textSafe(params))).rows as R[],
    one: async <R>(sql: string, params: unknown[] = []) => (await client.query(sql, textSafe(params))).rows[0] as R | undefined,
    run: async (sql, params = []) => (await client.query(sql, textSafe(params))).rowCount ?? 0,
    atomic: (work) => work(db),
  };
  return db;
}

/** The open transaction's connection, inside its work (a call on the store itself there joins it). */
const openTransaction = new Scope<Db>();

function poolDb(pool: pg.Pool, log: Logger | undefined): Db {
  return {
    rows: async <R>(sql: string, params: unknown[] = []) => {
      const inside = openTransaction.get();
      return inside ? inside.rows<R>(sql, params) : ((await pool.query(sql, textSafe(params))).rows as R[]);
    },
    one: async <R>(sql: string, params: unknown[] = []) => {
      const inside = openTransaction.get();
      return inside ? inside.one<R>(sql, params) : ((await pool.query(sql, textSafe(params))).rows[0] as R | undefined);
    },
    run: async (sql, params = []) => {
      const inside = openTransaction.get();
      return inside ? inside.run(sql, params) : ((await pool.query(sql, textSafe(params))).rowCount ?? 0);
    },
    atomic: (work) => {
      const inside = openTransaction.get();
      return inside ? work(inside) : inTransaction(pool, log, work);
    },
  };
}

/** Serialization failures and deadlocks: the transaction lost a race and may run again. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_TRIES = 5;

/** Checks out one connection: BEGIN, `work`, COMMIT; ROLLBACK on a throw; always released. */
async function inTransaction<T>(pool: pg.Pool, log: Logger | undefined, work: (db: Db) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  // Checked out, a connection that fails emits 'error' with no listener of the pool's: log it
  // (the query in flight rejects too) rather than crash the process.
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
    log?.warn({ err }, 'PostgreSQL: a connection failed during a transaction');
  };
  client.on('error', onError);
  let result: T;
  try {
    await client.query(begin);
    try {
      const db = clientDb(client);
      result = await openTransaction.run(db, () => work(db));
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken ??= rollbackErr));
      throw err;
    }
    const commit = await client.query('COMMIT');
    // COMMIT of a transaction a failed statement aborted answers ROLLBACK, without an error.
    if (commit.command === 'ROLLBACK') throw new Error('the transaction was rolled back: a statement in it failed (and the error was caught inside the transaction)');
  } finally {
    client.removeListener('error', onError);
    // A broken connection is destroyed, not given back to the pool.
    client.release(broken ?? false);
  }
  return result;
}

/** SQLite's LIMIT: a negative one is no limit. */
const limit = (n: number): number | null => (n < 0 ? null : n);

/** A deployment of a deleted model version applies to no device: it is history. */
const VERSION_EXISTS = 'EXISTS (SELECT 1 FROM models m WHERE m.name = d.model AND m.version = d.version)';

/** The rollout states (as one array parameter) in which a deployment still applies to a device. */
const MEMBERS = [...MEMBER_STATES];
const MEMBERS_AND_WAITING = [...MEMBER_STATES, 'waiting'];

const FINISHED = "('succeeded', 'failed', 'canceled')";

// ---------------------------------------------------------------- rows → records

interface DeviceRow {
  id: string;
  name: string;
  labels: Labels;
  created_at: number;
  online: boolean;
  last_seen: number | null;
  health: HealthMessage | null;
  reported: ReportedState | null;
  training_attached: boolean;
  accepts_training: boolean;
  datasets: string[];
  accelerators: string[];
  execution_providers: string[];
}

interface ModelRow {
  name: string;
  version: number;
  sha256: string;
  size: number;
  signature: ModelSignature;
  created_at: number;
  lineage: ModelLineage | null;
  sample_sha256: string | null;
  sample_size: number | null;
  self_test: SelfTestResult | null;
}

interface JobRow {
  seq: number;
  id: string;
  state: JobState;
  spec: JobSpec;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
  model: { name: string; version: number; deploymentId?: string } | null;
}

interface RunRow {
  job_id: string;
  rank: number;
  target: string;
  state: JobRunState;
  exit_code: number | null;
  error: string | null;
  started_at: number | null;
  finished_at: number | null;
  rendezvous: { addr: string; port: number } | null;
}

interface DeploymentRow {
  id: string;
  model: string;
  version: number;
  sha256: string;
  state: DeploymentState;
  selector: Labels | null;
  strategy: RolloutStrategy | null;
  serving: ServingConfig | null;
  created_at: number;
}

/** A deployment row joined with one device's rollout row (absent in a LEFT JOIN: null). */
interface RolloutJoinRow extends DeploymentRow {
  rollout_state: DeviceRolloutState | null;
  rollout_reason: string | null;
}

interface RolloutRow {
  deployment_id: string;
  device_id: string;
  state: DeviceRolloutState;
  reason: string | null;
  updated_at: number;
}

interface AuditRow extends AuditActorColumns {
  seq: number;
  ts: number;
  action: string;
  target: string | null;
  outcome: AuditEntry['outcome'];
  status: number | null;
  address: string | null;
  detail: Record<string, unknown> | null;
}

// JSON columns come back parsed (node-postgres parses `json`); SQLite's mappers JSON.parse text.
const toDeploymentInfo = (r: DeploymentRow): DeploymentInfo => ({
  id: r.id,
  model: r.model,
  version: r.version,
  sha256: r.sha256,
  state: r.state,
  selector: r.selector ?? null,
  strategy: r.strategy ?? null,
  serving: r.serving ?? null,
  createdAt: r.created_at,
});

const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  name: r.name,
  labels: r.labels,
  createdAt: r.created_at,
  online: r.online,
  lastSeen: r.last_seen,
  health: r.health ?? null,
  reported: r.reported ?? null,
  trainingAttached: r.training_attached,
  acceptsTraining: r.accepts_training,
  datasets: r.datasets,
  accelerators: r.accelerators,
  executionProviders: r.execution_providers,
});

const toModel = (r: ModelRow): ModelVersionRecord => ({
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  size: r.size,
  signature: r.signature,
  createdAt: r.created_at,
  lineage: r.lineage ?? null,
  sample: r.sample_sha256 ? { sha256: r.sample_sha256, size: r.sample_size ?? 0 } : null,
  selfTest: r.self_test ?? null,
});

const toAudit = (r: AuditRow): AuditEntry => ({
  seq: r.seq,
  ts: r.ts,
  actor: toActor(r),
  action: r.action,
  target: r.target,
  outcome: r.outcome,
  status: r.status,
  address: r.address,
  detail: r.detail ?? null,
});

const toRun = (x: RunRow): JobRunRecord => ({ rank: x.rank, target: x.target, state: x.state, exitCode: x.exit_code, error: x.error, startedAt: x.started_at, finishedAt: x.finished_at, rendezvous: x.rendezvous ?? null });

const toJob = (r: JobRow, runs: JobRunRecord[]): JobRecord => ({
  id: r.id,
  seq: r.seq,
  state: r.state,
  spec: r.spec,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  error: r.error,
  model: r.model ?? null,
  runs,
});

/** Groups rows by a key, keeping their order. */
function groupBy<R, K>(rows: R[], key: (r: R) => K): Map<K, R[]> {
  const groups = new Map<K, R[]>();
  for (const r of rows) {
    const k = key(r);
    const group = groups.get(k);
    if (group) group.push(r);
    else groups.set(k, [r]);
  }
  return groups;
}

// ---------------------------------------------------------------- API tokens

function apiTokens(db: Db): ApiTokenRepository {
  return {
    async add(t) {
      const createdAt = Date.now();
      await db.run('INSERT INTO api_tokens (id, name, hash, role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', [t.id, t.name, t.hash, t.role, createdAt, t.expiresAt ?? null]);
      return { id: t.id, name: t.name, hash: t.hash, role: t.role, createdAt, expiresAt: t.expiresAt ?? null, revokedAt: null, lastUsedAt: null };
    },
    async get(id) {
      const r = await db.one<ApiTokenRow>('SELECT * FROM api_tokens WHERE id = $1', [id]);
      return r && toApiToken(r);
    },
    async list() {
      return (await db.rows<ApiTokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id')).map(toApiToken);
    },
    async count() {
      return (await db.one<{ n: number }>('SELECT count(*) AS n FROM api_tokens'))!.n;
    },
    async revoke(id, at) {
      return (await db.run('UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id])) === 1;
    },
    async setLastUsed(id, at) {
      await db.run('UPDATE api_tokens SET last_used_at = $1 WHERE id = $2', [at, id]);
    },
  };
}

// ---------------------------------------------------------------- enrollment

function enrollment(db: Db): EnrollmentRepository {
  return {
    async addToken(t) {
      await db.run('INSERT INTO enroll_tokens (id, hash, labels, expires_at, used_at, allow_device_labels) VALUES ($1, $2, $3, $4, NULL, $5)', [t.id, t.hash, JSON.stringify(t.labels), t.expiresAt, t.allowDeviceLabels]);
    },
    async getToken(id) {
      const r = await db.one<{ id: string; hash: string; labels: Labels; expires_at: number; used_at: number | null; allow_device_labels: boolean }>(
        'SELECT id, hash, labels, expires_at, used_at, allow_device_labels FROM enroll_tokens WHERE id = $1',
        [id],
      );
      return r && { id: r.id, hash: r.hash, labels: r.labels, expiresAt: r.expires_at, usedAt: r.used_at, allowDeviceLabels: r.allow_device_labels };
    },
    enroll(tokenId, now, device) {
      return db.atomic(async (tx) => {
        // Concurrent callers queue on the token's row; once one has committed, the others' WHERE fails.
        if ((await tx.run('UPDATE enroll_tokens SET used_at = $1, device_id = $2 WHERE id = $3 AND used_at IS NULL AND expires_at > $1', [now, device.id, tokenId])) !== 1) return false;
        await tx.run('INSERT INTO devices (id, name, labels, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)', [device.id, device.name, JSON.stringify(device.labels), device.secretHash, now]);
        return true;
      });
    },
  };
}

// ---------------------------------------------------------------- devices

function devices(db: Db): DeviceRepository {
  return {
    async get(id) {
      const r = await db.one<DeviceRow>('SELECT * FROM devices WHERE id = $1', [id]);
      return r && toDevice(r);
    },
    async secretHash(id) {
      return (await db.one<{ secret_hash: string }>('SELECT secret_hash FROM devices WHERE id = $1', [id]))?.secret_hash;
    },
    async certificate(id) {
      const r = await db.one<{ cert_serial: string | null; cert_previous_serial: string | null; cert_expires_at: number | null; cert_renew_before: number | null; cert_issued_at: number | null }>(
        'SELECT cert_serial, cert_previous_serial, cert_expires_at, cert_renew_before, cert_issued_at FROM devices WHERE id = $1',
        [id],
      );
      return r && { serial: r.cert_serial, previousSerial: r.cert_previous_serial, expiresAt: r.cert_expires_at, renewBefore: r.cert_renew_before, issuedAt: r.cert_issued_at };
    },
    async setCertificate(id, cert, previousSerial) {
      await db.run('UPDATE devices SET cert_previous_serial = $1, cert_serial = $2, cert_expires_at = $3, cert_issued_at = $4 WHERE id = $5', [previousSerial, cert.serial, cert.expiresAt, cert.issuedAt, id]);
    },
    async setCertificateRenewBefore(id, at) {
      await db.run('UPDATE devices SET cert_renew_before = $1 WHERE id = $2', [at, id]);
    },
    async count() {
      return (await db.one<{ total: number; online: number }>('SELECT count(*) AS total, count(*) FILTER (WHERE online) AS online FROM devices'))!;
    },
    async list() {
      return (await db.rows<DeviceRow>('SELECT * FROM devices ORDER BY created_at, id')).map(toDevice);
    },
    async silentSince(before) {
      return (await db.rows<{ id: string }>('SELECT id FROM devices WHERE online AND coalesce(last_seen, 0) < $1 ORDER BY id', [before])).map((r) => r.id);
    },
    async setLabels(id, labels) {
      await db.run('UPDATE devices SET labels = $1 WHERE id = $2', [JSON.stringify(labels), id]);
    },
    async remove(id) {
      await db.run('DELETE FROM devices WHERE id = $1', [id]);
    },
    async setOnline(id, online, at) {
      await db.run('UPDATE devices SET online = $1, last_seen = $2 WHERE id = $3', [online, at, id]);
    },
    async setReported(id, reported, at) {
      await db.run('UPDATE devices SET reported = $1, last_seen = $2 WHERE id = $3', [JSON.stringify(reported), at, id]);
    },
    async setTrainingAttached(id, attached) {
      await db.run('UPDATE devices SET training_attached = $1 WHERE id = $2', [attached, id]);
    },
    async setCapabilities(id, acceptsTraining, datasets, hardware) {
      await db.run('UPDATE devices SET accepts_training = $1, datasets = $2, accelerators = $3, execution_providers = $4 WHERE id = $5', [acceptsTraining, JSON.stringify(datasets), JSON.stringify(hardware?.accelerators ?? []), JSON.stringify(hardware?.executionProviders ?? []), id]);
    },
  };
}

// ---------------------------------------------------------------- models

function models(db: Db): ModelRepository {
  const bySha = (tx: Db, name: string, sha256: string) => tx.one<ModelRow>('SELECT * FROM models WHERE name = $1 AND sha256 = $2 ORDER BY version LIMIT 1', [name, sha256]);
  return {
    addVersion(name, sha256, size, signature, extras = {}) {
      const { lineage, sample, selfTest } = extras;
      return db.atomic(async (tx) => {
        // One caller at a time per name: each sees the versions the others committed.
        await tx.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_SPACE + LOCK_MODEL_NAME, name]);
        // Pushing the same bytes again is idempotent: it names the version that already holds them
        // (and gives it the sample pushed with them, when there is one).
        const existing = await bySha(tx, name, sha256);
        if (existing) {
          if (sample) await tx.run('UPDATE models SET sample_sha256 = $1, sample_size = $2, self_test = $3 WHERE name = $4 AND version = $5', [sample.sha256, sample.size, selfTest ? JSON.stringify(selfTest) : null, name, existing.version]);
          return { record: toModel((await bySha(tx, name, sha256))!), created: false };
        }
        const { version } = (await tx.one<{ version: number }>(
          'SELECT greatest(coalesce((SELECT max(version) FROM models WHERE name = $1), 0), coalesce((SELECT last_version FROM model_names WHERE name = $1), 0)) + 1 AS version',
          [name],
        ))!;
        const createdAt = Date.now();
        await tx.run(
          'INSERT INTO models (name, version, sha256, size, signature, created_at, lineage, sample_sha256, sample_size, self_test) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
          [name, version, sha256, size, JSON.stringify(signature), createdAt, lineage ? JSON.stringify(lineage) : null, sample?.sha256 ?? null, sample?.size ?? null, selfTest ? JSON.stringify(selfTest) : null],
        );
        await tx.run('INSERT INTO model_names (name, last_version) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version', [name, version]);
        return { record: { name, version, sha256, size, signature, createdAt, lineage: lineage ?? null, sample: sample ?? null, selfTest: selfTest ?? null }, created: true };
      });
    },
    async list() {
      const rows = await db.rows<{ name: string; latest: number; versions: number; updated: number }>(
        'SELECT name, max(version) AS latest, count(*) AS versions, max(created_at) AS updated FROM models GROUP BY name ORDER BY name',
      );
      return rows.map((r): ModelSummary => ({ name: r.name, latestVersion: r.latest, versions: r.versions, updatedAt: r.updated }));
    },
    async versions(name) {
      return (await db.rows<ModelRow>('SELECT * FROM models WHERE name = $1 ORDER BY version', [name])).map(toModel);
    },
    async get(name, version) {
      const r =
        version === undefined
          ? await db.one<ModelRow>('SELECT * FROM models WHERE name = $1 ORDER BY version DESC LIMIT 1', [name])
          : await db.one<ModelRow>('SELECT * FROM models WHERE name = $1 AND version = $2', [name, version]);
      return r && toModel(r);
    },
    async deleteVersion(name, version) {
      return (await db.run('DELETE FROM models WHERE name = $1 AND version = $2', [name, version])) > 0;
    },
    async rollouts(model) {
      type Row = { device_id: string; id: string; version: number; deployment_state: DeploymentState; state: DeviceRolloutState };
      const rows = await db.rows<Row>(
        `SELECT r.device_id, d.id, d.version, d.state AS deployment_state, r.state FROM deployments d JOIN rollouts r ON r.deployment_id = d.id
         WHERE d.model = $1 AND d.state != 'rolled-back' AND r.state = ANY($2::text[]) AND ${VERSION_EXISTS} ORDER BY d.seq DESC, r.device_id`,
        [model, MEMBERS_AND_WAITING],
      );
      return rows.map((r): ModelRolloutRecord => ({ deviceId: r.device_id, deploymentId: r.id, version: r.version, deploymentState: r.deployment_state, state: r.state }));
    },
  };
}

// ---------------------------------------------------------------- deployments

function deployments(db: Db): DeploymentRepository {
  /** The deployments with their device rows (by device id), in one query for all of them. */
  const withDevices = async (rows: DeploymentRow[]): Promise<DeploymentRecord[]> => {
    if (rows.length === 0) return [];
    const rollouts = await db.rows<RolloutRow>('SELECT deployment_id, device_id, state, reason, updated_at FROM rollouts WHERE deployment_id = ANY($1::text[]) ORDER BY deployment_id, device_id', [rows.map((r) => r.id)]);
    const byDeployment = groupBy(rollouts, (x) => x.deployment_id);
    return rows.map((r) => ({
      ...toDeploymentInfo(r),
      devices: (byDeployment.get(r.id) ?? []).map((x): DeploymentDeviceRecord => ({ deviceId: x.device_id, state: x.state, reason: x.reason, updatedAt: x.updated_at })),
    }));
  };
  const get = async (id: string) => {
    const r = await db.one<DeploymentRow>('SELECT * FROM deployments WHERE id = $1', [id]);
    return r && (await withDevices([r]))[0];
  };
  return {
    async create(d: NewDeployment, at) {
      await db.atomic(async (tx) => {
        await tx.run('INSERT INTO deployments (id, model, version, sha256, state, selector, strategy, serving, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
          d.id,
          d.model,
          d.version,
          d.sha256,
          'in-progress',
          d.selector ? JSON.stringify(d.selector) : null,
          d.strategy ? JSON.stringify(d.strategy) : null,
          d.serving ? JSON.stringify(d.serving) : null,
          at,
        ]);
        if (d.deviceIds.length > 0) {
          await tx.run('INSERT INTO rollouts (deployment_id, device_id, state, reason, updated_at) SELECT $1, device_id, $3, NULL, $4 FROM unnest($2::text[]) AS u(device_id)', [d.id, d.deviceIds, d.initialState ?? 'pending', at]);
        }
      });
      return (await get(d.id))!;
    },
    get,
    async info(id) {
      const r = await db.one<DeploymentRow>('SELECT * FROM deployments WHERE id = $1', [id]);
      return r && toDeploymentInfo(r);
    },
    async rolloutCounts(deploymentId) {
      const rows = await db.rows<{ state: DeviceRolloutState; n: number }>('SELECT state, count(*) AS n FROM rollouts WHERE deployment_id = $1 GROUP BY state', [deploymentId]);
      return Object.fromEntries(rows.map((r) => [r.state, r.n]));
    },
    async list(n = 100) {
      return withDevices(await db.rows<DeploymentRow>('SELECT * FROM deployments ORDER BY seq DESC LIMIT $1', [limit(n)]));
    },
    async lastPerVersion(model) {
      // SQLite gives these in seq order (its plan's); the interface leaves the order open.
      return db.rows<{ id: string; version: number; state: DeploymentState }>('SELECT id, version, state FROM deployments WHERE seq IN (SELECT max(seq) FROM deployments WHERE model = $1 GROUP BY version) ORDER BY seq', [model]);
    },
    async active(recent) {
      return withDevices(await db.rows<DeploymentRow>("SELECT * FROM deployments WHERE state = 'in-progress' OR seq IN (SELECT seq FROM deployments WHERE state != 'in-progress' ORDER BY seq DESC LIMIT $1) ORDER BY seq DESC", [limit(recent)]));
    },
    async countByState() {
      const rows = await db.rows<{ state: string; n: number }>('SELECT state, count(*) AS n FROM deployments GROUP BY state');
      return Object.fromEntries(rows.map((r) => [r.state, r.n]));
    },
    async forDevice(deviceId) {
      const rows = await db.rows<RolloutJoinRow>(
        `SELECT d.*, r.state AS rollout_state, r.reason AS rollout_reason FROM deployments d JOIN rollouts r ON r.deployment_id = d.id
         WHERE r.device_id = $1 AND r.state = ANY($2::text[]) AND d.state NOT IN ('rolled-back') AND ${VERSION_EXISTS} ORDER BY d.seq DESC`,
        [deviceId, MEMBERS],
      );
      return rows.map((r): DeviceDeployment => ({ ...toDeploymentInfo(r), rollout: { state: r.rollout_state!, reason: r.rollout_reason } }));
    },
    async withSelector(deviceId) {
      const rows = await db.rows<RolloutJoinRow>(
        `SELECT d.*, r.state AS rollout_state, r.reason AS rollout_reason FROM deployments d LEFT JOIN rollouts r ON r.deployment_id = d.id AND r.device_id = $1
         WHERE d.selector IS NOT NULL AND d.state NOT IN ('canceled', 'rolled-back') AND ${VERSION_EXISTS} ORDER BY d.seq`,
        [deviceId],
      );
      return rows.map((r) => ({ ...toDeploymentInfo(r), rollout: r.rollout_state === null ? null : { state: r.rollout_state, reason: r.rollout_reason } }));
    },
    async addRollout(deploymentId, deviceId, at) {
      await db.run(
        "INSERT INTO rollouts (deployment_id, device_id, state, reason, updated_at) VALUES ($1, $2, 'pending', NULL, $3) ON CONFLICT (deployment_id, device_id) DO UPDATE SET state = 'pending', reason = NULL, updated_at = excluded.updated_at",
        [deploymentId, deviceId, at],
      );
    },
    async staged() {
      return withDevices(await db.rows<DeploymentRow>("SELECT * FROM deployments WHERE state = 'in-progress' AND strategy IS NOT NULL ORDER BY seq"));
    },
    async setRolloutState(deploymentId, deviceId, state, reason, at, expected) {
      // SQLite's condition, NULL-safe: a null reason and an empty one count as the same.
      const changed = await db.run(
        "UPDATE rollouts SET state = $1, reason = $2, updated_at = $3 WHERE deployment_id = $4 AND device_id = $5 AND (state IS DISTINCT FROM $1 OR coalesce(reason, '') IS DISTINCT FROM coalesce($2::text, '')) AND ($6::text IS NULL OR state = $6)",
        [state, reason, at, deploymentId, deviceId, expected ?? null],
      );
      return changed > 0;
    },
    async setState(deploymentId, state) {
      await db.run('UPDATE deployments SET state = $1 WHERE id = $2', [state, deploymentId]);
    },
  };
}

// ---------------------------------------------------------------- artifact references

function artifactRefs(db: Db): ArtifactReferences {
  return {
    async referenced(sha256) {
      const r = await db.one(
        "SELECT 1 FROM models WHERE sha256 = $1 OR sample_sha256 = $1 UNION ALL SELECT 1 FROM job_outputs WHERE sha256 = $1 UNION ALL SELECT 1 FROM jobs WHERE spec ->> 'bundleSha256' = $1 UNION ALL SELECT 1 FROM federated_rounds WHERE global_sha256 = $1 OR result_sha256 = $1 LIMIT 1",
        [sha256],
      );
      return r !== undefined;
    },
    async deviceMayFetch(deviceId, sha256) {
      // A deployment to it; the bundle of a job it has a run of; the sample of a version deployed to it.
      const r = await db.one(
        `SELECT 1 FROM deployments d JOIN rollouts r ON r.deployment_id = d.id WHERE r.device_id = $1 AND d.sha256 = $2
         UNION ALL SELECT 1 FROM jobs j JOIN job_runs r ON r.job_id = j.id WHERE r.target = $1 AND j.spec ->> 'bundleSha256' = $2
         UNION ALL SELECT 1 FROM deployments d JOIN rollouts r ON r.deployment_id = d.id JOIN models m ON m.name = d.model AND m.version = d.version WHERE r.device_id = $1 AND m.sample_sha256 = $2
         UNION ALL SELECT 1 FROM federated_rounds f JOIN job_runs r ON r.job_id = f.job_id WHERE r.target = $1 AND f.global_sha256 = $2
         LIMIT 1`,
        [deviceId, sha256],
      );
      return r !== undefined;
    },
  };
}

// ---------------------------------------------------------------- health

function health(db: Db): HealthRepository {
  return {
    add(samples, bucketMs, latest = []) {
      return db.atomic(async (tx) => {
        if (latest.length > 0) {
          // One UPDATE for all: the last heartbeat given per device wins, as the one-by-one updates would.
          const last = new Map(latest.map((l) => [l.deviceId, l]));
          const ls = [...last.values()];
          await tx.run('UPDATE devices SET health = u.health::json, last_seen = u.at FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, health, at) WHERE devices.id = u.id', [
            ls.map((l) => l.deviceId),
            ls.map((l) => JSON.stringify(l.health)),
            ls.map((l) => l.at),
          ]);
        }
        if (samples.length === 0) return;
        const col = <K extends keyof HealthSample>(xs: HealthSample[], k: K) => xs.map((s) => s[k]);
        await tx.run(
          `INSERT INTO health_samples (device_id, ts, cpu, mem_used, mem_total, rss, req_rate, err_rate, p50, p99)
           SELECT device_id, ts, cpu, mem_used, mem_total, rss, req_rate, err_rate, p50, p99
           FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[])
             WITH ORDINALITY AS u(device_id, ts, cpu, mem_used, mem_total, rss, req_rate, err_rate, p50, p99, i)
           ORDER BY i`,
          [col(samples, 'deviceId'), col(samples, 'ts'), col(samples, 'cpu'), col(samples, 'memUsed'), col(samples, 'memTotal'), col(samples, 'rss'), col(samples, 'reqRate'), col(samples, 'errRate'), col(samples, 'p50'), col(samples, 'p99')],
        );
        // Rollups: one upsert may touch a bucket once, so samples go in rounds, the k-th sample of
        // each bucket in round k: every bucket adds its samples in the order given, as SQLite's
        // one-by-one upserts do (the same sums, to the last bit).
        const rounds: HealthSample[][] = [];
        const seen = new Map<string, number>();
        for (const s of samples) {
          const key = `${s.deviceId}\u0000${s.ts - (s.ts % bucketMs)}`;
          const k = seen.get(key) ?? 0;
          seen.set(key, k + 1);
          (rounds[k] ??= []).push(s);
        }
        for (const round of rounds) {
          await tx.run(
            `INSERT INTO health_rollups (device_id, bucket, n, cpu, mem_used, mem_total, rss, req_rate, err_rate, n_lat, p50, p99)
             SELECT device_id, bucket, 1, cpu, mem_used, mem_total, rss, req_rate, err_rate, n_lat, p50, p99
             FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::bigint[], $10::float8[], $11::float8[])
               AS u(device_id, bucket, cpu, mem_used, mem_total, rss, req_rate, err_rate, n_lat, p50, p99)
             ON CONFLICT (device_id, bucket) DO UPDATE SET n = health_rollups.n + 1, cpu = health_rollups.cpu + excluded.cpu,
               mem_used = health_rollups.mem_used + excluded.mem_used, mem_total = excluded.mem_total, rss = health_rollups.rss + excluded.rss,
               req_rate = health_rollups.req_rate + excluded.req_rate, err_rate = health_rollups.err_rate + excluded.err_rate,
               n_lat = health_rollups.n_lat + excluded.n_lat, p50 = health_rollups.p50 + excluded.p50,
               p99 = greatest(health_rollups.p99, excluded.p99)`,
            [
              col(round, 'deviceId'),
              round.map((s) => s.ts - (s.ts % bucketMs)),
              col(round, 'cpu'),
              col(round, 'memUsed'),
              col(round, 'memTotal'),
              col(round, 'rss'),
              col(round, 'reqRate'),
              col(round, 'errRate'),
              round.map((s) => (s.p50 === null ? 0 : 1)),
              round.map((s) => s.p50 ?? 0),
              col(round, 'p99'),
            ],
          );
        }
      });
    },
    async samples(deviceId, sinceMs) {
      type Row = { device_id: string; ts: number; cpu: number; mem_used: number; mem_total: number; rss: number; req_rate: number; err_rate: number; p50: number | null; p99: number | null };
      const rows = await db.rows<Row>('SELECT * FROM health_samples WHERE device_id = $1 AND ts >= $2 ORDER BY ts, id', [deviceId, sinceMs]);
      return rows.map((r): HealthSample => ({
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
    },
    async rollups(deviceId, sinceMs, untilMs, bucketMs) {
      type Row = { device_id: string; bucket: number; n: number; cpu: number; mem_used: number; mem_total: number; rss: number; req_rate: number; err_rate: number; n_lat: number; p50: number; p99: number | null };
      const rows = await db.rows<Row>('SELECT * FROM health_rollups WHERE device_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket', [deviceId, sinceMs, untilMs]);
      // Buckets hold sums; a point is their average, placed at the bucket's middle.
      return rows.map((r): HealthSample => ({
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
    },
    async prune(samplesBefore, rollupsBefore) {
      await db.run('DELETE FROM health_samples WHERE ts < $1', [samplesBefore]);
      await db.run('DELETE FROM health_rollups WHERE bucket < $1', [rollupsBefore]);
    },
    async deleteDevice(deviceId) {
      await db.run('DELETE FROM health_samples WHERE device_id = $1', [deviceId]);
      await db.run('DELETE FROM health_rollups WHERE device_id = $1', [deviceId]);
    },
  };
}

// ---------------------------------------------------------------- jobs

function jobs(db: Db): JobRepository {
  /** The jobs with their runs (by rank), in one query for all of them. */
  const withRuns = async (rows: JobRow[]): Promise<JobRecord[]> => {
    if (rows.length === 0) return [];
    const runs = await db.rows<RunRow>('SELECT * FROM job_runs WHERE job_id = ANY($1::text[]) ORDER BY job_id, rank', [rows.map((r) => r.id)]);
    const byJob = groupBy(runs, (x) => x.job_id);
    return rows.map((r) => toJob(r, (byJob.get(r.id) ?? []).map(toRun)));
  };
  const get = async (id: string) => {
    const r = await db.one<JobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
    return r && (await withRuns([r]))[0];
  };
  return {
    async create(id, spec, at) {
      await db.run("INSERT INTO jobs (id, state, spec, created_at) VALUES ($1, 'queued', $2, $3)", [id, JSON.stringify(spec), at]);
      return (await get(id))!;
    },
    get,
    async list(n = 100) {
      return withRuns(await db.rows<JobRow>('SELECT * FROM jobs ORDER BY seq DESC LIMIT $1', [limit(n)]));
    },
    async inState(state) {
      return withRuns(await db.rows<JobRow>('SELECT * FROM jobs WHERE state = $1 ORDER BY seq', [state]));
    },
    async setState(id, state, at, error = null) {
      await db.run(
        `UPDATE jobs SET state = $1, started_at = CASE WHEN $1::text = 'running' THEN $2::bigint ELSE started_at END,
         finished_at = CASE WHEN $1::text IN ${FINISHED} THEN $2::bigint ELSE finished_at END, error = coalesce($3::text, error) WHERE id = $4`,
        [state, at, error, id],
      );
    },
    async setModel(id, model) {
      await db.run('UPDATE jobs SET model = $1 WHERE id = $2', [JSON.stringify(model), id]);
    },
    async addRuns(jobId, runs, at) {
      if (runs.length === 0) return;
      await db.run("INSERT INTO job_runs (job_id, rank, target, state, started_at) SELECT $1, rank, target, 'starting', $4 FROM unnest($2::bigint[], $3::text[]) AS u(rank, target)", [
        jobId,
        runs.map((r) => r.rank),
        runs.map((r) => r.target),
        at,
      ]);
    },
    async setRunRendezvous(jobId, rank, point) {
      return (await db.run('UPDATE job_runs SET rendezvous = $1 WHERE job_id = $2 AND rank = $3 AND rendezvous IS NULL', [JSON.stringify({ addr: point.addr, port: point.port }), jobId, rank])) > 0;
    },
    async setRunState(jobId, rank, state, at, exitCode = null, error = null) {
      const changed = await db.run(
        `UPDATE job_runs SET state = $1, exit_code = coalesce($2::bigint, exit_code), error = coalesce($3::text, error),
         finished_at = CASE WHEN $1::text IN ${FINISHED} THEN $4::bigint ELSE finished_at END
         WHERE job_id = $5 AND rank = $6 AND state NOT IN ${FINISHED} AND state IS DISTINCT FROM $1::text`,
        [state, exitCode, error, at, jobId, rank],
      );
      return changed > 0;
    },
    appendLogs(jobId, lines, maxLines) {
      if (lines.length === 0) return Promise.resolve([]);
      return db.atomic(async (tx) => {
        // Appenders to one job take turns (on its row; on an advisory lock should there be none),
        // so each reads the seq the one before it left.
        const locked = await tx.one('SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE', [jobId]);
        if (!locked) await tx.run('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_SPACE + LOCK_JOB_LOGS, jobId]);
        let seq = (await tx.one<{ n: number }>('SELECT coalesce(max(seq), 0) AS n FROM job_logs WHERE job_id = $1', [jobId]))!.n;
        const kept: JobLogLine[] = [];
        for (const l of lines) {
          if (seq >= maxLines) break;
          seq++;
          kept.push({ ...l, seq });
        }
        if (kept.length > 0) {
          await tx.run('INSERT INTO job_logs (job_id, seq, rank, ts, stream, text) SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::float8[], $5::text[], $6::bytea[])', [
            jobId,
            kept.map((l) => l.seq),
            kept.map((l) => l.rank),
            kept.map((l) => l.ts),
            kept.map((l) => l.stream),
            kept.map((l) => Buffer.from(l.text, 'utf8')),
          ]);
        }
        return kept;
      });
    },
    async logs(jobId, afterSeq, n) {
      const rows = await db.rows<Omit<JobLogLine, 'text'> & { text: Buffer }>('SELECT seq, rank, ts, stream, text FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [jobId, afterSeq, limit(n)]);
      return rows.map((r): JobLogLine => ({ seq: r.seq, rank: r.rank, ts: r.ts, stream: r.stream, text: r.text.toString('utf8') }));
    },
    async addMetrics(jobId, points) {
      if (points.length === 0) return;
      await db.run(
        `INSERT INTO job_metrics (job_id, rank, name, value, step, ts)
         SELECT $1, rank, name, value, step, ts FROM unnest($2::bigint[], $3::text[], $4::float8[], $5::float8[], $6::bigint[]) WITH ORDINALITY AS u(rank, name, value, step, ts, i) ORDER BY i`,
        [jobId, points.map((p) => p.rank), points.map((p) => p.name), points.map((p) => p.value), points.map((p) => p.step), points.map((p) => p.ts)],
      );
    },
    metrics(jobId) {
      return db.rows<JobMetricRecord>('SELECT rank, name, value, step, ts FROM job_metrics WHERE job_id = $1 ORDER BY id', [jobId]);
    },
    metricSummary(jobId) {
      return db.rows<{ name: string; latest: number; step: number | null; lowest: number; highest: number }>(
        'SELECT g.name, m.value AS latest, m.step, g.lowest, g.highest FROM (SELECT name, min(value) AS lowest, max(value) AS highest, max(id) AS last FROM job_metrics WHERE job_id = $1 GROUP BY name) g JOIN job_metrics m ON m.id = g.last ORDER BY g.name',
        [jobId],
      );
    },
    async countRunRecords(jobId, rank) {
      return (await db.one<{ logs: number; metrics: number; outputs: number }>(
        `SELECT (SELECT count(*) FROM job_logs WHERE job_id = $1 AND rank = $2) AS logs, (SELECT count(*) FROM job_metrics WHERE job_id = $1 AND rank = $2) AS metrics,
         (SELECT count(*) FROM job_outputs WHERE job_id = $1 AND rank = $2) AS outputs`,
        [jobId, rank],
      ))!;
    },
    async addOutput(jobId, o: JobOutputRecord) {
      // SQLite's INSERT OR REPLACE.
      await db.run('INSERT INTO job_outputs (job_id, rank, path, sha256, size) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, rank, path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size', [
        jobId,
        o.rank,
        o.path,
        o.sha256,
        o.size,
      ]);
    },
    outputs(jobId, ranks) {
      if (ranks) return db.rows<JobOutputRecord>('SELECT rank, path, sha256, size FROM job_outputs WHERE job_id = $1 AND rank = ANY($2::bigint[]) ORDER BY rank, path', [jobId, [...ranks]]);
      return db.rows<JobOutputRecord>('SELECT rank, path, sha256, size FROM job_outputs WHERE job_id = $1 ORDER BY rank, path', [jobId]);
    },
    latestMetrics(jobId, ranks) {
      return db.rows<{ rank: number; name: string; value: number }>('SELECT DISTINCT ON (rank, name) rank, name, value FROM job_metrics WHERE job_id = $1 AND rank = ANY($2::bigint[]) ORDER BY rank, name, id DESC', [jobId, [...ranks]]);
    },
    async busyTargets() {
      const rows = await db.rows<{ target: string }>("SELECT DISTINCT r.target FROM job_runs r JOIN jobs j ON j.id = r.job_id WHERE j.state = 'running' AND r.state IN ('starting', 'running')");
      return new Set(rows.map((r) => r.target));
    },
  };
}

// ---------------------------------------------------------------- federated rounds

function rounds(db: Db): RoundRepository {
  const values = ROUND_COLUMNS.split(',').map((_, i) => `$${i + 1}`).join(', ');
  const updates = ROUND_COLUMNS.split(', ').slice(3).map((c) => `${c} = excluded.${c}`).join(', ');
  return {
    async put(r) {
      await db.run(`INSERT INTO federated_rounds (${ROUND_COLUMNS}) VALUES (${values}) ON CONFLICT (job_id, round, attempt) DO UPDATE SET ${updates}`, roundValues(r));
    },
    async list(jobId) {
      return (await db.rows<RoundRow>('SELECT * FROM federated_rounds WHERE job_id = $1 ORDER BY round, attempt', [jobId])).map((r) => toRound(r));
    },
  };
}

// ---------------------------------------------------------------- audit

function audit(db: Db): AuditRepository {
  return {
    append(e, keep) {
      const a = e.actor;
      const [actorId, actorName] = a.kind === 'token' ? [a.id, a.name] : a.kind === 'device' ? [a.id, a.id] : [null, 'relay'];
      return db.atomic(async (tx) => {
        // Appends take turns, so seqs are given in commit order and none is in flight below the
        // newest: the trim below keeps the newest `keep` (as SQLite's single writer does).
        await tx.run('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_SPACE + LOCK_AUDIT]);
        const { seq } = (await tx.one<{ seq: number }>(
          'INSERT INTO audit_log (ts, actor_kind, actor_id, actor_name, action, target, outcome, status, address, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq',
          [e.ts, a.kind, actorId, actorName, e.action, e.target, e.outcome, e.status, e.address, e.detail ? JSON.stringify(e.detail) : null],
        ))!;
        // seq only grows, so the newest `keep` are those above seq - keep.
        await tx.run('DELETE FROM audit_log WHERE seq <= $1', [seq - keep]);
        return { ...e, seq };
      });
    },
    async list(q) {
      const rows = await db.rows<AuditRow>('SELECT * FROM audit_log WHERE ts >= $1 AND seq < $2 ORDER BY seq DESC LIMIT $3', [q.since ?? 0, q.before ?? Number.MAX_SAFE_INTEGER, limit(q.limit)]);
      return rows.map(toAudit);
    },
  };
}

// ---------------------------------------------------------------- the store

function repositories(db: Db): Repositories {
  return {
    tokens: apiTokens(db),
    enrollment: enrollment(db),
    devices: devices(db),
    models: models(db),
    deployments: deployments(db),
    artifactRefs: artifactRefs(db),
    health: health(db),
    jobs: jobs(db),
    rounds: rounds(db),
    audit: audit(db),
  };
}

export class PostgresStore extends RepositoryStore {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  /** Connections that hold `exclusive` keys: at most this many pieces of exclusive work at once. */
  readonly #locks: pg.Pool;
  readonly #log: Logger | undefined;

  private constructor(pool: pg.Pool, locks: pg.Pool, log: Logger | undefined) {
    super(repositories(poolDb(pool, log)));
    this.#pool = pool;
    this.#locks = locks;
    this.#log = log;
  }

  /** Connects (a pool of at most `max` connections) and brings the schema up to date. */
  static async open(url: string, opts: { log?: Logger; max?: number } = {}): Promise<PostgresStore> {
    // A server that never answers fails the start (or a query) after 10 s instead of hanging it.
    const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: 'outpost-relay', types: TYPES, connectionTimeoutMillis: 10_000 });
    // An idle connection that fails (the server restarted, a network cut) is dropped by the pool
    // and a new one made when needed; without a listener its error would crash the process.
    pool.on('error', (err) => opts.log?.warn({ err }, 'PostgreSQL: an idle connection failed'));
    try {
      const client = await pool.connect();
      const onError = (err: Error) => opts.log?.warn({ err }, 'PostgreSQL: the connection failed while migrating');
      client.on('error', onError);
      let failed: Error | undefined;
      try {
        const { from, to } = await migratePostgres(client);
        if (from !== to) opts.log?.info({ from, to }, 'PostgreSQL: schema migrated');
      } catch (err) {
        failed = err as Error;
        throw err;
      } finally {
        client.removeListener('error', onError);
        client.release(failed);
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    const locks = new pg.Pool({ connectionString: url, max: 8, application_name: 'outpost-relay locks', connectionTimeoutMillis: 10_000 });
    locks.on('error', (err) => opts.log?.warn({ err }, 'PostgreSQL: an idle lock connection failed'));
    return new PostgresStore(pool, locks, opts.log);
  }

  /**
   * Serializable: work that reads, decides and writes (a token name that must be free, a job
   * still queued) cannot interleave with another relay's. One that loses a race runs again, so
   * its work must be store calls only (side effects after it returns).
   */
  async transaction<T>(work: (tx: Repositories) => Promise<T>): Promise<T> {
    const inside = openTransaction.get();
    if (inside) return work(repositories(inside));
    for (let attempt = 1; ; attempt++) {
      try {
        return await inTransaction(this.#pool, this.#log, (db) => work(repositories(db)), 'BEGIN ISOLATION LEVEL SERIALIZABLE');
      } catch (err) {
        if (attempt >= MAX_TRIES || !RETRYABLE.has((err as { code?: string }).code ?? '')) throw err;
      }
    }
  }

  /**
   * A session advisory lock on the key's hash, on a connection of the lock pool (not the one
   * `work`'s store calls use, so work waiting for a connection never holds up a lock): every
   * relay waits for it. Store calls inside `work` run as they would outside it, each seeing what
   * was committed before it.
   */
  protected async lockKey<T>(key: string, work: () => Promise<T>): Promise<T> {
    const client = await this.#locks.connect();
    let broken: Error | undefined;
    const onError = (err: Error) => (broken = err);
    client.on('error', onError);
    try {
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [key]);
      try {
        return await work();
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]).catch((err: Error) => (broken ??= err));
      }
    } finally {
      client.removeListener('error', onError);
      // A connection whose unlock failed may still hold the lock: destroyed, its session ends.
      client.release(broken ?? false);
    }
  }

  async close(): Promise<void> {
    await this.#locks.end();
    await this.#pool.end();
  }
}
