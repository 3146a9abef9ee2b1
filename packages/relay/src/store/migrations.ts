// Schema migrations, applied in order; `user_version` records how far a database has come.

import type Database from 'better-sqlite3';

export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, role TEXT NOT NULL, created_at INTEGER NOT NULL
  );
  CREATE TABLE enroll_tokens (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL, labels TEXT NOT NULL, expires_at INTEGER NOT NULL,
    used_at INTEGER, device_id TEXT
  );
  CREATE TABLE devices (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL, secret_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL, online INTEGER NOT NULL DEFAULT 0, last_seen INTEGER,
    health TEXT, reported TEXT
  );
  CREATE TABLE models (
    name TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    signature TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (name, version)
  );
  CREATE INDEX models_sha ON models (sha256);
  CREATE TABLE deployments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, model TEXT NOT NULL,
    version INTEGER NOT NULL, sha256 TEXT NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL
  );
  CREATE TABLE rollouts (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    state TEXT NOT NULL, reason TEXT, updated_at INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, device_id)
  );
  CREATE INDEX rollouts_device ON rollouts (device_id);
  `,
  `
  CREATE TABLE health_samples (
    device_id TEXT NOT NULL, ts INTEGER NOT NULL, cpu REAL NOT NULL, mem_used REAL NOT NULL,
    mem_total REAL NOT NULL, rss REAL NOT NULL, req_rate REAL NOT NULL, err_rate REAL NOT NULL,
    p50 REAL, p99 REAL
  );
  CREATE INDEX health_samples_device_ts ON health_samples (device_id, ts);
  CREATE INDEX health_samples_ts ON health_samples (ts);
  CREATE TABLE health_rollups (
    device_id TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
    cpu REAL NOT NULL, mem_used REAL NOT NULL, mem_total REAL NOT NULL, rss REAL NOT NULL,
    req_rate REAL NOT NULL, err_rate REAL NOT NULL, n_lat INTEGER NOT NULL, p50 REAL NOT NULL, p99 REAL,
    PRIMARY KEY (device_id, bucket)
  );
  CREATE INDEX health_rollups_bucket ON health_rollups (bucket);
  `,
  `
  ALTER TABLE devices ADD COLUMN training_attached INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN accepts_training INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN datasets TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE models ADD COLUMN lineage TEXT;
  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, spec TEXT NOT NULL,
    created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, error TEXT, model TEXT
  );
  CREATE INDEX jobs_state ON jobs (state);
  CREATE TABLE job_runs (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, rank INTEGER NOT NULL, target TEXT NOT NULL,
    state TEXT NOT NULL, exit_code INTEGER, error TEXT, started_at INTEGER, finished_at INTEGER,
    PRIMARY KEY (job_id, rank)
  );
  CREATE INDEX job_runs_target ON job_runs (target, state);
  CREATE TABLE job_logs (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, rank INTEGER NOT NULL, ts INTEGER NOT NULL,
    stream TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (job_id, seq)
  );
  CREATE TABLE job_metrics (
    job_id TEXT NOT NULL, rank INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL, step REAL, ts INTEGER NOT NULL
  );
  CREATE INDEX job_metrics_job ON job_metrics (job_id, name);
  CREATE TABLE job_outputs (
    job_id TEXT NOT NULL, rank INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (job_id, rank, path)
  );
  `,
  `
  ALTER TABLE deployments ADD COLUMN selector TEXT;
  `,
  `
  ALTER TABLE deployments ADD COLUMN strategy TEXT;
  `,
  // A deployment's state is recounted from its devices' states on every change: from the index alone.
  `
  CREATE INDEX rollouts_deployment_state ON rollouts (deployment_id, state);
  `,
  // How devices serve the deployment's model (ServingConfig JSON): batching, session options.
  `
  ALTER TABLE deployments ADD COLUMN serving TEXT;
  `,
  // Labels come from the admin: a device may add its own only when its token says so.
  `
  ALTER TABLE enroll_tokens ADD COLUMN allow_device_labels INTEGER NOT NULL DEFAULT 0;
  `,
  // A version's sample request (an artifact) and the outcome of its push-time self-test (JSON).
  `
  ALTER TABLE models ADD COLUMN sample_sha256 TEXT;
  ALTER TABLE models ADD COLUMN sample_size INTEGER;
  ALTER TABLE models ADD COLUMN self_test TEXT;
  `,
  // Model versions can be deleted: the highest number each name has had is kept, so a number
  // never names two files. Whether a file is still referenced is asked by sha256.
  `
  CREATE TABLE model_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
  INSERT INTO model_names (name, last_version) SELECT name, max(version) FROM models GROUP BY name;
  CREATE INDEX job_outputs_sha ON job_outputs (sha256);
  `,
  // Each device's certificate: the serial it was last issued and the one before (still good
  // until the device has switched to the new one), when the newest was issued and ends, and `devices rotate`'s
  // time (a certificate issued before it is renewed at once).
  `
  ALTER TABLE devices ADD COLUMN cert_serial TEXT;
  ALTER TABLE devices ADD COLUMN cert_previous_serial TEXT;
  ALTER TABLE devices ADD COLUMN cert_expires_at INTEGER;
  ALTER TABLE devices ADD COLUMN cert_renew_before INTEGER;
  ALTER TABLE devices ADD COLUMN cert_issued_at INTEGER;
  `,
  // API tokens get roles (the first admin token keeps `admin`), an expiry, revocation and when
  // they were last used. The audit log is append-only: SQLite itself refuses an UPDATE of it;
  // the only DELETE drops the oldest entries past its bound (store.appendAudit).
  `
  ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
  ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
  ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
  CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, actor_kind TEXT NOT NULL, actor_id TEXT,
    actor_name TEXT NOT NULL, action TEXT NOT NULL, target TEXT, outcome TEXT NOT NULL, status INTEGER,
    address TEXT, detail TEXT
  );
  CREATE INDEX audit_log_ts ON audit_log (ts);
  CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  `,
  // Federated jobs: each attempt at each round, with the global model it started from and the
  // average it made (both artifacts), who was asked, who counted and who was dropped, and why.
  // An N-node job's rank 0 reports where the other ranks reach it (its run's rendezvous).
  `
  CREATE TABLE federated_rounds (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, round INTEGER NOT NULL, attempt INTEGER NOT NULL,
    state TEXT NOT NULL, global_sha256 TEXT NOT NULL, result_sha256 TEXT, clients TEXT NOT NULL, participants TEXT NOT NULL,
    dropped TEXT NOT NULL, metrics TEXT NOT NULL, started_at INTEGER NOT NULL, deadline_at INTEGER NOT NULL,
    finished_at INTEGER, error TEXT, PRIMARY KEY (job_id, round, attempt)
  );
  CREATE INDEX federated_rounds_global ON federated_rounds (global_sha256);
  CREATE INDEX federated_rounds_result ON federated_rounds (result_sha256);
  ALTER TABLE job_runs ADD COLUMN rendezvous TEXT;
  `,
  // What devices compute on, as their agents' status says (JSON arrays of names).
  `
  ALTER TABLE devices ADD COLUMN accelerators TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE devices ADD COLUMN execution_providers TEXT NOT NULL DEFAULT '[]';
  `,
];

/** The version a database migrated by this relay is at (its `user_version`). */
export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS.length;

export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < SQLITE_MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(SQLITE_MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
