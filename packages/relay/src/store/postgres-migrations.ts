// PostgreSQL schema migrations, applied in order at open; `schema_migrations` records which ran.
// Version 1 is SQLite's final schema (migrations.ts, every step folded in). Types:
// ms timestamps, sizes and counts BIGINT (read back as JS numbers: see postgres-store.ts), REAL
// DOUBLE PRECISION, SQLite's 0/1 flags BOOLEAN, JSON fields JSON (kept as the text written, so
// records and their key order stay exactly as on SQLite), every TEXT column COLLATE "C" so that
// comparisons and ORDER BY go by code point like SQLite's BINARY collation, whatever the
// database's locale. `seq` columns are identities; where SQLite orders by rowid (job metrics,
// and ties in health samples) an identity column stands in for it.

import type pg from 'pg';

/** Takes the place of `TEXT` in the DDL below. */
const T = 'TEXT COLLATE "C"';

export const POSTGRES_MIGRATIONS: string[] = [
  `
  CREATE TABLE api_tokens (
    id ${T} PRIMARY KEY, name ${T} NOT NULL, hash ${T} NOT NULL, role ${T} NOT NULL, created_at BIGINT NOT NULL,
    expires_at BIGINT, revoked_at BIGINT, last_used_at BIGINT
  );
  CREATE TABLE enroll_tokens (
    id ${T} PRIMARY KEY, hash ${T} NOT NULL, labels JSON NOT NULL, expires_at BIGINT NOT NULL,
    used_at BIGINT, device_id ${T}, allow_device_labels BOOLEAN NOT NULL DEFAULT false
  );
  CREATE TABLE devices (
    id ${T} PRIMARY KEY, name ${T} NOT NULL, labels JSON NOT NULL, secret_hash ${T} NOT NULL,
    created_at BIGINT NOT NULL, online BOOLEAN NOT NULL DEFAULT false, last_seen BIGINT,
    health JSON, reported JSON,
    training_attached BOOLEAN NOT NULL DEFAULT false, accepts_training BOOLEAN NOT NULL DEFAULT false,
    datasets JSON NOT NULL DEFAULT '[]',
    cert_serial ${T}, cert_previous_serial ${T}, cert_expires_at BIGINT, cert_renew_before BIGINT, cert_issued_at BIGINT
  );
  CREATE TABLE models (
    name ${T} NOT NULL, version BIGINT NOT NULL, sha256 ${T} NOT NULL, size BIGINT NOT NULL,
    signature JSON NOT NULL, created_at BIGINT NOT NULL, lineage JSON,
    sample_sha256 ${T}, sample_size BIGINT, self_test JSON,
    PRIMARY KEY (name, version)
  );
  CREATE INDEX models_sha ON models (sha256);
  -- The highest number each name has had: a deleted version's number is never given again.
  CREATE TABLE model_names (name ${T} PRIMARY KEY, last_version BIGINT NOT NULL);
  CREATE TABLE deployments (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id ${T} NOT NULL UNIQUE, model ${T} NOT NULL,
    version BIGINT NOT NULL, sha256 ${T} NOT NULL, state ${T} NOT NULL, created_at BIGINT NOT NULL,
    selector JSON, strategy JSON, serving JSON
  );
  CREATE TABLE rollouts (
    deployment_id ${T} NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    device_id ${T} NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    state ${T} NOT NULL, reason ${T}, updated_at BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, device_id)
  );
  CREATE INDEX rollouts_device ON rollouts (device_id);
  CREATE INDEX rollouts_deployment_state ON rollouts (deployment_id, state);

  CREATE TABLE health_samples (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id ${T} NOT NULL, ts BIGINT NOT NULL, cpu DOUBLE PRECISION NOT NULL, mem_used DOUBLE PRECISION NOT NULL,
    mem_total DOUBLE PRECISION NOT NULL, rss DOUBLE PRECISION NOT NULL, req_rate DOUBLE PRECISION NOT NULL,
    err_rate DOUBLE PRECISION NOT NULL, p50 DOUBLE PRECISION, p99 DOUBLE PRECISION
  );
  CREATE INDEX health_samples_device_ts ON health_samples (device_id, ts, id);
  CREATE INDEX health_samples_ts ON health_samples (ts);
  CREATE TABLE health_rollups (
    device_id ${T} NOT NULL, bucket BIGINT NOT NULL, n BIGINT NOT NULL,
    cpu DOUBLE PRECISION NOT NULL, mem_used DOUBLE PRECISION NOT NULL, mem_total DOUBLE PRECISION NOT NULL,
    rss DOUBLE PRECISION NOT NULL, req_rate DOUBLE PRECISION NOT NULL, err_rate DOUBLE PRECISION NOT NULL,
    n_lat BIGINT NOT NULL, p50 DOUBLE PRECISION NOT NULL, p99 DOUBLE PRECISION,
    PRIMARY KEY (device_id, bucket)
  );
  CREATE INDEX health_rollups_bucket ON health_rollups (bucket);

  CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id ${T} NOT NULL UNIQUE, state ${T} NOT NULL, spec JSON NOT NULL,
    created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT, error ${T}, model JSON
  );
  CREATE INDEX jobs_state ON jobs (state);
  -- deviceMayFetch and referenced ask for a bundle by the sha256 inside the spec.
  CREATE INDEX jobs_bundle ON jobs ((spec ->> 'bundleSha256'));
  CREATE TABLE job_runs (
    job_id ${T} NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, rank BIGINT NOT NULL, target ${T} NOT NULL,
    state ${T} NOT NULL, exit_code BIGINT, error ${T}, started_at BIGINT, finished_at BIGINT,
    PRIMARY KEY (job_id, rank)
  );
  CREATE INDEX job_runs_target ON job_runs (target, state);
  -- A line's ts is the device's (any number, as SQLite keeps it) and its text the process's
  -- output as UTF-8 bytes: TEXT cannot hold the NUL characters a program may print.
  CREATE TABLE job_logs (
    job_id ${T} NOT NULL, seq BIGINT NOT NULL, rank BIGINT NOT NULL, ts DOUBLE PRECISION NOT NULL,
    stream ${T} NOT NULL, text BYTEA NOT NULL, PRIMARY KEY (job_id, seq)
  );
  CREATE TABLE job_metrics (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id ${T} NOT NULL, rank BIGINT NOT NULL, name ${T} NOT NULL, value DOUBLE PRECISION NOT NULL,
    step DOUBLE PRECISION, ts BIGINT NOT NULL
  );
  CREATE INDEX job_metrics_job ON job_metrics (job_id, name);
  CREATE TABLE job_outputs (
    job_id ${T} NOT NULL, rank BIGINT NOT NULL, path ${T} NOT NULL, sha256 ${T} NOT NULL, size BIGINT NOT NULL,
    PRIMARY KEY (job_id, rank, path)
  );
  CREATE INDEX job_outputs_sha ON job_outputs (sha256);

  -- Append-only: an UPDATE is refused; the only DELETE drops the oldest entries past the bound.
  CREATE TABLE audit_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts BIGINT NOT NULL, actor_kind ${T} NOT NULL, actor_id ${T},
    actor_name ${T} NOT NULL, action ${T} NOT NULL, target ${T}, outcome ${T} NOT NULL, status BIGINT,
    address ${T}, detail JSON
  );
  CREATE INDEX audit_log_ts ON audit_log (ts);
  CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
  CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
  `,
  // Several relays: the fleet stream's events, numbered here so that every relay sends the same
  // seqs in the same order (cluster/pg-event-log.ts). `stream_head` is the last seq given; a
  // writer takes its numbers with an UPDATE of it, whose row lock makes commit order seq order.
  // Seqs start at the time the table is made (ms), as one relay's start at its start time.
  `
  CREATE TABLE stream_head (id INT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
  INSERT INTO stream_head VALUES (1, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
  CREATE TABLE stream_events (seq BIGINT PRIMARY KEY, origin ${T} NOT NULL, message JSON NOT NULL);
  `,
  // Federated jobs: each attempt at each round, and rank 0's rendezvous (migrations.ts says what the columns hold).
  `
  CREATE TABLE federated_rounds (
    job_id ${T} NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, round BIGINT NOT NULL, attempt BIGINT NOT NULL,
    state ${T} NOT NULL, global_sha256 ${T} NOT NULL, result_sha256 ${T}, clients JSON NOT NULL, participants JSON NOT NULL,
    dropped JSON NOT NULL, metrics JSON NOT NULL, started_at BIGINT NOT NULL, deadline_at BIGINT NOT NULL,
    finished_at BIGINT, error ${T}, PRIMARY KEY (job_id, round, attempt)
  );
  CREATE INDEX federated_rounds_global ON federated_rounds (global_sha256);
  CREATE INDEX federated_rounds_result ON federated_rounds (result_sha256);
  ALTER TABLE job_runs ADD COLUMN rendezvous JSON;
  `,
  // What devices compute on, as their agents' status says.
  `
  ALTER TABLE devices ADD COLUMN accelerators JSON NOT NULL DEFAULT '[]';
  ALTER TABLE devices ADD COLUMN execution_providers JSON NOT NULL DEFAULT '[]';
  `,
];

/** Held while migrating, so that two relays opening one database at once take turns. */
const MIGRATION_LOCK = 0x6f75_7470_6f73; // "outpos"

/**
 * Brings the database up to the newest version, in one transaction under an advisory lock: a
 * second relay opening the same database waits, then finds nothing left to do.
 */
export async function migratePostgres(client: pg.ClientBase, migrations: readonly string[] = POSTGRES_MIGRATIONS): Promise<{ from: number; to: number }> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at BIGINT NOT NULL)');
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
    const from = rows[0]?.v ?? 0;
    if (from > migrations.length) {
      throw new Error(`the database's schema is at version ${from}, newer than this relay knows (${migrations.length}): upgrade the relay`);
    }
    for (let v = from; v < migrations.length; v++) {
      await client.query(migrations[v]!);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [v + 1, Date.now()]);
    }
    await client.query('COMMIT');
    return { from, to: migrations.length };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
