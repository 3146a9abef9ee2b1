// `outpost-relay store migrate`: a SQLite workspace made through SqliteStore's repositories
// (every aggregate, odd text and bytes included) is copied into PostgreSQL by the real CLI, and
// PostgresStore then answers every read as SqliteStore does, record for record; a relay started
// on the database serves the same workspace to the old admin token, and new rows get new seqs.
// What a person can get wrong (a running relay, no relay.db, a bad URL, a database in use, a
// value PostgreSQL cannot hold) is one line, and leaves both sides as they were.

import t, { type Test } from 'tap';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HealthMessage, ModelSignature, ReportedState } from '@outpost/shared';
import { formatCredential, hashSecret } from '../../packages/relay/dist/auth/secrets.js';
import { SQLITE_MIGRATIONS } from '../../packages/relay/dist/store/migrations.js';
import { PostgresStore } from '../../packages/relay/dist/store/postgres-store.js';
import { SqliteStore } from '../../packages/relay/dist/store/sqlite-store.js';
import { MIGRATED_TABLES, migrateStore } from '../../packages/relay/dist/store/store-migration.js';
import type { Store } from '../../packages/relay/dist/store/store.js';
import type { HealthSample, JobState, NewAuditEntry, RolloutStrategy } from '../../packages/relay/dist/store/records.js';
import { closedPort, RELAY_BIN, runCli, startRelay, tempDir } from '../helpers/programs.js';
import { createDatabase, POSTGRES_SKIP, startPostgres } from '../helpers/postgres.js';

// node-postgres and better-sqlite3, from the relay (its dependencies), for what the stores do not do.
const relayRequire = createRequire(fileURLToPath(new URL('../../packages/relay/package.json', import.meta.url)));
interface PgClient {
  connect(): Promise<void>;
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  end(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
}
const { Client } = relayRequire('pg') as { Client: new (config: { connectionString: string }) => PgClient };
interface SqliteDb {
  exec(sql: string): void;
  pragma(sql: string, opts?: { simple: boolean }): unknown;
  prepare(sql: string): { run(...params: unknown[]): unknown };
  close(): void;
}
const Database = relayRequire('better-sqlite3') as new (file: string) => SqliteDb;

const sha = (n: number): string => n.toString(16).padStart(64, '0');
const signature: ModelSignature = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }] };
const heartbeat: HealthMessage = { ts: 1, uptimeS: 1, cpuPercent: 12.5, memory: { rssBytes: 1, usedBytes: 1, totalBytes: 2 }, disk: { freeBytes: 1, totalBytes: 2 }, models: {} };
const rolling: RolloutStrategy = { kind: 'rolling', batch: '25%', canary: 1, failureThreshold: 2, healthWindowMs: 0 };
const BUCKET = 5 * 60_000;

/** Device ids: the relay's own form, and ones whose order differs by code point and by a locale's collation. */
const DEVICES = ['dev_0a0a0a0a0a0a', 'dev_1b1b1b1b1b1b', 'Dev_C', 'dév_d', 'dev-e'];
const MODELS = ['detector', 'Zeta', 'émile'];
const JOBS = ['job_1', 'job_2', 'job_3', 'job_4'];
const JOB_STATES: JobState[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];
const SHAS = [1, 2, 3, 4, 5, 6, 30, 31, 40, 41, 900, 901, 999].map(sha);

/** Log lines a process may print: NUL, control bytes, unicode, a lone surrogate, a long line, nothing. */
const ODD_LINES = ['nul \u0000 inside', 'bell \u0007 esc \u001b[31m red', 'emoji 🚀 ünïcödé 日本語', 'lone \ud800 surrogate', 'crlf\r\n', 'x'.repeat(10_000), ''];

/** The admin token of the workspace, as the relay's first start makes it. */
function adminToken(): { id: string; secret: string; token: string } {
  const id = 'a1b2c3d4e5f6';
  const secret = 'S3cretS3cretS3cretS3cretS3cret-_x';
  return { id, secret, token: formatCredential('opa', id, secret) };
}

/** Every aggregate, through SqliteStore's repositories as the relay writes them. `now`: recent health for the API. */
async function populate(store: Store, now: number, odd: { name?: string; label?: string; line?: string; detail?: string } = {}): Promise<void> {
  const admin = adminToken();
  await store.tokens.add({ id: admin.id, name: 'admin', hash: hashSecret(admin.secret), role: 'admin' });
  await store.tokens.add({ id: 'b1b2b3b4b5b6', name: 'ci', hash: 'h1', role: 'deployer', expiresAt: now + 86_400_000 });
  await store.tokens.add({ id: 'c1c2c3c4c5c6', name: 'view', hash: 'h2', role: 'viewer' });
  await store.tokens.revoke('b1b2b3b4b5b6', now - 5_000);
  await store.tokens.setLastUsed('c1c2c3c4c5c6', now - 60_000);

  for (const [i, id] of DEVICES.entries()) {
    await store.enrollment.addToken({ id: `et_${id}`, hash: `eh${i}`, labels: { zone: i % 2 ? 'b' : 'a', rack: String(i) }, allowDeviceLabels: i === 0, expiresAt: now + 100_000, usedAt: null });
    await store.enrollment.enroll(`et_${id}`, now - 50_000 + i, { id, name: i === 1 ? (odd.name ?? 'カメラ 1 📷') : `name ${id}`, labels: { rack: String(i), zone: i % 2 ? 'b' : 'a', ...(i === 0 ? { gpu: 'yes', [odd.label ?? 'ü-key']: odd.label ?? 'ü' } : {}) }, secretHash: `s${i}` });
  }
  await store.enrollment.addToken({ id: 'et_unused', hash: 'eh', labels: { site: 'lab' }, allowDeviceLabels: true, expiresAt: now + 900_000, usedAt: null });
  await store.devices.setLabels(DEVICES[0]!, { zone: 'a', rack: '2', 'z-last': 'ü', a: '', gpu: 'yes', [odd.label ?? 'ü-key']: odd.label ?? 'ü' });
  await store.devices.setOnline(DEVICES[0]!, true, now - 3_000);
  await store.devices.setOnline('Dev_C', false, now - 3_200);
  const reported: ReportedState = { revision: 2, models: [{ name: 'detector', version: 1, sha256: sha(1), state: 'serving' }] };
  await store.devices.setReported(DEVICES[1]!, reported, now - 3_300);
  await store.devices.setTrainingAttached(DEVICES[1]!, true);
  await store.devices.setCapabilities(DEVICES[1]!, true, ['mnist', 'cifar'], { accelerators: ['cuda', 'gpu'], executionProviders: ['cpu', 'cuda'] });
  await store.devices.setCertificate(DEVICES[0]!, { serial: 's1', issuedAt: now - 2_000, expiresAt: now + 9_000 }, null);
  await store.devices.setCertificate(DEVICES[0]!, { serial: 's2', issuedAt: now - 1_000, expiresAt: now + 10_000 }, 's1');
  await store.devices.setCertificateRenewBefore(DEVICES[0]!, now - 500);

  await store.models.addVersion('detector', sha(1), 100, signature, { lineage: { jobId: 'job_3', target: DEVICES[1]!, metrics: { loss: { latest: 0.3, best: 0.1 } } } });
  await store.models.addVersion('detector', sha(2), 200, signature, { sample: { sha256: sha(30), size: 3 }, selfTest: { input: 'sample', ok: true } });
  await store.models.addVersion('detector', sha(3), 300, signature);
  await store.models.deleteVersion('detector', 3); // model_names keeps 3: the next is 4
  await store.models.addVersion('Zeta', sha(4), 400, signature, { sample: { sha256: sha(31), size: 4 } });
  await store.models.addVersion('émile', sha(5), 500, signature);

  await store.deployments.create({ id: 'dpl_1', model: 'detector', version: 1, sha256: sha(1), deviceIds: [DEVICES[0]!, DEVICES[1]!, 'Dev_C'] }, now - 40_000);
  await store.deployments.create({ id: 'dpl_2', model: 'detector', version: 2, sha256: sha(2), deviceIds: [DEVICES[0]!, 'dev-e'], selector: { zone: 'a' }, strategy: rolling, serving: { maxBatchSize: 4, maxQueueDelayMs: 2 }, initialState: 'waiting' }, now - 30_000);
  await store.deployments.create({ id: 'dpl_3', model: 'Zeta', version: 1, sha256: sha(4), deviceIds: [], selector: { zone: 'nowhere' } }, now - 20_000);
  await store.deployments.setRolloutState('dpl_1', DEVICES[0]!, 'serving', null, now - 39_000);
  await store.deployments.setRolloutState('dpl_1', DEVICES[1]!, 'failed', 'bad model: ünïcode', now - 39_000);
  await store.deployments.setRolloutState('dpl_1', 'Dev_C', 'superseded', 'dpl_2 is newer', now - 39_000);
  await store.deployments.setRolloutState('dpl_2', DEVICES[0]!, 'pending', null, now - 29_000);
  await store.deployments.addRollout('dpl_3', 'Dev_C', now - 19_000);
  await store.deployments.setState('dpl_1', 'failed');

  const sample = (deviceId: string, ts: number, cpu: number, p50: number | null, p99: number | null): HealthSample => ({ deviceId, ts, cpu, memUsed: cpu * 3.3, memTotal: 1_000 + ts, rss: cpu / 7, reqRate: cpu * 0.1, errRate: cpu * 0.01, p50, p99 });
  const t0 = now - (now % BUCKET) - BUCKET;
  await store.health.add(
    [sample(DEVICES[0]!, t0 + 1_000, 0.1, null, null), sample(DEVICES[0]!, t0 + 2_000, 0.2, 4.1, 9.3), sample(DEVICES[1]!, t0 + 1_000, 0.7, 1.1, null), sample(DEVICES[0]!, t0 + 2_000, 1 / 3, 6.7, 7.1), sample(DEVICES[0]!, t0 + BUCKET + 10, 5e-324, 0.3, 1e308)],
    BUCKET,
    [{ deviceId: DEVICES[0]!, health: heartbeat, at: now - 1_000 }, { deviceId: DEVICES[1]!, health: { ...heartbeat, cpuPercent: 1 }, at: now - 2_000 }],
  );

  await store.jobs.create('job_1', { bundleSha256: sha(900), bundleSize: 10, target: { kind: 'selector', selector: { zone: 'nowhere' } }, nodes: 1, command: 'python train.py', env: { Z: '1', A: '2' } }, now - 10_000);
  await store.jobs.create('job_2', { bundleSha256: sha(901), bundleSize: 11, target: { kind: 'device', deviceId: DEVICES[1]! }, nodes: 1, command: 'sh -c "echo ü"', env: {}, dataset: 'mnist', timeoutMs: 60_000 }, now - 9_000);
  await store.jobs.create('job_3', { bundleSha256: sha(900), bundleSize: 10, target: { kind: 'local' }, nodes: 2, command: 'train', env: {}, registerModel: { name: 'detector', output: 'model.onnx' } }, now - 8_000);
  await store.jobs.create('job_4', { bundleSha256: sha(900), bundleSize: 10, target: { kind: 'local' }, nodes: 1, command: 'x', env: {} }, now - 7_000);
  await store.jobs.addRuns('job_2', [{ rank: 0, target: DEVICES[1]! }], now - 8_900);
  await store.jobs.addRuns('job_3', [{ rank: 1, target: 'local' }, { rank: 0, target: 'local' }], now - 7_900);
  await store.jobs.setState('job_2', 'running', now - 8_800);
  await store.jobs.setState('job_3', 'running', now - 7_800);
  await store.jobs.setRunState('job_2', 0, 'running', now - 8_700);
  await store.jobs.setRunState('job_3', 0, 'succeeded', now - 7_000, 0);
  await store.jobs.setRunState('job_3', 1, 'failed', now - 7_000, 3, 'exit 3: ünïcode');
  await store.jobs.setState('job_3', 'succeeded', now - 6_900);
  await store.jobs.setModel('job_3', { name: 'detector', version: 1 });
  await store.jobs.setState('job_4', 'canceled', now - 6_000, 'canceled by admin');
  await store.jobs.appendLogs('job_3', [...ODD_LINES, ...(odd.line === undefined ? [] : [odd.line])].map((text, i) => ({ rank: i % 2, ts: i === 1 ? 1.25 : now - 7_500 + i, stream: i % 3 ? 'stderr' : 'stdout', text })), 1_000);
  await store.jobs.appendLogs('job_2', [{ rank: 0, ts: now - 8_600, stream: 'stdout', text: 'epoch 1' }], 1_000);
  await store.jobs.addMetrics('job_3', [
    { rank: 0, name: 'loss', value: 0.9, step: 1, ts: now - 7_400 },
    { rank: 0, name: 'Acc', value: 0.1, step: null, ts: now - 7_400 },
    { rank: 0, name: 'loss', value: -0, step: 2.5, ts: now - 7_300 },
    { rank: 1, name: 'loss', value: 1e-300, step: 3, ts: now - 7_300 },
    { rank: 1, name: 'tiny', value: 5e-324, step: 2 ** 53, ts: now - 7_200 },
  ]);
  await store.jobs.addOutput('job_3', { rank: 0, path: 'model.onnx', sha256: sha(40), size: 40 });
  await store.jobs.addOutput('job_3', { rank: 0, path: 'Log ü.txt', sha256: sha(41), size: 41 });

  const entry = (ts: number, over: Partial<NewAuditEntry> = {}): NewAuditEntry => ({ ts, actor: { kind: 'token', id: admin.id, name: 'admin' }, action: 'thing.do', target: null, outcome: 'ok', status: 200, address: '127.0.0.1', detail: null, ...over });
  await store.audit.append(entry(now - 5_000, { target: 'tok', detail: { z: 1, a: [2, { 'ü': 'ß' }], [odd.detail ?? 'k']: odd.detail ?? 'lone \udc00 surrogate' } }), 5);
  await store.audit.append(entry(now - 4_000, { actor: { kind: 'device', id: DEVICES[0]! }, outcome: 'refused', status: 403 }), 5);
  await store.audit.append(entry(now - 3_000, { actor: { kind: 'relay' }, outcome: 'failed', status: null, address: null }), 5);
  // Past the bound: the oldest go, the seqs go on.
  for (let i = 0; i < 4; i++) await store.audit.append(entry(now - 2_000 + i, { action: `bulk.${i}` }), 5);
}

/** models.rollouts promises newest deployment first; within one the order is the engine's plan's (parity.test.ts). */
const byDeploymentThenDevice = <R extends { deploymentId: string; deviceId: string }>(rows: R[]): R[] => {
  const rank = new Map<string, number>();
  for (const r of rows) if (!rank.has(r.deploymentId)) rank.set(r.deploymentId, rank.size);
  return [...rows].sort((a, b) => rank.get(a.deploymentId)! - rank.get(b.deploymentId)! || (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
};
/** Objects from GROUP BY (no order the stores promise): their keys sorted. */
const sortedKeys = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** Every repository read, over every id the workspace holds. */
async function readAll(store: Store, now: number): Promise<Array<[string, unknown]>> {
  const out: Array<[string, unknown]> = [];
  const read = async (what: string, answer: Promise<unknown>) => void out.push([what, await answer]);
  await read('tokens.list', store.tokens.list());
  await read('tokens.count', store.tokens.count());
  for (const tok of await store.tokens.list()) await read(`tokens.get ${tok.id}`, store.tokens.get(tok.id));
  for (const id of [...DEVICES, 'unused']) await read(`enrollment.getToken ${id}`, store.enrollment.getToken(`et_${id}`));
  await read('devices.list', store.devices.list());
  await read('devices.count', store.devices.count());
  for (const id of DEVICES) {
    await read(`devices.get ${id}`, store.devices.get(id));
    await read(`devices.secretHash ${id}`, store.devices.secretHash(id));
    await read(`devices.certificate ${id}`, store.devices.certificate(id));
    await read(`deployments.forDevice ${id}`, store.deployments.forDevice(id));
    await read(`deployments.withSelector ${id}`, store.deployments.withSelector(id));
    await read(`health.samples ${id}`, store.health.samples(id, 0));
    await read(`health.rollups ${id}`, store.health.rollups(id, 0, now + BUCKET, BUCKET));
    for (const s of SHAS) await read(`artifactRefs.deviceMayFetch ${id} ${s.slice(-3)}`, store.artifactRefs.deviceMayFetch(id, s));
  }
  await read('models.list', store.models.list());
  for (const name of MODELS) {
    await read(`models.versions ${name}`, store.models.versions(name));
    await read(`models.get ${name}`, store.models.get(name));
    for (const v of [1, 2, 3]) await read(`models.get ${name} ${v}`, store.models.get(name, v));
    await read(`models.rollouts ${name}`, store.models.rollouts(name).then(byDeploymentThenDevice));
    await read(`deployments.lastPerVersion ${name}`, store.deployments.lastPerVersion(name));
  }
  await read('deployments.list', store.deployments.list());
  await read('deployments.active', store.deployments.active(1));
  await read('deployments.staged', store.deployments.staged());
  await read('deployments.countByState', store.deployments.countByState().then(sortedKeys));
  for (const d of await store.deployments.list()) {
    await read(`deployments.get ${d.id}`, store.deployments.get(d.id));
    await read(`deployments.info ${d.id}`, store.deployments.info(d.id));
    await read(`deployments.rolloutCounts ${d.id}`, store.deployments.rolloutCounts(d.id).then(sortedKeys));
  }
  for (const s of SHAS) await read(`artifactRefs.referenced ${s.slice(-3)}`, store.artifactRefs.referenced(s));
  await read('jobs.list', store.jobs.list());
  for (const state of JOB_STATES) await read(`jobs.inState ${state}`, store.jobs.inState(state));
  await read('jobs.busyTargets', store.jobs.busyTargets().then((s) => [...s].sort()));
  for (const id of JOBS) {
    await read(`jobs.get ${id}`, store.jobs.get(id));
    await read(`jobs.logs ${id}`, store.jobs.logs(id, 0, 1_000));
    await read(`jobs.metrics ${id}`, store.jobs.metrics(id));
    await read(`jobs.metricSummary ${id}`, store.jobs.metricSummary(id));
    await read(`jobs.outputs ${id}`, store.jobs.outputs(id));
    for (const rank of [0, 1]) await read(`jobs.countRunRecords ${id} ${rank}`, store.jobs.countRunRecords(id, rank));
  }
  await read('audit.list', store.audit.list({ limit: 1_000 }));
  await read('audit.list since before', store.audit.list({ since: now - 4_500, before: 6, limit: 2 }));
  return out;
}

/** The answers of both stores, compared one by one (key order included: JSON comes back as it was written). */
function sameAnswers(t: Test, found: Array<[string, unknown]>, wanted: Array<[string, unknown]>): void {
  t.equal(found.length, wanted.length, 'as many answers');
  for (let i = 0; i < wanted.length; i++) {
    const [what, expected] = wanted[i]!;
    t.strictSame(found[i], [what, expected], what);
    if (JSON.stringify(found[i]) !== JSON.stringify(wanted[i])) t.fail(`${what}: same values, another key order`, { found: JSON.stringify(found[i]), wanted: JSON.stringify(wanted[i]) });
  }
}

/**
 * The bytes of relay.db and of its WAL, if that holds any: what "left as it was" means. A reader
 * of a WAL database makes an empty -wal and its -shm index beside it when they are missing
 * (SQLite's own doing, the same for any reader): no data, so not counted.
 */
function fileHashes(dir: string): Record<string, string> {
  const files = readdirSync(dir).filter((f) => f === 'relay.db' || (f === 'relay.db-wal' && readFileSync(join(dir, f)).length > 0));
  return Object.fromEntries(files.map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

/** The rows of every workspace table on PostgreSQL, as text: to show a database is left as it was. */
async function targetRows(url: string): Promise<Record<string, number>> {
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const counts: Record<string, number> = {};
    for (const table of MIGRATED_TABLES) counts[table] = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
    return counts;
  } finally {
    await client.end();
  }
}

/** A table's seq per id. */
async function seqs(url: string, table: 'deployments' | 'jobs'): Promise<Record<string, string>> {
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return Object.fromEntries((await client.query<{ id: string; seq: string }>(`SELECT id, seq::text AS seq FROM ${table} ORDER BY seq`)).rows.map((r) => [r.id, r.seq]));
  } finally {
    await client.end();
  }
}

async function sql(url: string, text: string): Promise<void> {
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const emptyTables = Object.fromEntries(MIGRATED_TABLES.map((name) => [name, 0]));

/** A data dir with a populated relay.db and the admin token beside it, as a stopped relay leaves it. */
async function workspace(t: Test, now: number, odd?: Parameters<typeof populate>[2]): Promise<string> {
  const dataDir = tempDir(t, 'migrate-from');
  const store = new SqliteStore(join(dataDir, 'relay.db'));
  try {
    await populate(store, now, odd);
  } finally {
    await store.close();
  }
  writeFileSync(join(dataDir, 'admin.token'), `${adminToken().token}\n`, { mode: 0o600 });
  return dataDir;
}

const migrateCli = (from: string, to: string, ...more: string[]) => runCli(RELAY_BIN, ['store', 'migrate', '--from', from, '--to', to, ...more]);
/** A failure is one line, the last (after progress and warnings, if any). */
const oneLine = (t: Test, stderr: string) => {
  const lines = stderr.trimEnd().split('\n');
  t.ok(lines.filter((l) => l.startsWith('error: ')).length === 1 && lines.at(-1)!.startsWith('error: '), `one error line, the last: ${lines.at(-1)}`);
};

// ---------------------------------------------------------------- without PostgreSQL

t.test('store migrate --help: what it does, with examples', async (t) => {
  for (const args of [['store', '--help'], ['store', 'migrate', '--help']]) {
    const res = await runCli(RELAY_BIN, args);
    t.equal(res.code, 0);
    t.match(res.stdout, /\nExamples:\n {2}(\S+=\S+ )?outpost-relay store migrate --from /, `${args.join(' ')} has examples`);
  }
  const res = await runCli(RELAY_BIN, ['store', 'migrate', '--help']);
  t.match(res.stdout, /--from <dir>/);
  t.match(res.stdout, /--to <url>/);
  t.match(res.stdout, /Stop the relay first/);
});

t.test('what a person can get wrong, before any database: one line naming the fix', async (t) => {
  const parent = tempDir(t, 'migrate-wrong');
  const noDir = await migrateCli(join(parent, 'nope'), 'postgres://outpost@127.0.0.1:1/outpost');
  t.equal(noDir.code, 1);
  t.match(noDir.stderr, /^error: .*nope does not exist: give --from the data dir the relay was started with \(its --data-dir\)\n$/);

  const emptyDir = join(parent, 'empty');
  mkdirSync(emptyDir);
  const noDb = await migrateCli(emptyDir, 'postgres://outpost@127.0.0.1:1/outpost');
  t.equal(noDb.code, 1);
  t.match(noDb.stderr, /^error: no relay\.db in .*empty: give --from the data dir of a relay that keeps its workspace in SQLite/);

  for (const bad of ['mysql://db/outpost', 'not a url', 'postgres://', `pg://h/${'x'.repeat(100_000)}`]) {
    const res = await migrateCli(emptyDir, bad);
    t.equal(res.code, 1, `${bad.slice(0, 20)}: refused`);
    t.match(res.stderr, /^error: --to .* is not a PostgreSQL URL: give it as postgres:\/\/USER@HOST:5432\/DB \(the password in PGPASSWORD or ~\/\.pgpass\)\n$/);
    t.ok(res.stderr.length < 400, 'one short line, however long the value');
  }

  const garbage = join(parent, 'garbage');
  mkdirSync(garbage);
  writeFileSync(join(garbage, 'relay.db'), 'not a database, but long enough to be read as one: '.repeat(100));
  const notDb = await migrateCli(garbage, 'postgres://outpost@127.0.0.1:1/outpost');
  t.equal(notDb.code, 1);
  t.match(notDb.stderr, /^error: cannot read .*garbage\/relay\.db: file is not a database: it is not a SQLite database: give --from the relay's data dir\n$/);

  // Written by a newer relay: this one would not know its columns.
  const newer = join(parent, 'newer');
  mkdirSync(newer);
  const db = new Database(join(newer, 'relay.db'));
  db.pragma(`user_version = ${SQLITE_MIGRATIONS.length + 1}`);
  db.close();
  const tooNew = await migrateCli(newer, 'postgres://outpost@127.0.0.1:1/outpost');
  t.equal(tooNew.code, 1);
  t.match(tooNew.stderr, new RegExp(`^error: .*relay\\.db is at schema version ${SQLITE_MIGRATIONS.length + 1}, newer than this outpost-relay knows \\(${SQLITE_MIGRATIONS.length}\\): migrate with the outpost-relay that wrote it\n$`));

  const missing = await runCli(RELAY_BIN, ['store', 'migrate', '--from', emptyDir]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /required option '--to <url>' not specified/);
});

t.test('a relay running on the data dir is refused; a stale relay.json is not', async (t) => {
  const dataDir = await workspace(t, Date.now());
  const before = fileHashes(dataDir);
  // This test process stands in for the relay: a live pid.
  writeFileSync(join(dataDir, 'relay.json'), JSON.stringify({ httpUrl: 'https://127.0.0.1:1', mqttUrl: 'mqtts://127.0.0.1:2', pid: process.pid }));
  const running = await migrateCli(dataDir, 'postgres://outpost@127.0.0.1:1/outpost');
  t.equal(running.code, 1);
  t.match(running.stderr, new RegExp(`^error: a relay is running from .* \\(pid ${process.pid}, in relay\\.json\\): stop the relay first, then migrate`));
  oneLine(t, running.stderr);

  writeFileSync(join(dataDir, 'relay.json'), '{"httpUrl": "https://127.0');
  const half = await migrateCli(dataDir, 'postgres://outpost@127.0.0.1:1/outpost');
  t.equal(half.code, 1);
  t.match(half.stderr, /relay\.json cannot be read \(a relay starting\?\): stop the relay first; if none runs, remove relay\.json/);

  // A pid that is gone (a relay killed): on to the database, which is not there.
  const gone = spawn(process.execPath, ['-e', '']);
  const pid = gone.pid!;
  await new Promise((resolve) => gone.once('exit', resolve));
  writeFileSync(join(dataDir, 'relay.json'), JSON.stringify({ httpUrl: 'https://127.0.0.1:1', mqttUrl: 'mqtts://127.0.0.1:2', pid }));
  const port = await closedPort();
  const stale = await migrateCli(dataDir, `postgres://outpost:s3cret-pass@127.0.0.1:${port}/outpost`);
  t.equal(stale.code, 1);
  t.match(stale.stderr, new RegExp(`relay\\.json names pid ${pid}, which is gone`), 'the stale file is noted');
  t.match(stale.stderr, new RegExp(`error: cannot open PostgreSQL at postgres://outpost:\\*\\*\\*@127\\.0\\.0\\.1:${port}/outpost: .*ECONNREFUSED.*: check the host and port in --to, and that the server runs\\n$`));
  t.match(stale.stderr, /^warning: --to holds a password, which other users of this host can read in the process list/, 'a password on the command line is warned about');
  t.notMatch(stale.stderr, /s3cret-pass/, 'and never shown');
  t.strictSame(fileHashes(dataDir), before, 'relay.db is left as it was');
});

// ---------------------------------------------------------------- on PostgreSQL

const cluster = await startPostgres();
if (!cluster) {
  t.test('on PostgreSQL', { skip: POSTGRES_SKIP }, async () => {});
} else {
  t.teardown(cluster.stop);
  let databases = 0;
  const database = () => createDatabase(cluster.url, `migrate_${++databases}`);

  t.test('the whole workspace moves: every read answers the same, a relay serves it, new rows get new seqs', async (t) => {
    const now = Date.now();
    const dataDir = await workspace(t, now);
    const sqlite = new SqliteStore(join(dataDir, 'relay.db'));
    const wanted = await readAll(sqlite, now);
    await sqlite.close();
    const before = fileHashes(dataDir);
    const url = await database();

    const res = await migrateCli(dataDir, url, '--json');
    t.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { from: string; to: string; sqliteSchemaVersion: number; rows: number; tables: Array<{ name: string; rows: number; checksum: string }> };
    t.equal(out.from, join(dataDir, 'relay.db'));
    t.equal(out.to, url);
    t.equal(out.sqliteSchemaVersion, SQLITE_MIGRATIONS.length);
    t.strictSame(out.tables.map((x) => x.name), [...MIGRATED_TABLES], 'every table, in foreign-key order');
    for (const x of out.tables) t.match(x, { rows: Number, checksum: /^[0-9a-f]{64}$/ }, `${x.name}: rows and a sha256`);
    t.equal(out.rows, out.tables.reduce((n, x) => n + x.rows, 0));
    const copied = Object.fromEntries(out.tables.map((x) => [x.name, x.rows]));
    t.match(copied, { api_tokens: 3, enroll_tokens: 6, devices: 5, models: 4, model_names: 3, deployments: 3, rollouts: 6, health_samples: 5, jobs: 4, job_runs: 3, job_logs: 8, job_metrics: 5, job_outputs: 2, audit_log: 5 });
    t.strictSame(await targetRows(url), copied, 'PostgreSQL holds those rows');
    t.match(res.stderr, /^devices: 5 rows$/m, 'progress per table on stderr');
    t.match(res.stderr, /checked: every table's row count and checksum read back from PostgreSQL match relay\.db; committed/);
    t.match(res.stderr, new RegExp(`next: outpost-relay start --data-dir ${dataDir} --store ${url}`));
    t.strictSame(fileHashes(dataDir), before, 'relay.db is left as it was, byte for byte');

    const postgres = await PostgresStore.open(url);
    t.teardown(() => postgres.close());
    sameAnswers(t, await readAll(postgres, now), wanted);

    // A relay on the database: the old admin token, and the workspace it had.
    const relay = await startRelay(t, { dataDir, extraArgs: ['--store', url] });
    t.equal(relay.token, adminToken().token);
    t.notOk(relay.stderr().includes('Admin token (shown once'), 'no new admin token: the workspace has one');
    const whoami = await relay.api<{ name: string; role: string }>('GET', '/v1/whoami');
    t.match(whoami, { status: 200, body: { name: 'admin', role: 'admin' } }, 'the admin token still authenticates');
    const devices = await relay.api<{ devices: Array<{ id: string; name: string }> }>('GET', '/v1/devices');
    t.equal(devices.status, 200);
    t.strictSame(devices.body.devices.map((d) => d.id).sort(), [...DEVICES].sort());
    t.ok(devices.body.devices.some((d) => d.name === 'カメラ 1 📷'));
    const tokens = await relay.api<{ tokens: Array<{ name: string }> }>('GET', '/v1/tokens');
    t.strictSame(tokens.body.tokens.map((x) => x.name).sort(), ['admin', 'ci', 'view']);
    const models = await relay.api<{ models: Array<{ name: string }> }>('GET', '/v1/models');
    t.strictSame(models.body.models.map((m) => m.name).sort(), [...MODELS].sort());
    const deployment = await relay.api<{ id: string; state: string }>('GET', '/v1/deployments/dpl_1');
    t.match(deployment, { status: 200, body: { id: 'dpl_1', state: 'failed' } });
    const logs = await relay.api<{ lines: Array<{ text: string }> }>('GET', '/v1/jobs/job_3/logs?limit=100');
    t.equal(logs.status, 200);
    t.ok(logs.body.lines.some((l) => l.text === 'emoji 🚀 ünïcödé 日本語'), 'job logs, unicode and all');
    const metrics = await relay.api<{ points: Array<{ name: string }> }>('GET', '/v1/jobs/job_3/metrics');
    t.equal(metrics.body.points.length, 5, 'job metrics');
    const health = await relay.api<{ points: unknown[] }>('GET', `/v1/devices/${DEVICES[0]}/health?range=2h`);
    t.equal(health.status, 200);
    t.ok(health.body.points.length >= 3, `health history (${health.body.points.length} points)`);
    const auditLog = await relay.api<{ entries: Array<{ action: string }> }>('GET', '/v1/audit?limit=100');
    t.ok(['bulk.0', 'bulk.3'].every((a) => auditLog.body.entries.some((e) => e.action === a)), 'the audit log');
    await relay.stop();

    // Identities go on past the copied seqs (a duplicate key would throw here).
    const dpl = await postgres.deployments.create({ id: 'dpl_new', model: 'detector', version: 2, sha256: sha(2), deviceIds: [DEVICES[0]!] }, now);
    t.equal((await postgres.deployments.list(1))[0]!.id, dpl.id, 'a new deployment is the newest');
    t.strictSame(await seqs(url, 'deployments'), { dpl_1: '1', dpl_2: '2', dpl_3: '3', dpl_new: '4' }, 'and takes the next seq');
    const job = await postgres.jobs.create('job_new', { bundleSha256: sha(900), bundleSize: 10, target: { kind: 'selector', selector: { zone: 'nowhere' } }, nodes: 1, command: 'x', env: {} }, now);
    t.equal(job.seq, 5, 'a new job takes the next seq');
    const oldAudit = (await postgres.audit.list({ limit: 1_000 })).map((e) => e.seq);
    const appended = await postgres.audit.append({ ts: now, actor: { kind: 'relay' }, action: 'after.migrate', target: null, outcome: 'ok', status: null, address: null, detail: null }, 100_000);
    t.ok(appended.seq > Math.max(...oldAudit), `a new audit entry's seq (${appended.seq}) is past the copied ones (${Math.max(...oldAudit)})`);
    await postgres.jobs.addMetrics('job_3', [{ rank: 0, name: 'loss', value: 0.05, step: 9, ts: now }]);
    t.strictSame((await postgres.jobs.metrics('job_3')).at(-1), { rank: 0, name: 'loss', value: 0.05, step: 9, ts: now }, 'a new metric point comes after the copied ones');
    const samples = (await postgres.health.samples(DEVICES[0]!, 0)).length;
    await postgres.health.add([{ deviceId: DEVICES[0]!, ts: now, cpu: 1, memUsed: 1, memTotal: 1, rss: 1, reqRate: 1, errRate: 0, p50: null, p99: null }], BUCKET);
    t.equal((await postgres.health.samples(DEVICES[0]!, 0)).length, samples + 1, 'a new health sample beside the copied ones');
  });

  t.test('the summary table, and a database that holds a workspace is refused and left as it was', async (t) => {
    const now = Date.now();
    const dataDir = await workspace(t, now);
    const url = await database();
    const first = await migrateCli(dataDir, url);
    t.equal(first.code, 0, first.stderr);
    t.match(first.stdout, /^TABLE +ROWS +SHA256\napi_tokens +3 +[0-9a-f]{16}\n/);
    t.match(first.stdout, /\ntotal +\d+ *\n$/);
    const held = await targetRows(url);

    const again = await migrateCli(dataDir, url);
    t.equal(again.code, 1);
    t.match(again.stderr, /^error: PostgreSQL at .* already holds workspace data \(in api_tokens, enroll_tokens, devices, .*audit_log\): migrate into an empty database \(createdb -O USER NEWDB\)/);
    oneLine(t, again.stderr);
    t.strictSame(await targetRows(url), held, 'the database is left as it was');

    // A relay's first start leaves one row (its admin token): that is a workspace too.
    const started = await database();
    const store = await PostgresStore.open(started);
    await store.tokens.add({ id: 'f1f2f3f4f5f6', name: 'admin', hash: 'h', role: 'admin' });
    await store.close();
    const refused = await migrateCli(dataDir, started);
    t.equal(refused.code, 1);
    t.match(refused.stderr, /already holds workspace data \(in api_tokens\)/);
    t.strictSame(await targetRows(started), { ...emptyTables, api_tokens: 1 });
  });

  t.test('failures on PostgreSQL are one line and roll everything back', async (t) => {
    const now = Date.now();
    const dataDir = await workspace(t, now);

    const noDb = new URL(cluster.url);
    noDb.pathname = '/no_such_db';
    const missing = await migrateCli(dataDir, noDb.toString());
    t.equal(missing.code, 1);
    t.match(missing.stderr, /^error: cannot open PostgreSQL at .*no_such_db: .*: create the database first \(createdb -O USER DB\)\n$/);

    const wrongUser = new URL(cluster.url);
    wrongUser.username = 'nobody';
    const denied = await migrateCli(dataDir, wrongUser.toString());
    t.equal(denied.code, 1);
    t.match(denied.stderr, /^error: cannot open PostgreSQL at postgres:\/\/nobody@.*: check the user, and its password in PGPASSWORD or ~\/\.pgpass\n$/);

    // Rows that change on their way in: the checksum of that table differs, nothing is committed.
    const altered = await database();
    await (await PostgresStore.open(altered)).close();
    await sql(altered, `CREATE FUNCTION rename_device() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := NEW.name || '!'; RETURN NEW; END $$;
      CREATE TRIGGER rename_device BEFORE INSERT ON devices FOR EACH ROW EXECUTE FUNCTION rename_device()`);
    const mismatch = await migrateCli(dataDir, altered);
    t.equal(mismatch.code, 1);
    t.match(mismatch.stderr, /^error: devices: the rows read back from PostgreSQL differ from relay\.db's \(checksum [0-9a-f]{12}… instead of [0-9a-f]{12}…\): rolled back, nothing was written/m);
    oneLine(t, mismatch.stderr);
    t.strictSame(await targetRows(altered), emptyTables, 'every table is left empty, those copied before it too');

    // Rows that vanish: the count of that table differs.
    await sql(altered, `DROP TRIGGER rename_device ON devices; CREATE FUNCTION drop_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
      CREATE TRIGGER drop_row BEFORE INSERT ON job_logs FOR EACH ROW WHEN (NEW.seq = 2) EXECUTE FUNCTION drop_row()`);
    const lost = await migrateCli(dataDir, altered);
    t.equal(lost.code, 1);
    t.match(lost.stderr, /error: job_logs: 8 rows in relay\.db but 7 read back from PostgreSQL: rolled back, nothing was written/);
    t.strictSame(await targetRows(altered), emptyTables);

    // A database a relay (or another migration) holds a lock on: refused after lock_timeout.
    const busy = await database();
    await (await PostgresStore.open(busy)).close();
    const holder = new Client({ connectionString: busy });
    holder.on('error', () => undefined);
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE audit_log IN SHARE MODE');
    const locked = await migrateCli(dataDir, busy);
    await holder.query('ROLLBACK');
    await holder.end();
    t.equal(locked.code, 1);
    t.match(locked.stderr, /^error: the tables of PostgreSQL at .* are in use \(a relay running on it\?\): stop what uses them/m);
  });

  t.test('a value or row PostgreSQL cannot hold stops the copy, naming it; NUL in a log line is bytes and fine', async (t) => {
    const now = Date.now();
    // NUL characters: job logs are bytes in PostgreSQL (populate's lines hold one); a device name is text.
    const dataDir = await workspace(t, now, { name: 'cam\u0000era' });
    const url = await database();
    const before = fileHashes(dataDir);
    const res = await migrateCli(dataDir, url);
    t.equal(res.code, 1);
    t.match(res.stderr, /^error: devices row id="dev_1b1b1b1b1b1b": name holds a NUL character \(\\u0000\), which PostgreSQL text cannot hold: change that value on the SQLite relay, then migrate again; nothing was written$/m);
    t.strictSame(await targetRows(url), emptyTables, 'nothing was written');
    t.strictSame(fileHashes(dataDir), before);

    // A row SQLite took with its foreign keys off (a workspace mended by hand): PostgreSQL refuses
    // it, and the batch is gone through row by row to name it.
    const broken = new Database(join(dataDir, 'relay.db'));
    broken.pragma('foreign_keys = OFF');
    broken.exec("UPDATE devices SET name = 'camera' WHERE id = 'dev_1b1b1b1b1b1b'");
    broken.prepare("INSERT INTO rollouts (deployment_id, device_id, state, reason, updated_at) VALUES ('dpl_1', 'dev_gone', 'pending', NULL, 1)").run();
    broken.close();
    const refused = await migrateCli(dataDir, url);
    t.equal(refused.code, 1);
    t.match(refused.stderr, /^error: rollouts row deployment_id="dpl_1", device_id="dev_gone": PostgreSQL refuses it: insert or update on table "rollouts" violates foreign key constraint .*: change that row on the SQLite relay, then migrate again; nothing was written$/m);
    oneLine(t, refused.stderr);
    t.strictSame(await targetRows(url), emptyTables);

    // Values SQLite's dynamic typing let in that no relay writes: each named, in-process.
    const pristine = await workspace(t, now);
    const corruptions: Array<[string, RegExp]> = [
      ["UPDATE devices SET online = 2 WHERE id = 'dev_0a0a0a0a0a0a'", /^devices row id="dev_0a0a0a0a0a0a": online is the integer 2, not 0 or 1: /],
      ["UPDATE devices SET created_at = 'yesterday' WHERE id = 'Dev_C'", /^devices row id="Dev_C": created_at is the text "yesterday", not an integer: /],
      ["UPDATE devices SET labels = '{bad' WHERE id = 'dev-e'", /^devices row id="dev-e": labels is not JSON \(the text "\{bad"\): /],
      ["UPDATE devices SET name = X'00ff' WHERE id = 'dev-e'", /^devices row id="dev-e": name is a blob of 2 bytes, not text: /],
      ["UPDATE health_samples SET cpu = 'high' WHERE rowid = 2", /^health_samples row id=2: cpu is the text "high", not a number: /],
    ];
    for (const [change, message] of corruptions) {
      const dir = tempDir(t, 'migrate-corrupt');
      copyFileSync(join(pristine, 'relay.db'), join(dir, 'relay.db'));
      const db = new Database(join(dir, 'relay.db'));
      db.exec(change);
      db.close();
      await t.rejects(migrateStore({ dataDir: dir, url }), { message }, change);
    }
    t.strictSame(await targetRows(url), emptyTables, 'and nothing was written');
  });

  t.test('an old schema is migrated on a copy: relay.db keeps its version and bytes; seqs go on past the highest ever given', async (t) => {
    const dataDir = tempDir(t, 'migrate-old');
    const file = join(dataDir, 'relay.db');
    // relay.db as a relay of three schema versions ago left it.
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    for (const [v, step] of SQLITE_MIGRATIONS.slice(0, 3).entries()) {
      old.exec(step);
      old.pragma(`user_version = ${v + 1}`);
    }
    old.prepare('INSERT INTO devices (id, name, labels, secret_hash, created_at, online) VALUES (?, ?, ?, ?, ?, ?)').run('dev_old', 'old one', '{"site":"lab"}', 'sh', 1_000, 1);
    old.prepare('INSERT INTO models (name, version, sha256, size, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)').run('m', 1, sha(1), 10, JSON.stringify(signature), 2_000);
    old.prepare('INSERT INTO models (name, version, sha256, size, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)').run('m', 2, sha(2), 20, JSON.stringify(signature), 3_000);
    for (const id of ['d1', 'd2', 'd3']) old.prepare("INSERT INTO deployments (id, model, version, sha256, state, created_at) VALUES (?, 'm', 1, ?, 'succeeded', 4000)").run(id, sha(1));
    old.prepare("DELETE FROM deployments WHERE id = 'd3'").run(); // AUTOINCREMENT remembers 3
    old.prepare("INSERT INTO jobs (id, state, spec, created_at) VALUES ('j1', 'succeeded', ?, 5000)").run(JSON.stringify({ bundleSha256: sha(9), bundleSize: 1, target: { kind: 'local' }, nodes: 1, command: 'x', env: {} }));
    old.prepare("INSERT INTO job_logs (job_id, seq, rank, ts, stream, text) VALUES ('j1', 1, 0, 5001, 'stdout', ?)").run('old ü line');
    old.exec("CREATE TABLE notes_by_hand (note TEXT); INSERT INTO notes_by_hand VALUES ('mine')");
    old.close();
    const before = fileHashes(dataDir);
    const url = await database();

    const res = await migrateCli(dataDir, url, '--json');
    t.equal(res.code, 0, res.stderr);
    t.match(res.stderr, new RegExp(`relay\\.db is at schema version 3 of ${SQLITE_MIGRATIONS.length}: brought up to date on a copy \\(relay\\.db itself is left as it is\\)`));
    t.equal((JSON.parse(res.stdout) as { sqliteSchemaVersion: number }).sqliteSchemaVersion, 3);
    t.match(res.stderr, /relay\.db has tables the relay does not use \(notes_by_hand\): not copied/, 'a table made by hand is named, and left');
    t.strictSame(fileHashes(dataDir), before, 'relay.db is left as it was');
    const check = new Database(file);
    t.equal(check.pragma('user_version', { simple: true }), 3, 'still at its old version');
    check.close();

    const postgres = await PostgresStore.open(url);
    t.teardown(() => postgres.close());
    t.match(await postgres.devices.get('dev_old'), { name: 'old one', labels: { site: 'lab' }, online: true, trainingAttached: false, datasets: [] }, 'the columns later versions added have their defaults');
    t.equal((await postgres.models.addVersion('m', sha(3), 30, signature)).record.version, 3, 'model_names was filled by the migration the copy went through');
    t.strictSame(await postgres.jobs.logs('j1', 0, 10), [{ seq: 1, rank: 0, ts: 5001, stream: 'stdout', text: 'old ü line' }]);
    await postgres.deployments.create({ id: 'd4', model: 'm', version: 1, sha256: sha(1), deviceIds: [] }, 6_000);
    t.strictSame(await seqs(url, 'deployments'), { d1: '1', d2: '2', d4: '4' }, 'seq 3 is not given again (SQLite would not either)');
  });

  t.test('property: odd text of any code point moves unchanged (in-process)', async (t) => {
    const now = Date.now();
    const noNul = (s: string) => s.replace(/\u0000/g, '');
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary', maxLength: 24 }).map(noNul),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }).map(noNul).filter((s) => s.length > 0 && s !== 'gpu' && s !== 'rack' && s !== 'zone'),
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }).map(noNul).filter((s) => s.length > 0),
        async (name, label, line, detail) => {
          const dir = tempDir(t, `migrate-prop-${++run}`);
          const store = new SqliteStore(join(dir, 'relay.db'));
          await populate(store, now, { name, label, line, detail });
          const wanted = await readAll(store, now);
          await store.close();
          const url = await database();
          const result = await migrateStore({ dataDir: dir, url });
          const postgres = await PostgresStore.open(url);
          try {
            const found = await readAll(postgres, now);
            if (JSON.stringify(found) !== JSON.stringify(wanted)) {
              const i = found.findIndex((x, j) => JSON.stringify(x) !== JSON.stringify(wanted[j]));
              throw new Error(`${wanted[i]?.[0]}: ${JSON.stringify(found[i])} instead of ${JSON.stringify(wanted[i])}`);
            }
          } finally {
            await postgres.close();
          }
          return result.tables.length === MIGRATED_TABLES.length;
        },
      ),
      { numRuns: 8 },
    );
    t.pass(`${run} workspaces of odd text moved unchanged`);
  });
}

