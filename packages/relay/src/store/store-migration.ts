// `outpost-relay store migrate`: a stopped relay's SQLite workspace (DATA_DIR/relay.db) copied
// into an empty PostgreSQL database. Tables go in foreign-key order inside one PostgreSQL
// transaction, which commits only once every table read back from PostgreSQL has SQLite's row
// count and checksum: all or nothing.
//
// The source is never changed: relay.db is opened read-only, inside one read transaction (a
// consistent snapshot). One at an older schema is first copied (SQLite's backup API) into a
// temporary file, which is migrated as SqliteStore would and read instead.
//
// Columns are paired by name from both catalogs, so the copy follows the two schemas
// (migrations.ts, postgres-migrations.ts) without a column list of its own; a column on one side
// only stops it. Each value is converted by the PostgreSQL column's type, and the checksum is a
// sha256 over the rows in primary-key order (both engines order text by bytes), each value in one
// canonical text form computed on the SQLite side from the value read there and on the
// PostgreSQL side from its text output.

import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { processAlive, readRuntimeFile, RUNTIME_FILE, type RelayRuntimeFile } from '../data-dir.js';
import { migrate, SQLITE_SCHEMA_VERSION } from './migrations.js';
import { PostgresStore } from './postgres-store.js';
import { redactedUrl, storeOpenFailure } from './store-url.js';

/** Every workspace table, parents before the tables whose foreign keys name them. */
export const MIGRATED_TABLES = [
  'api_tokens',
  'enroll_tokens',
  'devices',
  'models',
  'model_names',
  'deployments',
  'rollouts',
  'health_samples',
  'health_rollups',
  'jobs',
  'job_runs',
  'job_logs',
  'job_metrics',
  'job_outputs',
  'federated_rounds',
  'audit_log',
] as const;

export interface TableResult {
  name: string;
  rows: number;
  /** sha256 (hex) over the table's rows in canonical form, the same on both sides. */
  checksum: string;
}

export interface MigrationResult {
  /** The SQLite file copied. */
  from: string;
  /** The PostgreSQL URL, its password redacted. */
  to: string;
  /** relay.db's schema version as found (older ones were migrated on a copy). */
  sqliteSchemaVersion: number;
  tables: TableResult[];
  rows: number;
}

/** What a caller shows while it runs (the CLI: a line per table on stderr). */
export interface MigrationProgress {
  note?(line: string): void;
  tableStarted?(name: string, rows: number): void;
  rowsCopied?(name: string, done: number): void;
  tableCopied?(name: string, rows: number): void;
}

export interface MigrationOptions {
  dataDir: string;
  url: string;
  /** The option the URL came from, for messages. */
  flag?: string;
  progress?: MigrationProgress;
}

export async function migrateStore(opts: MigrationOptions): Promise<MigrationResult> {
  const { dataDir, url, flag = '--to', progress = {} } = opts;
  const file = join(dataDir, 'relay.db');
  if (!existsSync(dataDir)) throw new Error(`${dataDir} does not exist: give --from the data dir the relay was started with (its --data-dir)`);
  if (!existsSync(file)) throw new Error(`no relay.db in ${dataDir}: give --from the data dir of a relay that keeps its workspace in SQLite (its --data-dir)`);
  refuseRunningRelay(dataDir, progress);
  const source = await openSource(file, progress);
  try {
    const target = await openTarget(url, flag);
    try {
      const tables = await copyAll(source.db, target, url, progress);
      return { from: file, to: redactedUrl(url), sqliteSchemaVersion: source.version, tables, rows: tables.reduce((n, t) => n + t.rows, 0) };
    } finally {
      await target.end().catch(() => undefined);
    }
  } finally {
    source.close();
  }
}

// ---------------------------------------------------------------- the two ends

/** A relay still running on the data dir would go on writing to relay.db after the copy: those writes would be lost. */
function refuseRunningRelay(dataDir: string, progress: MigrationProgress): void {
  let runtime: RelayRuntimeFile | undefined;
  try {
    runtime = readRuntimeFile(dataDir);
  } catch {
    // Half written: a relay starting right now, or one whose disk was full.
    throw new Error(`${join(dataDir, RUNTIME_FILE)} cannot be read (a relay starting?): stop the relay first; if none runs, remove ${RUNTIME_FILE} and migrate again`);
  }
  if (!runtime) return;
  if (processAlive(runtime.pid)) {
    throw new Error(`a relay is running from ${dataDir} (pid ${runtime.pid}, in ${RUNTIME_FILE}): stop the relay first, then migrate (if pid ${runtime.pid} is not the relay, remove ${RUNTIME_FILE})`);
  }
  progress.note?.(`${RUNTIME_FILE} names pid ${runtime.pid}, which is gone (the relay was not stopped cleanly): copying what relay.db holds`);
}

interface Source {
  db: Database.Database;
  /** user_version as found. */
  version: number;
  close(): void;
}

async function openSource(file: string, progress: MigrationProgress): Promise<Source> {
  let db: Database.Database | undefined;
  let version: number;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    version = db.pragma('user_version', { simple: true }) as number;
  } catch (err) {
    db?.close();
    const e = err as { code?: string; message: string };
    const fix = e.code === 'SQLITE_NOTADB' ? "it is not a SQLite database: give --from the relay's data dir" : "run this as the relay's user (or root)";
    throw new Error(`cannot read ${file}: ${e.message}: ${fix}`);
  }
  if (version > SQLITE_SCHEMA_VERSION) {
    db.close();
    throw new Error(`${file} is at schema version ${version}, newer than this outpost-relay knows (${SQLITE_SCHEMA_VERSION}): migrate with the outpost-relay that wrote it`);
  }
  if (version === SQLITE_SCHEMA_VERSION) return { db, version, close: () => db.close() };
  // Older: brought up to date on a copy, the source left as it is.
  const dir = mkdtempSync(join(tmpdir(), 'outpost-migrate-'));
  const copyFile = join(dir, 'relay.db');
  try {
    await db.backup(copyFile);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot copy ${file} to ${copyFile} to bring its schema up to date: ${(err as Error).message}: free space in ${tmpdir()} (or set TMPDIR)`);
  } finally {
    db.close();
  }
  const copy = new Database(copyFile);
  migrate(copy);
  progress.note?.(`relay.db is at schema version ${version} of ${SQLITE_SCHEMA_VERSION}: brought up to date on a copy (relay.db itself is left as it is)`);
  return {
    db: copy,
    version,
    close: () => {
      copy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every value as PostgreSQL's text output: converted here, by the column's type, the same way the checksum reads it. */
const RAW_TEXT: pg.CustomTypesConfig = { getTypeParser: (() => (value: string) => value) as unknown as pg.CustomTypesConfig['getTypeParser'] };

/** The schema made as the relay makes it (PostgresStore.open migrates it), then one connection for the copy. */
async function openTarget(url: string, flag: string): Promise<pg.Client> {
  try {
    await (await PostgresStore.open(url, { max: 1 })).close();
  } catch (err) {
    throw storeOpenFailure(url, err, flag);
  }
  const client = new pg.Client({ connectionString: url, application_name: 'outpost-relay store migrate', connectionTimeoutMillis: 10_000, types: RAW_TEXT });
  // A connection that fails rejects the query in flight; without a listener it would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw storeOpenFailure(url, err, flag);
  }
  return client;
}

// ---------------------------------------------------------------- columns and values

/** The PostgreSQL column types the workspace uses, as what a value is converted by. */
type Kind = 'text' | 'bigint' | 'double' | 'boolean' | 'json' | 'bytea';
const KINDS: Record<string, Kind> = { text: 'text', bigint: 'bigint', integer: 'bigint', 'double precision': 'double', boolean: 'boolean', json: 'json', bytea: 'bytea' };

interface Column {
  name: string;
  kind: Kind;
  identity: boolean;
  /** What SQLite selects for it: the column, or rowid for the identity that stands in for it. */
  source: string;
}

interface Table {
  name: string;
  columns: Column[];
  /** Indexes into `columns`. */
  key: number[];
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** What a value is, for a message. */
function describe(v: unknown): string {
  if (Buffer.isBuffer(v)) return `a blob of ${v.length} bytes`;
  if (typeof v === 'string') return `the text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `the ${typeof v === 'bigint' ? 'integer' : 'number'} ${String(v)}`;
}

/** A double's text that reads back to the same double (-0 included); PostgreSQL reads NaN and ±Infinity too. */
const doubleText = (n: number): string => (Object.is(n, -0) ? '-0' : String(n));

/**
 * A SQLite value (integers as bigint) as the parameter for its PostgreSQL column and its
 * canonical text for the checksum; throws the reason when it does not fit the column.
 */
function fromSqlite(kind: Kind, v: unknown): [param: unknown, canonical: string | null] {
  if (v === null) return [null, null];
  switch (kind) {
    case 'text':
      if (typeof v !== 'string') throw new Error(`is ${describe(v)}, not text`);
      if (v.includes('\u0000')) throw new Error('holds a NUL character (\\u0000), which PostgreSQL text cannot hold');
      return [v, v];
    case 'bigint': {
      const n = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : undefined;
      if (n === undefined) throw new Error(`is ${describe(v)}, not an integer`);
      return [n.toString(), n.toString()];
    }
    case 'double': {
      if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`is ${describe(v)}, not a number`);
      const text = doubleText(Number(v));
      return [text, text];
    }
    case 'boolean':
      // SQLite's flags are 0/1; anything else is not a flag the relay wrote.
      if (v === 0n || v === 0) return [false, 'false'];
      if (v === 1n || v === 1) return [true, 'true'];
      throw new Error(`is ${describe(v)}, not 0 or 1`);
    case 'json':
      if (typeof v !== 'string') throw new Error(`is ${describe(v)}, not JSON text`);
      try {
        JSON.parse(v);
      } catch {
        throw new Error(`is not JSON (${describe(v)})`);
      }
      // Kept as the very text written: PostgreSQL's json type stores it as given.
      return [v, v];
    case 'bytea':
      // Selected as CAST(… AS BLOB): the bytes SQLite holds, whatever they are.
      if (!Buffer.isBuffer(v)) throw new Error(`is ${describe(v)}, not bytes`);
      return [v, `\\x${v.toString('hex')}`];
  }
}

/** A value as PostgreSQL printed it, in the same canonical text. */
function fromPostgres(kind: Kind, v: string | null): string | null {
  if (v === null) return null;
  switch (kind) {
    case 'double':
      return doubleText(Number(v));
    case 'boolean':
      return v === 't' ? 'true' : 'false';
    case 'bytea':
      return `\\x${Buffer.from(v.slice(2), 'hex').toString('hex')}`;
    default:
      return v;
  }
}

/** Each table's columns as PostgreSQL has them, paired with SQLite's. */
async function describeTables(source: Database.Database, client: pg.Client, progress: MigrationProgress): Promise<Table[]> {
  const names = [...MIGRATED_TABLES];
  const { rows: columnRows } = await client.query<{ table_name: string; column_name: string; data_type: string; is_identity: string }>(
    `SELECT table_name, column_name, data_type, is_identity FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = ANY($1) ORDER BY table_name, ordinal_position`,
    [names],
  );
  const { rows: keyRows } = await client.query<{ table_name: string; column_name: string }>(
    `SELECT k.table_name, k.column_name FROM information_schema.table_constraints c
     JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema AND k.table_name = c.table_name
     WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema() AND c.table_name = ANY($1) ORDER BY k.table_name, k.ordinal_position`,
    [names],
  );
  const sqliteTables = new Set((source.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").pluck().all() as string[]));
  // The schema version matched, so a table beyond the relay's was made by hand: nothing the relay reads.
  const unknown = [...sqliteTables].filter((n) => !names.includes(n as (typeof names)[number]));
  if (unknown.length > 0) progress.note?.(`relay.db has tables the relay does not use (${unknown.join(', ')}): not copied`);
  return names.map((name): Table => {
    const pgColumns = columnRows.filter((r) => r.table_name === name);
    if (pgColumns.length === 0 || !sqliteTables.has(name)) throw new Error(`the table ${name} is missing from ${pgColumns.length === 0 ? 'PostgreSQL' : 'relay.db'}: the two schemas do not match`);
    const sqliteColumns = new Set((source.prepare(`PRAGMA table_info(${quote(name)})`).all() as Array<{ name: string }>).map((c) => c.name));
    const columns = pgColumns.map((r): Column => {
      const kind = KINDS[r.data_type];
      if (!kind) throw new Error(`${name}.${r.column_name} is of type ${r.data_type}, which this migration does not convert to`);
      const identity = r.is_identity === 'YES';
      if (sqliteColumns.has(r.column_name)) return { name: r.column_name, kind, identity, source: kind === 'bytea' ? `CAST(${quote(r.column_name)} AS BLOB)` : quote(r.column_name) };
      // postgres-migrations.ts: an identity column stands in for SQLite's rowid (job metrics, health samples).
      if (identity) return { name: r.column_name, kind, identity, source: 'rowid' };
      throw new Error(`${name}.${r.column_name} is in PostgreSQL but not in relay.db: the two schemas do not match`);
    });
    const lost = [...sqliteColumns].filter((c) => !columns.some((col) => col.name === c));
    if (lost.length > 0) throw new Error(`${name} has columns in relay.db that PostgreSQL lacks (${lost.join(', ')}): their data would be lost`);
    const key = keyRows.filter((r) => r.table_name === name).map((r) => columns.findIndex((c) => c.name === r.column_name));
    if (key.length === 0) throw new Error(`${name} has no primary key in PostgreSQL: the rows cannot be compared in order`);
    return { name, columns, key };
  });
}

/** "devices row id=\"dev_a\"": the row by its primary key, for a message. */
function rowName(table: Table, row: unknown[]): string {
  const shown = (v: unknown) => (typeof v === 'bigint' ? v.toString() : JSON.stringify(typeof v === 'string' && v.length > 40 ? `${v.slice(0, 40)}…` : v));
  return `${table.name} row ${table.key.map((i) => `${table.columns[i]!.name}=${shown(row[i])}`).join(', ')}`;
}

// ---------------------------------------------------------------- the copy

const hasCode = (err: unknown, code: string) => (err as { code?: string }).code === code;

async function copyAll(source: Database.Database, client: pg.Client, url: string, progress: MigrationProgress): Promise<TableResult[]> {
  // One snapshot of relay.db for the whole copy (a read transaction; it writes nothing).
  source.exec('BEGIN');
  try {
    await client.query('BEGIN');
    try {
      await client.query("SET LOCAL lock_timeout = '10s'");
      // Floats printed so they read back exactly (PostgreSQL 12 and later print the shortest such text for any value above 0), bytes as hex.
      await client.query('SET LOCAL extra_float_digits = 3');
      await client.query("SET LOCAL bytea_output = 'hex'");
      // Nobody else reads or writes the tables until this commits: a relay started on the
      // database meanwhile waits, then finds the whole workspace (and makes no admin token of its own).
      try {
        await client.query(`LOCK TABLE ${MIGRATED_TABLES.map(quote).join(', ')} IN ACCESS EXCLUSIVE MODE`);
      } catch (err) {
        if (hasCode(err, '55P03')) throw new Error(`the tables of PostgreSQL at ${redactedUrl(url)} are in use (a relay running on it?): stop what uses them, then migrate into an empty database`);
        throw err;
      }
      const tables = await describeTables(source, client, progress);
      await refuseNonEmpty(client, tables, url);
      const sequences = highWaterMarks(source);
      const copied: TableResult[] = [];
      for (const table of tables) copied.push(await copyTable(source, client, table, sequences.get(table.name) ?? 0n, progress));
      for (const [i, table] of tables.entries()) {
        const found = await readBack(client, table);
        const wanted = copied[i]!;
        if (found.rows !== wanted.rows) throw new Error(`${table.name}: ${wanted.rows} rows in relay.db but ${found.rows} read back from PostgreSQL: rolled back, nothing was written (check the database for triggers or rules that change rows)`);
        if (found.checksum !== wanted.checksum) throw new Error(`${table.name}: the rows read back from PostgreSQL differ from relay.db's (checksum ${found.checksum.slice(0, 12)}… instead of ${wanted.checksum.slice(0, 12)}…): rolled back, nothing was written (check the database for triggers or rules that change rows)`);
      }
      const commit = await client.query('COMMIT');
      // A COMMIT of a transaction a failed statement aborted answers ROLLBACK, without an error.
      if (commit.command === 'ROLLBACK') throw new Error('PostgreSQL rolled the copy back at COMMIT: nothing was written');
      return copied;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } finally {
    source.exec('COMMIT');
  }
}

/** AUTOINCREMENT's high-water marks: a seq given once (then trimmed, like old audit entries) is never given again. */
function highWaterMarks(source: Database.Database): Map<string, bigint> {
  if (!source.prepare("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").get()) return new Map();
  return new Map((source.prepare('SELECT name, seq FROM sqlite_sequence').safeIntegers(true).all() as Array<{ name: string; seq: bigint }>).map((r) => [r.name, r.seq]));
}

/** Any row at all is a workspace (even a relay's first admin token): nothing is merged into it. */
async function refuseNonEmpty(client: pg.Client, tables: Table[], url: string): Promise<void> {
  const held: string[] = [];
  for (const t of tables) {
    const { rows } = await client.query<{ any: string }>(`SELECT EXISTS (SELECT 1 FROM ${quote(t.name)}) AS any`);
    if (rows[0]!.any === 't') held.push(t.name);
  }
  if (held.length > 0) {
    throw new Error(`PostgreSQL at ${redactedUrl(url)} already holds workspace data (in ${held.join(', ')}): migrate into an empty database (createdb -O USER NEWDB), which the relay has not been started on`);
  }
}

/** At most this many parameters in one INSERT (PostgreSQL's limit is 65,535). */
const MAX_PARAMS = 30_000;
const MAX_BATCH_ROWS = 1_000;

async function copyTable(source: Database.Database, client: pg.Client, table: Table, sequenceMark: bigint, progress: MigrationProgress): Promise<TableResult> {
  const total = (source.prepare(`SELECT count(*) FROM ${quote(table.name)}`).pluck().get() as number);
  progress.tableStarted?.(table.name, total);
  const cols = table.columns;
  const order = table.key.map((i) => cols[i]!.source).join(', ');
  const select = source.prepare(`SELECT ${cols.map((c) => c.source).join(', ')} FROM ${quote(table.name)} ORDER BY ${order}`).raw(true).safeIntegers(true);
  const identities = cols.flatMap((c, i) => (c.identity ? [i] : []));
  const insertHead = `INSERT INTO ${quote(table.name)} (${cols.map((c) => quote(c.name)).join(', ')})${identities.length > 0 ? ' OVERRIDING SYSTEM VALUE' : ''} VALUES `;
  const batchRows = Math.max(1, Math.min(MAX_BATCH_ROWS, Math.floor(MAX_PARAMS / cols.length)));
  const hash = createHash('sha256');
  const highest = identities.map(() => 0n);
  let batch: Array<{ row: unknown[]; params: unknown[] }> = [];
  let rows = 0;

  const flush = async () => {
    if (batch.length === 0) return;
    const placeholders = batch.map((_, r) => `(${cols.map((__, c) => `$${r * cols.length + c + 1}`).join(', ')})`).join(', ');
    await client.query('SAVEPOINT batch');
    try {
      await client.query(insertHead + placeholders, batch.flatMap((b) => b.params));
    } catch (err) {
      // Which row PostgreSQL refuses (a constraint, a value it will not take), row by row.
      await client.query('ROLLBACK TO SAVEPOINT batch');
      for (const b of batch) {
        try {
          await client.query(`${insertHead}(${cols.map((_, c) => `$${c + 1}`).join(', ')})`, b.params);
        } catch (rowErr) {
          throw new Error(`${rowName(table, b.row)}: PostgreSQL refuses it: ${(rowErr as Error).message}: change that row on the SQLite relay, then migrate again; nothing was written`);
        }
      }
      throw err;
    }
    await client.query('RELEASE SAVEPOINT batch');
    rows += batch.length;
    batch = [];
    progress.rowsCopied?.(table.name, rows);
  };

  for (const row of select.iterate() as IterableIterator<unknown[]>) {
    const canonical: Array<string | null> = [];
    const params = cols.map((c, i) => {
      try {
        const [param, canon] = fromSqlite(c.kind, row[i]);
        canonical.push(canon);
        return param;
      } catch (err) {
        throw new Error(`${rowName(table, row)}: ${c.name} ${(err as Error).message}: change that value on the SQLite relay, then migrate again; nothing was written`);
      }
    });
    for (const [j, i] of identities.entries()) if ((row[i] as bigint) > highest[j]!) highest[j] = row[i] as bigint;
    hash.update(`${JSON.stringify(canonical)}\n`);
    batch.push({ row, params });
    if (batch.length >= batchRows) await flush();
  }
  await flush();

  // The identities go on after the highest value copied (or SQLite's high-water mark): new rows
  // get new numbers, never a duplicate key.
  for (const [j, i] of identities.entries()) {
    const next = highest[j]! > sequenceMark ? highest[j]! : sequenceMark;
    await client.query('SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)', [quote(table.name), cols[i]!.name, next > 0n ? next.toString() : '1', next > 0n]);
  }
  progress.tableCopied?.(table.name, rows);
  return { name: table.name, rows, checksum: hash.digest('hex') };
}

/** The table as PostgreSQL now holds it (in this transaction), counted and summed as copyTable did. */
async function readBack(client: pg.Client, table: Table): Promise<{ rows: number; checksum: string }> {
  const cols = table.columns;
  const order = table.key.map((i) => quote(cols[i]!.name)).join(', ');
  await client.query(`DECLARE migrate_check NO SCROLL CURSOR FOR SELECT ${cols.map((c) => quote(c.name)).join(', ')} FROM ${quote(table.name)} ORDER BY ${order}`);
  const hash = createHash('sha256');
  let rows = 0;
  for (;;) {
    const { rows: page } = await client.query<Array<string | null>>({ text: 'FETCH 2000 FROM migrate_check', rowMode: 'array' });
    if (page.length === 0) break;
    for (const row of page) hash.update(`${JSON.stringify(cols.map((c, i) => fromPostgres(c.kind, row[i]!)))}\n`);
    rows += page.length;
  }
  await client.query('CLOSE migrate_check');
  return { rows, checksum: hash.digest('hex') };
}
