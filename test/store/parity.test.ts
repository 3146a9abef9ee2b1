// SqliteStore and PostgresStore side by side: one flow of calls across every repository, run on
// each, gives the same answers, record for record (key order included), in the same order. The
// PostgreSQL database is made with an ICU locale where it can be, so that an ORDER BY that went by
// the database's collation instead of code points (SQLite's BINARY) would show. The clock the
// stores read (a token's and a version's createdAt) stands still meanwhile.

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HealthMessage, ModelSignature, ReportedState } from '@outpost/shared';
import { PostgresStore } from '../../packages/relay/dist/store/postgres-store.js';
import { SqliteStore } from '../../packages/relay/dist/store/sqlite-store.js';
import type { Store } from '../../packages/relay/dist/store/store.js';
import type { HealthSample, JobSpec, NewAuditEntry, RolloutStrategy } from '../../packages/relay/dist/store/records.js';
import { createDatabase, POSTGRES_SKIP, startPostgres } from '../helpers/postgres.js';

const sha = (n: number): string => n.toString(16).padStart(64, '0');
const signature: ModelSignature = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }] };
const heartbeat: HealthMessage = { ts: 1, uptimeS: 1, cpuPercent: 12.5, memory: { rssBytes: 1, usedBytes: 1, totalBytes: 2 }, disk: { freeBytes: 1, totalBytes: 2 }, models: {} };
const rolling: RolloutStrategy = { kind: 'rolling', batch: '25%', canary: 1, failureThreshold: 2, healthWindowMs: 0 };
const jobSpec = (over: Partial<JobSpec> = {}): JobSpec => ({ bundleSha256: sha(900), bundleSize: 10, target: { kind: 'local' }, nodes: 1, command: 'python train.py', env: { Z: '1', A: '2' }, ...over });
const sample = (deviceId: string, ts: number, cpu: number, p50: number | null, p99: number | null): HealthSample => ({ deviceId, ts, cpu, memUsed: cpu * 3.3, memTotal: 1_000 + ts, rss: cpu / 7, reqRate: cpu * 0.1, errRate: cpu * 0.01, p50, p99 });
const audit = (ts: number, over: Partial<NewAuditEntry> = {}): NewAuditEntry => ({ ts, actor: { kind: 'token', id: 'tok_1', name: 'ci' }, action: 'thing.do', target: null, outcome: 'ok', status: 200, address: '127.0.0.1', detail: null, ...over });
/** Ids whose order differs by code point and by a locale's collation. */
const DEVICES = ['dev_b', 'Dev_C', 'dev_a', 'dév_d', 'dev-e'];

/** Objects from GROUP BY (no order the stores promise): their keys sorted. */
const sortedKeys = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * models.rollouts promises newest deployment first; within one deployment SQLite's order is its
 * plan's (by rollout state through an index, then rowid): compared by device id there.
 */
const byDeploymentThenDevice = <R extends { deploymentId: string; deviceId: string }>(rows: R[]): R[] => {
  const rank = new Map<string, number>();
  for (const r of rows) if (!rank.has(r.deploymentId)) rank.set(r.deploymentId, rank.size);
  return [...rows].sort((a, b) => rank.get(a.deploymentId)! - rank.get(b.deploymentId)! || (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
};

/** The calls, and what each answered. */
async function flow(store: Store): Promise<Array<[string, unknown]>> {
  const out: Array<[string, unknown]> = [];
  const log = async (what: string, answer: Promise<unknown>) => {
    out.push([what, await answer]);
  };

  // API tokens
  await log('tokens.add admin', store.tokens.add({ id: 'tok_admin', name: 'admin', hash: 'h0', role: 'admin' }));
  await log('tokens.add ci', store.tokens.add({ id: 'tok_B', name: 'ci', hash: 'h1', role: 'deployer', expiresAt: 9_000 }));
  await log('tokens.add view', store.tokens.add({ id: 'tok_a', name: 'view', hash: 'h2', role: 'viewer', expiresAt: null }));
  await log('tokens.revoke', store.tokens.revoke('tok_B', 5_000));
  await log('tokens.revoke again', store.tokens.revoke('tok_B', 6_000));
  await store.tokens.setLastUsed('tok_a', 60_000);
  await log('tokens.get', store.tokens.get('tok_a'));
  await log('tokens.get none', store.tokens.get('tok_none'));
  await log('tokens.list', store.tokens.list());
  await log('tokens.count', store.tokens.count());

  // enrollment and devices
  for (const [i, id] of DEVICES.entries()) {
    await store.enrollment.addToken({ id: `et_${id}`, hash: `eh${i}`, labels: { zone: i % 2 ? 'b' : 'a', rack: String(i) }, allowDeviceLabels: i === 0, expiresAt: 100_000, usedAt: null });
    await log(`enroll ${id}`, store.enrollment.enroll(`et_${id}`, 1_000 + (i % 2) * 10, { id, name: `name ${id}`, labels: { rack: String(i), zone: i % 2 ? 'b' : 'a', ...(i === 0 ? { gpu: 'yes' } : {}) }, secretHash: `s${i}` }));
  }
  await log('enroll used', store.enrollment.enroll('et_dev_a', 2_000, { id: 'dev_x', name: 'x', labels: {}, secretHash: 's' }));
  await store.enrollment.addToken({ id: 'et_old', hash: 'eh', labels: {}, allowDeviceLabels: false, expiresAt: 500, usedAt: null });
  await log('enroll expired', store.enrollment.enroll('et_old', 500, { id: 'dev_y', name: 'y', labels: {}, secretHash: 's' }));
  await log('enrollment.getToken', store.enrollment.getToken('et_dev_b'));
  await log('enrollment.getToken old', store.enrollment.getToken('et_old'));
  await store.devices.setLabels('dev_a', { zone: 'a', rack: '2', 'z-last': 'ü', a: '' });
  await store.devices.setOnline('dev_a', true, 3_000);
  await store.devices.setOnline('Dev_C', true, 3_100);
  await store.devices.setOnline('Dev_C', false, 3_200);
  const reported: ReportedState = { revision: 2, models: [{ name: 'm', version: 1, sha256: sha(1), state: 'serving' }] };
  await store.devices.setReported('dev_b', reported, 3_300);
  await store.devices.setTrainingAttached('dev_b', true);
  await store.devices.setCapabilities('dev_b', true, ['mnist', 'cifar'], { accelerators: ['cuda', 'gpu'], executionProviders: ['cpu', 'cuda'] });
  await store.devices.setCertificate('dev_a', { serial: 's1', issuedAt: 1_000, expiresAt: 9_000 }, null);
  await store.devices.setCertificate('dev_a', { serial: 's2', issuedAt: 2_000, expiresAt: 10_000 }, 's1');
  await store.devices.setCertificateRenewBefore('dev_a', 2_500);
  await log('devices.certificate', store.devices.certificate('dev_a'));
  await log('devices.certificate none', store.devices.certificate('dev_none'));
  await log('devices.secretHash', store.devices.secretHash('dév_d'));
  await log('devices.count', store.devices.count());
  await log('devices.list', store.devices.list());
  await log('devices.get', store.devices.get('dev_b'));

  // models
  await log('models.addVersion Zeta 1', store.models.addVersion('Zeta', sha(1), 100, signature));
  await log('models.addVersion alpha 1', store.models.addVersion('alpha', sha(2), 200, signature, { lineage: { jobId: 'job_1', target: 'dev_a', metrics: { loss: { latest: 0.3, best: 0.1 } } } }));
  await log('models.addVersion alpha 2', store.models.addVersion('alpha', sha(3), 300, signature, { sample: { sha256: sha(30), size: 3 }, selfTest: { input: 'sample', ok: true } }));
  await log('models.addVersion alpha 2 again, a new sample', store.models.addVersion('alpha', sha(3), 300, signature, { sample: { sha256: sha(31), size: 4 } }));
  await log('models.addVersion alpha 3', store.models.addVersion('alpha', sha(4), 400, signature));
  await log('models.addVersion émile 1', store.models.addVersion('émile', sha(5), 500, signature));
  await log('models.deleteVersion', store.models.deleteVersion('alpha', 3));
  await log('models.deleteVersion again', store.models.deleteVersion('alpha', 3));
  await log('models.addVersion alpha 4', store.models.addVersion('alpha', sha(6), 600, signature));
  await log('models.list', store.models.list());
  await log('models.versions', store.models.versions('alpha'));
  await log('models.get latest', store.models.get('alpha'));
  await log('models.get 2', store.models.get('alpha', 2));
  await log('models.get none', store.models.get('alpha', 3));

  // deployments
  await log('deployments.create d1', store.deployments.create({ id: 'd1', model: 'alpha', version: 1, sha256: sha(2), deviceIds: ['dev_b', 'dev_a', 'Dev_C', 'dév_d'] }, 10_000));
  await log('deployments.create d2', store.deployments.create({ id: 'd2', model: 'alpha', version: 2, sha256: sha(3), deviceIds: ['dev-e', 'dev_a', 'dev_b'], selector: { zone: 'a' }, strategy: rolling, serving: { maxBatchSize: 4 }, initialState: 'waiting' }, 11_000));
  await log('deployments.create d3', store.deployments.create({ id: 'd3', model: 'Zeta', version: 1, sha256: sha(1), deviceIds: [], selector: { zone: 'z' } }, 12_000));
  await log('deployments.create d4', store.deployments.create({ id: 'd4', model: 'alpha', version: 1, sha256: sha(2), deviceIds: ['dev_a'] }, 13_000));
  for (const [device, state, reason] of [['dev_a', 'serving', null], ['dev_b', 'failed', 'bad model'], ['Dev_C', 'superseded', 'd4 is newer'], ['dév_d', 'removed', 'labels changed']] as const) {
    await log(`setRolloutState d1 ${device}`, store.deployments.setRolloutState('d1', device, state, reason, 10_100));
  }
  await log('setRolloutState same', store.deployments.setRolloutState('d1', 'dev_a', 'serving', null, 10_200));
  await log('setRolloutState empty reason for null', store.deployments.setRolloutState('d1', 'dev_a', 'serving', '', 10_300));
  await log('setRolloutState new reason', store.deployments.setRolloutState('d1', 'dev_a', 'serving', 'again', 10_400));
  await log('setRolloutState d2', store.deployments.setRolloutState('d2', 'dev_b', 'pending', null, 11_100));
  await store.deployments.addRollout('d3', 'Dev_C', 12_100);
  await store.deployments.addRollout('d2', 'dev_a', 11_200);
  await store.deployments.setState('d4', 'rolled-back');
  await log('deployments.get', store.deployments.get('d2'));
  await log('deployments.info', store.deployments.info('d3'));
  await log('deployments.get none', store.deployments.get('none'));
  await log('deployments.rolloutCounts', store.deployments.rolloutCounts('d1').then(sortedKeys));
  await log('deployments.list', store.deployments.list());
  await log('deployments.list 2', store.deployments.list(2));
  await log('deployments.lastPerVersion', store.deployments.lastPerVersion('alpha'));
  await log('deployments.active', store.deployments.active(1));
  await log('deployments.countByState', store.deployments.countByState().then(sortedKeys));
  for (const id of DEVICES) {
    await log(`deployments.forDevice ${id}`, store.deployments.forDevice(id));
    await log(`deployments.withSelector ${id}`, store.deployments.withSelector(id));
  }
  await log('deployments.staged', store.deployments.staged());
  await log('models.rollouts', store.models.rollouts('alpha').then(byDeploymentThenDevice));

  // jobs
  await log('jobs.create 1', store.jobs.create('job_1', jobSpec({ target: { kind: 'device', deviceId: 'dev_b' }, dataset: 'mnist', registerModel: { name: 'alpha', output: 'model.onnx' } }), 20_000));
  await log('jobs.create 2', store.jobs.create('job_2', jobSpec({ bundleSha256: sha(901), nodes: 2, target: { kind: 'selector', selector: { zone: 'a' } } }), 21_000));
  await log('jobs.create 3', store.jobs.create('job_3', jobSpec(), 22_000));
  await store.jobs.addRuns('job_1', [{ rank: 0, target: 'dev_b' }], 20_100);
  await store.jobs.addRuns('job_2', [{ rank: 1, target: 'dev_a' }, { rank: 0, target: 'Dev_C' }], 21_100);
  await store.jobs.setState('job_1', 'running', 20_200);
  await store.jobs.setState('job_2', 'running', 21_200);
  await log('jobs.setRunState running', store.jobs.setRunState('job_1', 0, 'running', 20_300));
  await log('jobs.setRunState same', store.jobs.setRunState('job_1', 0, 'running', 20_400));
  await log('jobs.setRunState failed', store.jobs.setRunState('job_2', 1, 'failed', 21_300, 3, 'exit 3'));
  await log('jobs.setRunState after finished', store.jobs.setRunState('job_2', 1, 'succeeded', 21_400, 0));
  await log('jobs.busyTargets', store.jobs.busyTargets().then((s) => [...s].sort()));
  await log('jobs.appendLogs', store.jobs.appendLogs('job_1', [{ rank: 0, ts: 1, stream: 'stdout', text: 'one' }, { rank: 0, ts: 2, stream: 'stderr', text: 'twó' }], 3));
  await log('jobs.appendLogs over the cap', store.jobs.appendLogs('job_1', [{ rank: 0, ts: 3, stream: 'stdout', text: 'three' }, { rank: 0, ts: 4, stream: 'stdout', text: 'four' }], 3));
  await log('jobs.appendLogs, odd lines', store.jobs.appendLogs('job_2', [{ rank: 1, ts: 1.25, stream: 'stdout', text: 'nul \u0000 here' }, { rank: 1, ts: 2, stream: 'stdout', text: 'emoji 🚀 ünï' }, { rank: 1, ts: 3, stream: 'stdout', text: '' }], 10));
  await log('jobs.logs', store.jobs.logs('job_1', 1, 10));
  await log('jobs.logs, odd lines', store.jobs.logs('job_2', 0, 10));
  await store.jobs.addMetrics('job_1', [
    { rank: 0, name: 'loss', value: 0.9, step: 1, ts: 10 },
    { rank: 0, name: 'Acc', value: 0.1, step: null, ts: 10 },
    { rank: 0, name: 'loss', value: 0.7, step: 2.5, ts: 20 },
    { rank: 0, name: 'loss', value: 0.8, step: 3, ts: 20 },
  ]);
  await log('jobs.metrics', store.jobs.metrics('job_1'));
  await log('jobs.metricSummary', store.jobs.metricSummary('job_1'));
  await store.jobs.addOutput('job_1', { rank: 0, path: 'model.onnx', sha256: sha(40), size: 40 });
  await store.jobs.addOutput('job_1', { rank: 0, path: 'Log.txt', sha256: sha(41), size: 41 });
  await store.jobs.addOutput('job_1', { rank: 0, path: 'model.onnx', sha256: sha(42), size: 42 });
  await log('jobs.outputs', store.jobs.outputs('job_1'));
  await log('jobs.countRunRecords', store.jobs.countRunRecords('job_1', 0));
  await store.jobs.setState('job_1', 'failed', 23_000, 'rank 0 failed');
  await store.jobs.setState('job_1', 'failed', 23_100);
  await store.jobs.setModel('job_3', { name: 'alpha', version: 4 });
  await log('jobs.get', store.jobs.get('job_1'));
  await log('jobs.list', store.jobs.list());
  await log('jobs.inState', store.jobs.inState('running'));

  // artifact references
  for (const n of [1, 2, 3, 30, 31, 40, 41, 42, 900, 901, 999]) {
    await log(`artifactRefs.referenced ${n}`, store.artifactRefs.referenced(sha(n)));
    for (const id of ['dev_a', 'dev_b', 'Dev_C']) await log(`artifactRefs.deviceMayFetch ${id} ${n}`, store.artifactRefs.deviceMayFetch(id, sha(n)));
  }

  // health: several samples of one bucket in one add (their sums in order), then more later
  const bucket = 60_000;
  await store.health.add(
    [sample('dev_a', 61_000, 0.1, null, null), sample('dev_a', 62_000, 0.2, 4.1, 9.3), sample('dev_b', 61_000, 0.7, 1.1, null), sample('dev_a', 62_000, 0.3, 6.7, 7.1), sample('dev_a', 130_000, 1.3, 0.3, 0.2)],
    bucket,
    [{ deviceId: 'dev_a', health: heartbeat, at: 63_000 }, { deviceId: 'dev_b', health: { ...heartbeat, cpuPercent: 1 }, at: 61_000 }, { deviceId: 'dev_a', health: { ...heartbeat, cpuPercent: 99 }, at: 64_000 }],
  );
  await store.health.add([sample('dev_a', 63_000, 0.6, 2.2, 11.5), sample('dev_b', 65_000, 0.4, null, 3.3)], bucket);
  await log('health.samples', store.health.samples('dev_a', 62_000));
  await log('health.rollups a', store.health.rollups('dev_a', 0, 1_000_000, bucket));
  await log('health.rollups b', store.health.rollups('dev_b', 0, 1_000_000, bucket));
  await log('devices.get with health', store.devices.get('dev_a'));
  await store.health.prune(62_000, 120_000);
  await log('health.samples pruned', store.health.samples('dev_a', 0));
  await log('health.rollups pruned', store.health.rollups('dev_a', 0, 1_000_000, bucket));
  await store.health.deleteDevice('dev_b');
  await log('health.samples deleted', store.health.samples('dev_b', 0));

  // audit
  await log('audit.append token', store.audit.append(audit(100, { target: 'tok_a', detail: { role: 'viewer', b: 1, a: [2] } }), 4));
  await log('audit.append device', store.audit.append(audit(200, { actor: { kind: 'device', id: 'dev_a' }, outcome: 'refused', status: 403 }), 4));
  await log('audit.append relay', store.audit.append(audit(300, { actor: { kind: 'relay' }, outcome: 'failed', status: null, address: null }), 4));
  for (let i = 0; i < 3; i++) await store.audit.append(audit(400 + i), 4);
  await log('audit.list', store.audit.list({ limit: 10 }));
  await log('audit.list since before', store.audit.list({ since: 300, before: 6, limit: 2 }));

  // units of work: one that commits, one that throws
  await log(
    'transaction commits',
    store.transaction(async (tx) => {
      await tx.devices.setLabels('dev-e', { moved: 'yes' });
      await tx.deployments.setRolloutState('d2', 'dev-e', 'pending', null, 30_000);
      return [await tx.deployments.get('d2'), await tx.devices.get('dev-e')];
    }),
  );
  await log(
    'transaction throws',
    store
      .transaction(async (tx) => {
        await tx.tokens.add({ id: 'tok_tx', name: 'tx', hash: 'h', role: 'viewer' });
        await tx.models.addVersion('alpha', sha(7), 700, signature);
        await tx.deployments.create({ id: 'd5', model: 'alpha', version: 5, sha256: sha(7), deviceIds: ['dev_a'] }, 31_000);
        await tx.devices.remove('dev_b');
        throw new Error('boom');
      })
      .catch((err: Error) => err.message),
  );
  await log('after rollback: models.addVersion', store.models.addVersion('alpha', sha(8), 800, signature));
  await log('after rollback: tokens.count', store.tokens.count());
  await log('after rollback: devices.list', store.devices.list());
  await store.devices.remove('dev_a');
  await log('devices.remove: deployment rows', store.deployments.get('d1'));
  await log('devices.remove: models.rollouts', store.models.rollouts('alpha').then(byDeploymentThenDevice));
  return out;
}

const cluster = await startPostgres();
if (!cluster) {
  t.plan(0, POSTGRES_SKIP);
} else {
  t.teardown(cluster.stop);
  t.test('the same calls give the same records on SQLite and PostgreSQL', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-parity-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const sqlite = new SqliteStore(join(dir, 'relay.db'));
    t.teardown(() => sqlite.close());
    // A locale whose collation is not by code point (where the server has ICU).
    const url = await createDatabase(cluster.url, 'parity', { icuLocale: 'en-US' }).catch(() => createDatabase(cluster.url, 'parity_plain'));
    const postgres = await PostgresStore.open(url);
    t.teardown(() => postgres.close());

    // The stores read the clock for a token's and a version's createdAt: one fixed time for both runs.
    const now = Date.now;
    Date.now = () => 1_700_000_000_000;
    let a: Array<[string, unknown]>;
    let b: Array<[string, unknown]>;
    try {
      a = await flow(sqlite);
      b = await flow(postgres);
    } finally {
      Date.now = now;
    }
    t.equal(b.length, a.length, 'as many answers');
    for (let i = 0; i < a.length; i++) {
      const [what, expected] = a[i]!;
      t.strictSame(b[i], [what, expected], what);
      // Key order too (JSON fields come back as they were written).
      if (JSON.stringify(b[i]) !== JSON.stringify(a[i])) t.fail(`${what}: same values, another key order`, { found: JSON.stringify(b[i]), wanted: JSON.stringify(a[i]) });
    }
  });
}
