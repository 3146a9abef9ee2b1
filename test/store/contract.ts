// The store contract: what every Store implementation must do, written once against the
// interface (store.ts) and run on each implementation (sqlite.test.ts, and the others as they
// come), in the spirit of aedes-persistence's abstract.js. Each subtest opens a fresh, empty
// store and closes it. It asserts what a caller can observe through the repositories, never how
// the rows are kept; orders the interface leaves open are compared sorted.

import t, { type Test } from 'tap';
import type { HealthMessage, Labels, ModelSignature, ReportedState } from '@outpost/shared';
import type { Repositories, Store } from '../../packages/relay/dist/store/store.js';
import type { DeviceRolloutState, HealthSample, JobLogLine, JobSpec, NewAuditEntry, RolloutStrategy } from '../../packages/relay/dist/store/records.js';
import { MEMBER_STATES } from '../../packages/relay/dist/store/records.js';

export type OpenStore = () => Promise<{ store: Store; close: () => Promise<void> }>;

export interface ContractOptions {
  /**
   * Subtests (by title, without the implementation's name) that this implementation is known to
   * fail, and why: they still run, as tap todos. A title that names no subtest is an error.
   */
  todo?: Record<string, string>;
}

const signature: ModelSignature = { inputs: [], outputs: [] };
/** A distinct sha256 per number. */
const sha = (n: number): string => n.toString(16).padStart(64, '0');
const BUNDLE = 'b'.repeat(64);
const jobSpec = (over: Partial<JobSpec> = {}): JobSpec => ({ bundleSha256: BUNDLE, bundleSize: 1, target: { kind: 'local' }, nodes: 1, command: 'true', env: {}, ...over });
const heartbeat: HealthMessage = { ts: 1, uptimeS: 1, cpuPercent: 12, memory: { rssBytes: 1, usedBytes: 1, totalBytes: 2 }, disk: { freeBytes: 1, totalBytes: 2 }, models: {} };
const rolling: RolloutStrategy = { kind: 'rolling', batch: 1, canary: 1, failureThreshold: null, healthWindowMs: 0 };
const ALL_ROLLOUT_STATES: DeviceRolloutState[] = ['waiting', 'pending', 'downloading', 'loading', 'serving', 'healthy', 'failed', 'superseded', 'removed', 'canceled', 'rolled-back'];
/** Lets other pending work run (not a timer: one turn of the event loop). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const byId = <T extends { id: string }>(xs: T[]): T[] => [...xs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
const ids = (xs: Array<{ id: string }>): string[] => xs.map((x) => x.id);

/** Enrolls a device through its own token (the only way the interface makes one). */
async function addDevice(store: Store, id: string, at = 1_000, labels: Labels = {}): Promise<void> {
  await store.enrollment.addToken({ id: `tok_${id}`, hash: 'h', labels: {}, allowDeviceLabels: false, expiresAt: at + 1e9, usedAt: null });
  if (!(await store.enrollment.enroll(`tok_${id}`, at, { id, name: `name-${id}`, labels, secretHash: `secret-${id}` }))) throw new Error(`could not enroll ${id}`);
}

/** Registers versions 1..n of a model (sha256 by `base + version`). */
async function addVersions(store: Store, name: string, n: number, base = 0): Promise<void> {
  for (let v = 1; v <= n; v++) await store.models.addVersion(name, sha(base + v), v, signature);
}

function audit(ts: number, action = 'thing.do', over: Partial<NewAuditEntry> = {}): NewAuditEntry {
  return { ts, actor: { kind: 'token', id: 'tok_1', name: 'ci' }, action, target: null, outcome: 'ok', status: 200, address: '127.0.0.1', detail: null, ...over };
}

function healthSample(deviceId: string, ts: number, cpu: number, p50: number | null, p99: number | null): HealthSample {
  return { deviceId, ts, cpu, memUsed: cpu * 10, memTotal: 1_000, rss: cpu * 2, reqRate: cpu / 4, errRate: cpu / 8, p50, p99 };
}

export function storeContract(name: string, open: OpenStore, options: ContractOptions = {}): void {
  const todo = new Map(Object.entries(options.todo ?? {}));
  const titles = new Set<string>();

  /** A subtest on a fresh store, closed when it ends. */
  function test(title: string, body: (t: Test, store: Store) => Promise<void>): void {
    if (titles.has(title)) throw new Error(`two contract subtests are titled "${title}"`);
    titles.add(title);
    const reason = todo.get(title);
    t.test(`${name}: ${title}`, reason === undefined ? {} : { todo: reason }, async (t) => {
      const { store, close } = await open();
      t.teardown(close);
      await body(t, store);
    });
  }

  // ---------------------------------------------------------------- API tokens

  test('tokens: add, get, list oldest first, count with revoked ones', async (t, store) => {
    t.equal(await store.tokens.count(), 0, 'a new store has no token');
    t.strictSame(await store.tokens.list(), []);
    const first = await store.tokens.add({ id: 'tok_1', name: 'admin', hash: 'h1', role: 'admin' });
    t.match(first, { id: 'tok_1', name: 'admin', hash: 'h1', role: 'admin', expiresAt: null, revokedAt: null, lastUsedAt: null });
    t.type(first.createdAt, 'number');
    const second = await store.tokens.add({ id: 'tok_2', name: 'ci', hash: 'h2', role: 'deployer', expiresAt: 5_000 });
    t.equal(second.expiresAt, 5_000);
    await store.tokens.add({ id: 'tok_3', name: 'view', hash: 'h3', role: 'viewer', expiresAt: null });
    t.strictSame(await store.tokens.get('tok_1'), first, 'get gives what add returned');
    t.strictSame(await store.tokens.get('tok_2'), second);
    t.equal(await store.tokens.get('tok_none'), undefined);
    const list = await store.tokens.list();
    t.strictSame(ids(list), ['tok_1', 'tok_2', 'tok_3'], 'oldest first');
    t.ok(list.every((x, i) => i === 0 || list[i - 1]!.createdAt <= x.createdAt), 'createdAt does not go back along the list');
    t.equal(await store.tokens.count(), 3);

    t.equal(await store.tokens.revoke('tok_2', 7_000), true, 'revoking a token');
    t.equal(await store.tokens.revoke('tok_2', 8_000), false, 'a second revocation is refused');
    t.equal(await store.tokens.revoke('tok_none', 8_000), false, 'so is revoking a token that does not exist');
    t.equal((await store.tokens.get('tok_2'))!.revokedAt, 7_000, 'the first revocation time stays');
    t.equal(await store.tokens.count(), 3, 'revoked tokens still count');
    t.strictSame(ids(await store.tokens.list()), ['tok_1', 'tok_2', 'tok_3'], 'and are still listed');

    await store.tokens.setLastUsed('tok_1', 60_000);
    t.equal((await store.tokens.get('tok_1'))!.lastUsedAt, 60_000);
    await store.tokens.setLastUsed('tok_1', 120_000);
    t.equal((await store.tokens.get('tok_1'))!.lastUsedAt, 120_000);
    t.equal((await store.tokens.get('tok_3'))!.lastUsedAt, null, 'other tokens are untouched');
  });

  // ---------------------------------------------------------------- enrollment

  test('enrollment: enroll uses the token and creates the device', async (t, store) => {
    await store.enrollment.addToken({ id: 'et_1', hash: 'eh', labels: { zone: 'a' }, allowDeviceLabels: true, expiresAt: 10_000, usedAt: null });
    t.strictSame(await store.enrollment.getToken('et_1'), { id: 'et_1', hash: 'eh', labels: { zone: 'a' }, allowDeviceLabels: true, expiresAt: 10_000, usedAt: null });
    t.equal(await store.enrollment.getToken('et_none'), undefined);
    t.equal(await store.enrollment.enroll('et_1', 5_000, { id: 'dev_a', name: 'alpha', labels: { zone: 'a', rack: '1' }, secretHash: 'sh' }), true);
    t.equal((await store.enrollment.getToken('et_1'))!.usedAt, 5_000, 'the token is used');
    t.strictSame(await store.devices.get('dev_a'), {
      id: 'dev_a',
      name: 'alpha',
      labels: { zone: 'a', rack: '1' },
      createdAt: 5_000,
      online: false,
      lastSeen: null,
      health: null,
      reported: null,
      trainingAttached: false,
      acceptsTraining: false,
      datasets: [],
      accelerators: [],
      executionProviders: [],
    });
    t.equal(await store.devices.secretHash('dev_a'), 'sh');
    t.strictSame(await store.devices.count(), { online: 0, total: 1 });
  });

  test('enrollment: a used, expired or unknown token refuses', async (t, store) => {
    await store.enrollment.addToken({ id: 'et_1', hash: 'eh', labels: {}, allowDeviceLabels: false, expiresAt: 10_000, usedAt: null });
    t.equal(await store.enrollment.enroll('et_1', 1_000, { id: 'dev_a', name: 'a', labels: {}, secretHash: 's' }), true);
    t.equal(await store.enrollment.enroll('et_1', 2_000, { id: 'dev_b', name: 'b', labels: {}, secretHash: 's' }), false, 'used already');
    t.equal((await store.enrollment.getToken('et_1'))!.usedAt, 1_000, 'the first use stays');

    await store.enrollment.addToken({ id: 'et_2', hash: 'eh', labels: {}, allowDeviceLabels: false, expiresAt: 10_000, usedAt: null });
    t.equal(await store.enrollment.enroll('et_2', 10_001, { id: 'dev_c', name: 'c', labels: {}, secretHash: 's' }), false, 'expired');
    t.equal((await store.enrollment.getToken('et_2'))!.usedAt, null, 'an expired token is not marked used');
    t.equal(await store.enrollment.enroll('et_none', 1_000, { id: 'dev_d', name: 'd', labels: {}, secretHash: 's' }), false, 'unknown');

    for (const id of ['dev_b', 'dev_c', 'dev_d']) t.equal(await store.devices.get(id), undefined, `${id} was not created`);
    t.strictSame(await store.devices.count(), { online: 0, total: 1 });
  });

  // ---------------------------------------------------------------- devices

  test('devices: list by creation then id, labels, online counts', async (t, store) => {
    t.strictSame(await store.devices.list(), []);
    t.strictSame(await store.devices.count(), { online: 0, total: 0 });
    t.equal(await store.devices.get('dev_none'), undefined);
    t.equal(await store.devices.secretHash('dev_none'), undefined);
    await addDevice(store, 'dev_b', 100);
    await addDevice(store, 'dev_a', 200);
    await addDevice(store, 'dev_c', 100);
    t.strictSame(ids(await store.devices.list()), ['dev_b', 'dev_c', 'dev_a'], 'created first, then by id');

    await store.devices.setLabels('dev_a', { zone: 'b', gpu: 'yes' });
    t.strictSame((await store.devices.get('dev_a'))!.labels, { zone: 'b', gpu: 'yes' });
    await store.devices.setLabels('dev_a', {});
    t.strictSame((await store.devices.get('dev_a'))!.labels, {}, 'labels are replaced, not merged');

    await store.devices.setOnline('dev_a', true, 300);
    await store.devices.setOnline('dev_b', true, 310);
    t.strictSame(await store.devices.count(), { online: 2, total: 3 });
    t.match(await store.devices.get('dev_a'), { online: true, lastSeen: 300 });
    await store.devices.setOnline('dev_a', false, 400);
    t.strictSame(await store.devices.count(), { online: 1, total: 3 });
    t.match(await store.devices.get('dev_a'), { online: false, lastSeen: 400 });
    t.equal((await store.devices.get('dev_c'))!.online, false, 'others are untouched');
  });

  test('devices: silentSince names the online devices not heard from since a time', async (t, store) => {
    for (const id of ['dev_a', 'dev_b', 'dev_c', 'dev_d']) await addDevice(store, id);
    t.strictSame(await store.devices.silentSince(10_000), [], 'offline devices are never silent');
    await store.devices.setOnline('dev_a', true, 1_000);
    await store.devices.setOnline('dev_b', true, 1_000);
    await store.devices.setOnline('dev_c', true, 1_000);
    await store.devices.setReported('dev_b', { revision: 1, models: [] }, 5_000); // a report is a sign of life
    t.strictSame(await store.devices.silentSince(5_000), ['dev_a', 'dev_c'], 'strictly before, by id');
    t.strictSame(await store.devices.silentSince(1_000), [], 'heard at the bound is not silent');
    await store.devices.setOnline('dev_c', false, 6_000);
    t.strictSame(await store.devices.silentSince(10_000), ['dev_a', 'dev_b'], 'marked offline: no longer listed');
  });

  test('devices: reported state, training and capabilities', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addDevice(store, 'dev_b');
    const reported: ReportedState = { revision: 3, models: [{ name: 'm', version: 1, sha256: sha(1), state: 'serving' }] };
    await store.devices.setReported('dev_a', reported, 2_000);
    t.strictSame((await store.devices.get('dev_a'))!.reported, reported);
    t.equal((await store.devices.get('dev_b'))!.reported, null);

    await store.devices.setTrainingAttached('dev_a', true);
    t.equal((await store.devices.get('dev_a'))!.trainingAttached, true);
    await store.devices.setTrainingAttached('dev_a', false);
    t.equal((await store.devices.get('dev_a'))!.trainingAttached, false);

    await store.devices.setCapabilities('dev_b', true, ['mnist', 'cifar']);
    t.match(await store.devices.get('dev_b'), { acceptsTraining: true, datasets: ['mnist', 'cifar'] });
    await store.devices.setCapabilities('dev_b', false, []);
    t.match(await store.devices.get('dev_b'), { acceptsTraining: false, datasets: [] });
    // What the device computes on, from its status: kept in order, replaced whole, cleared by a status without it.
    await store.devices.setCapabilities('dev_b', true, ['mnist'], { accelerators: ['cuda', 'gpu'], executionProviders: ['cpu', 'webgpu'] });
    t.strictSame(((d) => ({ a: d.accelerators, e: d.executionProviders, datasets: d.datasets }))((await store.devices.get('dev_b'))!), { a: ['cuda', 'gpu'], e: ['cpu', 'webgpu'], datasets: ['mnist'] });
    t.strictSame((await store.devices.list()).find((d) => d.id === 'dev_b')!.accelerators, ['cuda', 'gpu'], 'in lists too');
    await store.devices.setCapabilities('dev_b', true, ['mnist']);
    t.match(await store.devices.get('dev_b'), { accelerators: [], executionProviders: [] }, 'an agent from before accelerators reports none');
  });

  test('devices: certificates, the previous serial and renewBefore', async (t, store) => {
    await addDevice(store, 'dev_a');
    t.equal(await store.devices.certificate('dev_none'), undefined);
    t.strictSame(await store.devices.certificate('dev_a'), { serial: null, previousSerial: null, expiresAt: null, renewBefore: null, issuedAt: null }, 'none issued yet');
    await store.devices.setCertificate('dev_a', { serial: 's1', issuedAt: 1_000, expiresAt: 9_000 }, null);
    t.strictSame(await store.devices.certificate('dev_a'), { serial: 's1', previousSerial: null, expiresAt: 9_000, renewBefore: null, issuedAt: 1_000 });
    await store.devices.setCertificate('dev_a', { serial: 's2', issuedAt: 2_000, expiresAt: 10_000 }, 's1');
    t.strictSame(await store.devices.certificate('dev_a'), { serial: 's2', previousSerial: 's1', expiresAt: 10_000, renewBefore: null, issuedAt: 2_000 });
    await store.devices.setCertificateRenewBefore('dev_a', 3_000);
    t.strictSame(await store.devices.certificate('dev_a'), { serial: 's2', previousSerial: 's1', expiresAt: 10_000, renewBefore: 3_000, issuedAt: 2_000 });
    await store.devices.setCertificate('dev_a', { serial: 's3', issuedAt: 4_000, expiresAt: 12_000 }, null);
    t.match(await store.devices.certificate('dev_a'), { serial: 's3', previousSerial: null, issuedAt: 4_000, expiresAt: 12_000 }, 'null: no previous one stays good');
  });

  test('devices: remove takes the device and its rollout rows', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addDevice(store, 'dev_b');
    await addVersions(store, 'm', 1);
    await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a', 'dev_b'] }, 1_000);
    await store.devices.remove('dev_a');
    t.equal(await store.devices.get('dev_a'), undefined);
    t.equal(await store.devices.secretHash('dev_a'), undefined);
    t.equal(await store.devices.certificate('dev_a'), undefined);
    t.strictSame(ids(await store.devices.list()), ['dev_b']);
    t.strictSame(await store.devices.count(), { online: 0, total: 1 });
    t.strictSame((await store.deployments.get('dep_1'))!.devices.map((d) => d.deviceId), ['dev_b'], 'its rollout row is gone');
    t.strictSame(await store.deployments.rolloutCounts('dep_1'), { pending: 1 });
    t.strictSame(await store.deployments.forDevice('dev_a'), []);
    t.strictSame((await store.models.rollouts('m')).map((r) => r.deviceId), ['dev_b']);
    t.ok(await store.deployments.info('dep_1'), 'the deployment stays');
  });

  // ---------------------------------------------------------------- models

  test('models: versions 1, 2, 3; the same bytes again are the same version', async (t, store) => {
    const a = await store.models.addVersion('m', sha(1), 10, signature);
    t.equal(a.created, true);
    t.match(a.record, { name: 'm', version: 1, sha256: sha(1), size: 10, signature, lineage: null, sample: null, selfTest: null });
    t.type(a.record.createdAt, 'number');
    const b = await store.models.addVersion('m', sha(2), 20, signature);
    t.match(b, { created: true, record: { version: 2 } });
    const again = await store.models.addVersion('m', sha(1), 10, signature);
    t.equal(again.created, false, 'pushing the same bytes creates nothing');
    t.strictSame(again.record, a.record, 'and names the version that holds them');
    const c = await store.models.addVersion('m', sha(3), 30, signature);
    t.match(c, { created: true, record: { version: 3 } }, 'the re-push took no number');
    t.strictSame((await store.models.versions('m')).map((v) => [v.version, v.sha256]), [[1, sha(1)], [2, sha(2)], [3, sha(3)]], 'versions, oldest first');
    const other = await store.models.addVersion('n', sha(1), 10, signature);
    t.match(other, { created: true, record: { name: 'n', version: 1 } }, 'the same bytes under another name are that name’s version 1');
    t.strictSame(await store.models.versions('none'), []);
  });

  test('models: get the latest or one version; extras are kept', async (t, store) => {
    t.equal(await store.models.get('m'), undefined);
    const extras = {
      lineage: { jobId: 'job_1', target: 'dev_a', metrics: { loss: { latest: 0.25, best: 0.125 } } },
      sample: { sha256: sha(100), size: 42 },
      selfTest: { input: 'sample' as const, ok: true },
    };
    const one = (await store.models.addVersion('m', sha(1), 10, signature, extras)).record;
    t.match(one, { lineage: extras.lineage, sample: extras.sample, selfTest: extras.selfTest });
    const two = (await store.models.addVersion('m', sha(2), 20, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3] }], outputs: [] })).record;
    t.strictSame(await store.models.get('m'), two, 'no version: the latest');
    t.strictSame(await store.models.get('m', 1), one);
    t.strictSame(await store.models.get('m', 2), two);
    t.equal(await store.models.get('m', 3), undefined);
    t.equal(await store.models.get('n', 1), undefined);
  });

  test('models: a deleted version’s number is never given again', async (t, store) => {
    await addVersions(store, 'm', 3);
    t.equal(await store.models.deleteVersion('m', 3), true);
    t.equal(await store.models.deleteVersion('m', 3), false, 'gone already');
    t.equal(await store.models.deleteVersion('m', 9), false, 'never was');
    t.equal((await store.models.get('m'))!.version, 2, 'the latest is now 2');
    t.equal(await store.models.get('m', 3), undefined);
    t.match(await store.models.addVersion('m', sha(4), 1, signature), { created: true, record: { version: 4 } }, 'not 3 again');
    await store.models.deleteVersion('m', 1);
    await store.models.deleteVersion('m', 2);
    await store.models.deleteVersion('m', 4);
    t.strictSame(await store.models.versions('m'), []);
    t.equal(await store.models.get('m'), undefined);
    t.match(await store.models.addVersion('m', sha(1), 1, signature), { created: true, record: { version: 5 } }, 'with every version deleted, the count goes on (even for bytes it had before)');
  });

  test('models: list summarizes each model', async (t, store) => {
    t.strictSame(await store.models.list(), []);
    await addVersions(store, 'beta', 2);
    await addVersions(store, 'alpha', 3, 10);
    await store.models.deleteVersion('alpha', 1);
    await addVersions(store, 'gone', 1, 20);
    await store.models.deleteVersion('gone', 1);
    const list = [...(await store.models.list())].sort((a, b) => (a.name < b.name ? -1 : 1));
    t.strictSame(
      list.map((m) => ({ name: m.name, latestVersion: m.latestVersion, versions: m.versions })),
      [
        { name: 'alpha', latestVersion: 3, versions: 2 },
        { name: 'beta', latestVersion: 2, versions: 2 },
      ],
      'a model with no version left is not listed',
    );
    for (const m of list) {
      const newest = Math.max(...(await store.models.versions(m.name)).map((v) => v.createdAt));
      t.equal(m.updatedAt, newest, `${m.name}: updatedAt is its newest version’s`);
    }
  });

  test('models: rollouts are the rows that apply or will apply, newest deployment first', async (t, store) => {
    for (const id of ['dev_a', 'dev_b', 'dev_c']) await addDevice(store, id);
    await addVersions(store, 'm', 4);
    await addVersions(store, 'other', 1, 50);
    await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a', 'dev_b'] }, 1_000);
    await store.deployments.setRolloutState('dep_1', 'dev_a', 'serving', null, 1_100);
    await store.deployments.setRolloutState('dep_1', 'dev_b', 'removed', 'labels changed', 1_100);
    await store.deployments.create({ id: 'dep_2', model: 'm', version: 2, sha256: sha(2), deviceIds: ['dev_a'] }, 2_000);
    await store.deployments.setState('dep_2', 'rolled-back');
    await store.deployments.create({ id: 'dep_3', model: 'm', version: 3, sha256: sha(3), deviceIds: ['dev_c', 'dev_b'], strategy: rolling, initialState: 'waiting' }, 3_000);
    await store.deployments.setRolloutState('dep_3', 'dev_b', 'pending', null, 3_100);
    await store.deployments.create({ id: 'dep_4', model: 'm', version: 4, sha256: sha(4), deviceIds: ['dev_a'] }, 4_000);
    await store.models.deleteVersion('m', 4);
    await store.deployments.create({ id: 'dep_5', model: 'other', version: 1, sha256: sha(51), deviceIds: ['dev_a'] }, 5_000);

    const rows = await store.models.rollouts('m');
    t.strictSame([...new Set(rows.map((r) => r.deploymentId))], ['dep_3', 'dep_1'], 'newest first; not rolled back, not of a deleted version, not of another model');
    const key = (r: { deviceId: string; deploymentId: string }) => `${r.deploymentId}/${r.deviceId}`;
    t.strictSame(
      [...rows].sort((a, b) => (key(a) < key(b) ? -1 : 1)),
      [
        { deviceId: 'dev_a', deploymentId: 'dep_1', version: 1, deploymentState: 'in-progress', state: 'serving' },
        { deviceId: 'dev_b', deploymentId: 'dep_3', version: 3, deploymentState: 'in-progress', state: 'pending' },
        { deviceId: 'dev_c', deploymentId: 'dep_3', version: 3, deploymentState: 'in-progress', state: 'waiting' },
      ],
      'member states and waiting; not removed',
    );
    t.strictSame(await store.models.rollouts('none'), []);
  });

  test('models: rollouts take every member state and waiting, no other', async (t, store) => {
    await addVersions(store, 'm', 1);
    for (const [i, state] of ALL_ROLLOUT_STATES.entries()) {
      await addDevice(store, `dev_${i}`);
      await store.deployments.create({ id: `dep_${state}`, model: 'm', version: 1, sha256: sha(1), deviceIds: [`dev_${i}`] }, 1_000 + i);
      await store.deployments.setRolloutState(`dep_${state}`, `dev_${i}`, state, null, 2_000);
    }
    const want = ALL_ROLLOUT_STATES.filter((s) => MEMBER_STATES.has(s) || s === 'waiting').sort();
    t.strictSame((await store.models.rollouts('m')).map((r) => r.state).sort(), want);
  });

  // ---------------------------------------------------------------- deployments

  test('deployments: create, get with rows by device id, info, rolloutCounts', async (t, store) => {
    for (const id of ['dev_c', 'dev_a', 'dev_b']) await addDevice(store, id);
    await addVersions(store, 'm', 1);
    const serving = { maxBatchSize: 4 };
    const made = await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_c', 'dev_a', 'dev_b'], selector: { zone: 'a' }, strategy: rolling, serving, initialState: 'waiting' }, 1_000);
    const info = { id: 'dep_1', model: 'm', version: 1, sha256: sha(1), state: 'in-progress', selector: { zone: 'a' }, strategy: rolling, serving, createdAt: 1_000 };
    const rows = ['dev_a', 'dev_b', 'dev_c'].map((deviceId) => ({ deviceId, state: 'waiting', reason: null, updatedAt: 1_000 }));
    t.strictSame(made, { ...info, devices: rows }, 'created in progress, its devices in their initial state, sorted by device id');
    t.strictSame(await store.deployments.get('dep_1'), made);
    t.strictSame(await store.deployments.info('dep_1'), info, 'info: without the rows');
    t.equal(await store.deployments.get('dep_none'), undefined);
    t.equal(await store.deployments.info('dep_none'), undefined);
    t.strictSame(await store.deployments.rolloutCounts('dep_1'), { waiting: 3 });

    const plain = await store.deployments.create({ id: 'dep_2', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_b', 'dev_a'] }, 2_000);
    t.match(plain, { selector: null, strategy: null, serving: null, state: 'in-progress' });
    t.strictSame(plain.devices.map((d) => [d.deviceId, d.state]), [['dev_a', 'pending'], ['dev_b', 'pending']], 'initial state: pending when not given');

    await store.deployments.setRolloutState('dep_2', 'dev_a', 'serving', null, 2_100);
    t.strictSame(await store.deployments.rolloutCounts('dep_2'), { pending: 1, serving: 1 });
    t.strictSame(await store.deployments.rolloutCounts('dep_none'), {});

    const empty = await store.deployments.create({ id: 'dep_3', model: 'm', version: 1, sha256: sha(1), deviceIds: [], selector: { zone: 'z' } }, 3_000);
    t.strictSame(empty.devices, [], 'a selector deployment may start with no device');
  });

  test('deployments: setState, setRolloutState false when nothing changes', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addVersions(store, 'm', 1);
    await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000);
    const row = async () => (await store.deployments.get('dep_1'))!.devices[0]!;
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'downloading', null, 1_100), true);
    t.strictSame(await row(), { deviceId: 'dev_a', state: 'downloading', reason: null, updatedAt: 1_100 });
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'downloading', null, 1_200), false, 'same state, same reason');
    t.equal((await row()).updatedAt, 1_100, 'and nothing was written');
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'downloading', 'retry 2', 1_300), true, 'same state, another reason');
    t.strictSame(await row(), { deviceId: 'dev_a', state: 'downloading', reason: 'retry 2', updatedAt: 1_300 });
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'downloading', 'retry 2', 1_400), false);
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'failed', 'retry 2', 1_500), true, 'another state, same reason');
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'serving', null, 1_600), true, 'the reason cleared');
    t.strictSame(await row(), { deviceId: 'dev_a', state: 'serving', reason: null, updatedAt: 1_600 });
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_none', 'serving', null, 1_700), false, 'no such row');
    t.equal(await store.deployments.setRolloutState('dep_none', 'dev_a', 'serving', null, 1_700), false, 'no such deployment');
    // Compare-and-set: only from the state the caller read.
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'healthy', null, 1_800, 'loading'), false, 'not from a state it is not in');
    t.equal((await row()).state, 'serving', 'and nothing was written');
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'healthy', null, 1_900, 'serving'), true, 'from the state it is in');
    t.strictSame(await row(), { deviceId: 'dev_a', state: 'healthy', reason: null, updatedAt: 1_900 });
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'healthy', null, 2_000, 'healthy'), false, 'nothing to change');
    // A NUL from a device's report is stored (PostgreSQL's text cannot hold it: U+FFFD there).
    t.equal(await store.deployments.setRolloutState('dep_1', 'dev_a', 'failed', 'bad\u0000input', 2_100), true, 'a reason with a NUL is written');
    t.ok(['bad\u0000input', 'bad\uFFFDinput'].includes((await row()).reason!), `and read back (${JSON.stringify((await row()).reason)})`);

    for (const state of ['succeeded', 'failed', 'rolled-back', 'in-progress'] as const) {
      await store.deployments.setState('dep_1', state);
      t.equal((await store.deployments.info('dep_1'))!.state, state, `setState ${state}`);
    }
  });

  test('deployments: addRollout adds a pending row, or makes one pending again', async (t, store) => {
    for (const id of ['dev_a', 'dev_b']) await addDevice(store, id);
    await addVersions(store, 'm', 1);
    await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'], selector: { zone: 'a' } }, 1_000);
    await store.deployments.setRolloutState('dep_1', 'dev_a', 'removed', 'labels changed', 1_100);
    await store.deployments.addRollout('dep_1', 'dev_b', 1_200);
    await store.deployments.addRollout('dep_1', 'dev_a', 1_300);
    t.strictSame((await store.deployments.get('dep_1'))!.devices, [
      { deviceId: 'dev_a', state: 'pending', reason: null, updatedAt: 1_300 },
      { deviceId: 'dev_b', state: 'pending', reason: null, updatedAt: 1_200 },
    ]);
    await store.deployments.addRollout('dep_1', 'dev_b', 1_400);
    t.strictSame(await store.deployments.rolloutCounts('dep_1'), { pending: 2 }, 'adding twice makes no second row');
  });

  test('deployments: list newest first, with a limit; countByState', async (t, store) => {
    t.strictSame(await store.deployments.list(), []);
    t.strictSame(await store.deployments.countByState(), {});
    await addDevice(store, 'dev_a');
    await addVersions(store, 'm', 1);
    for (let i = 1; i <= 4; i++) await store.deployments.create({ id: `dep_${i}`, model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000 * i);
    t.strictSame(ids(await store.deployments.list()), ['dep_4', 'dep_3', 'dep_2', 'dep_1']);
    const two = await store.deployments.list(2);
    t.strictSame(ids(two), ['dep_4', 'dep_3']);
    t.strictSame(two[0]!.devices.map((d) => d.deviceId), ['dev_a'], 'with their rows');
    await store.deployments.setState('dep_1', 'succeeded');
    await store.deployments.setState('dep_2', 'rolled-back');
    await store.deployments.setState('dep_3', 'succeeded');
    t.strictSame(await store.deployments.countByState(), { succeeded: 2, 'rolled-back': 1, 'in-progress': 1 });
  });

  test('deployments: lastPerVersion is the newest of each version', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addVersions(store, 'm', 3);
    await addVersions(store, 'other', 1, 10);
    const deploy = (id: string, model: string, version: number, at: number) => store.deployments.create({ id, model, version, sha256: sha(version), deviceIds: ['dev_a'] }, at);
    await deploy('dep_1', 'm', 1, 1_000);
    await deploy('dep_2', 'm', 2, 2_000);
    await deploy('dep_3', 'm', 1, 3_000);
    await deploy('dep_4', 'other', 1, 4_000);
    await deploy('dep_5', 'm', 2, 5_000);
    await store.deployments.setState('dep_1', 'succeeded');
    await store.deployments.setState('dep_3', 'rolled-back');
    const last = [...(await store.deployments.lastPerVersion('m'))].sort((a, b) => a.version - b.version);
    t.strictSame(last, [
      { id: 'dep_3', version: 1, state: 'rolled-back' },
      { id: 'dep_5', version: 2, state: 'in-progress' },
    ]);
    t.strictSame(await store.deployments.lastPerVersion('none'), []);
  });

  test('deployments: active has those in progress and the newest others', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addVersions(store, 'm', 1);
    for (let i = 1; i <= 5; i++) await store.deployments.create({ id: `dep_${i}`, model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000 * i);
    // dep_1 is old and still in progress; the four newer ones are done.
    for (const [id, state] of [['dep_2', 'succeeded'], ['dep_3', 'failed'], ['dep_4', 'canceled'], ['dep_5', 'succeeded']] as const) await store.deployments.setState(id, state);
    const active = await store.deployments.active(2);
    t.strictSame(ids(byId(active)), ['dep_1', 'dep_4', 'dep_5'], 'in progress however old, and the newest 2');
    t.strictSame(active.find((d) => d.id === 'dep_1')!.devices.map((d) => d.deviceId), ['dev_a'], 'with their rows');
    t.strictSame(ids(await store.deployments.active(0)), ['dep_1'], 'recent 0: only those in progress');
    t.strictSame(ids(byId(await store.deployments.active(10))), ['dep_1', 'dep_2', 'dep_3', 'dep_4', 'dep_5']);
  });

  test('deployments: active counts `recent` among the others, not among those in progress', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addVersions(store, 'm', 1);
    for (let i = 1; i <= 3; i++) await store.deployments.create({ id: `dep_${i}`, model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000 * i);
    await store.deployments.setState('dep_1', 'succeeded');
    await store.deployments.setState('dep_2', 'succeeded');
    // dep_3, the newest, is in progress: "the newest 1 others" is dep_2.
    t.strictSame(ids(byId(await store.deployments.active(1))), ['dep_2', 'dep_3']);
  });

  test('deployments: forDevice has member states only, newest first', async (t, store) => {
    for (const id of ['dev_a', 'dev_b']) await addDevice(store, id);
    await addVersions(store, 'm', 3);
    const deploy = (id: string, version: number, deviceIds: string[], at: number, initialState?: 'waiting') =>
      store.deployments.create({ id, model: 'm', version, sha256: sha(version), deviceIds, ...(initialState ? { initialState } : {}) }, at);
    await deploy('f1', 1, ['dev_a'], 1_000);
    await store.deployments.setRolloutState('f1', 'dev_a', 'serving', null, 1_100);
    await deploy('f2', 2, ['dev_a'], 2_000);
    await store.deployments.setRolloutState('f2', 'dev_a', 'removed', 'labels changed', 2_100);
    await deploy('f3', 1, ['dev_a'], 3_000);
    await store.deployments.setState('f3', 'rolled-back');
    await deploy('f4', 3, ['dev_a'], 4_000);
    await store.models.deleteVersion('m', 3);
    await deploy('f5', 2, ['dev_a', 'dev_b'], 5_000);
    await store.deployments.setRolloutState('f5', 'dev_a', 'superseded', 'f6 is newer', 5_100);
    await deploy('f6', 1, ['dev_b'], 6_000);
    await deploy('f7', 1, ['dev_a'], 7_000, 'waiting');

    const mine = await store.deployments.forDevice('dev_a');
    t.strictSame(ids(mine), ['f5', 'f1'], 'not removed, rolled back, of a deleted version, another device’s, or waiting');
    t.strictSame(mine[0], { id: 'f5', model: 'm', version: 2, sha256: sha(2), state: 'in-progress', selector: null, strategy: null, serving: null, createdAt: 5_000, rollout: { state: 'superseded', reason: 'f6 is newer' } });
    t.strictSame(mine[1]!.rollout, { state: 'serving', reason: null });
    t.strictSame(ids(await store.deployments.forDevice('dev_b')), ['f6', 'f5']);
    t.strictSame(await store.deployments.forDevice('dev_none'), []);
  });

  test('deployments: forDevice takes every member state, no other', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addVersions(store, 'm', 1);
    for (const [i, state] of ALL_ROLLOUT_STATES.entries()) {
      await store.deployments.create({ id: `dep_${state}`, model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000 + i);
      await store.deployments.setRolloutState(`dep_${state}`, 'dev_a', state, null, 2_000);
    }
    const want = ALL_ROLLOUT_STATES.filter((s) => MEMBER_STATES.has(s)).sort();
    t.strictSame((await store.deployments.forDevice('dev_a')).map((d) => d.rollout.state).sort(), want);
  });

  test('deployments: withSelector, oldest first, with the device’s row or null', async (t, store) => {
    for (const id of ['dev_a', 'dev_b']) await addDevice(store, id);
    await addVersions(store, 'm', 2);
    const deploy = (id: string, version: number, deviceIds: string[], at: number, selector?: Labels) =>
      store.deployments.create({ id, model: 'm', version, sha256: sha(version), deviceIds, ...(selector ? { selector } : {}) }, at);
    await deploy('s1', 1, ['dev_a'], 1_000, { zone: 'a' });
    await store.deployments.setRolloutState('s1', 'dev_a', 'removed', 'labels changed', 1_100);
    await deploy('plain', 1, ['dev_a'], 2_000);
    await deploy('s2', 1, ['dev_b'], 3_000, { zone: 'b' });
    await deploy('s3', 1, ['dev_a'], 4_000, { zone: 'a' });
    await store.deployments.setState('s3', 'canceled');
    await deploy('s4', 1, ['dev_a'], 5_000, { zone: 'a' });
    await store.deployments.setState('s4', 'rolled-back');
    await deploy('s5', 2, ['dev_a'], 6_000, { zone: 'a' });
    await store.models.deleteVersion('m', 2);
    await deploy('s6', 1, [], 7_000, { zone: 'c' });
    await store.deployments.setState('s6', 'waiting-for-devices');
    await deploy('s7', 1, ['dev_a'], 8_000, { zone: 'a' });
    await store.deployments.setState('s7', 'succeeded');

    const got = await store.deployments.withSelector('dev_a');
    t.strictSame(ids(got), ['s1', 's2', 's6', 's7'], 'not canceled, rolled back, of a deleted version, or without a selector');
    t.strictSame(got[0], { id: 's1', model: 'm', version: 1, sha256: sha(1), state: 'in-progress', selector: { zone: 'a' }, strategy: null, serving: null, createdAt: 1_000, rollout: { state: 'removed', reason: 'labels changed' } });
    t.equal(got[1]!.rollout, null, 'no row for this device: null');
    t.equal(got[2]!.rollout, null);
    t.strictSame(got[3]!.rollout, { state: 'pending', reason: null });
    t.strictSame((await store.deployments.withSelector('dev_b')).map((d) => [d.id, d.rollout?.state ?? null]), [['s1', null], ['s2', 'pending'], ['s6', null], ['s7', null]]);
  });

  test('deployments: staged are those in progress with a strategy, oldest first', async (t, store) => {
    await addDevice(store, 'dev_a');
    await addVersions(store, 'm', 1);
    const deploy = (id: string, at: number, strategy?: RolloutStrategy) =>
      store.deployments.create({ id, model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'], ...(strategy ? { strategy, initialState: 'waiting' as const } : {}) }, at);
    t.strictSame(await store.deployments.staged(), []);
    await deploy('r1', 1_000, rolling);
    await deploy('plain', 2_000);
    await deploy('r2', 3_000, { ...rolling, batch: '50%' });
    await deploy('r3', 4_000, rolling);
    await store.deployments.setState('r3', 'succeeded');
    await deploy('r4', 5_000, rolling);
    await store.deployments.setState('r4', 'rolled-back');
    const staged = await store.deployments.staged();
    t.strictSame(ids(staged), ['r1', 'r2']);
    t.strictSame(staged[1]!.strategy, { ...rolling, batch: '50%' });
    t.strictSame(staged[0]!.devices, [{ deviceId: 'dev_a', state: 'waiting', reason: null, updatedAt: 1_000 }], 'with their rows');
  });

  // ---------------------------------------------------------------- artifact references

  test('artifactRefs: referenced by a model version, a job output, a job bundle', async (t, store) => {
    t.equal(await store.artifactRefs.referenced(sha(1)), false, 'nothing refers to anything yet');
    await addVersions(store, 'm', 2);
    t.equal(await store.artifactRefs.referenced(sha(1)), true, 'a model version’s file');
    await store.models.deleteVersion('m', 1);
    t.equal(await store.artifactRefs.referenced(sha(1)), false, 'not once its version is deleted');
    t.equal(await store.artifactRefs.referenced(sha(2)), true);

    await store.jobs.create('job_1', jobSpec({ bundleSha256: sha(30) }), 1_000);
    t.equal(await store.artifactRefs.referenced(sha(30)), true, 'a job’s bundle');
    t.equal(await store.artifactRefs.referenced(sha(31)), false);
    await store.jobs.addOutput('job_1', { rank: 0, path: 'model.onnx', sha256: sha(31), size: 5 });
    t.equal(await store.artifactRefs.referenced(sha(31)), true, 'a job’s output');
    t.equal(await store.artifactRefs.referenced(sha(99)), false);
  });

  test('artifactRefs: a model version’s sample is referenced', async (t, store) => {
    await store.models.addVersion('m', sha(1), 1, signature, { sample: { sha256: sha(2), size: 3 } });
    t.equal(await store.artifactRefs.referenced(sha(2)), true, 'the version refers to its sample');
  });

  test('artifactRefs: deviceMayFetch what is deployed to it, its sample, a bundle it runs', async (t, store) => {
    for (const id of ['dev_a', 'dev_b']) await addDevice(store, id);
    await store.models.addVersion('m', sha(1), 1, signature, { sample: { sha256: sha(2), size: 3 } });
    await store.models.addVersion('m', sha(3), 1, signature, { sample: { sha256: sha(4), size: 3 } });
    await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000);
    t.equal(await store.artifactRefs.deviceMayFetch('dev_a', sha(1)), true, 'a deployment to it');
    t.equal(await store.artifactRefs.deviceMayFetch('dev_b', sha(1)), false, 'not to another device');
    t.equal(await store.artifactRefs.deviceMayFetch('dev_a', sha(2)), true, 'the sample of a version deployed to it');
    t.equal(await store.artifactRefs.deviceMayFetch('dev_b', sha(2)), false);
    t.equal(await store.artifactRefs.deviceMayFetch('dev_a', sha(3)), false, 'a version not deployed to it');
    t.equal(await store.artifactRefs.deviceMayFetch('dev_a', sha(4)), false, 'nor its sample');

    await store.jobs.create('job_1', jobSpec({ bundleSha256: sha(10), target: { kind: 'device', deviceId: 'dev_b' } }), 1_000);
    t.equal(await store.artifactRefs.deviceMayFetch('dev_b', sha(10)), false, 'a job bundle before the device has a run of it');
    await store.jobs.addRuns('job_1', [{ rank: 0, target: 'dev_b' }], 1_100);
    t.equal(await store.artifactRefs.deviceMayFetch('dev_b', sha(10)), true, 'the bundle of a job it runs');
    t.equal(await store.artifactRefs.deviceMayFetch('dev_a', sha(10)), false);
    t.equal(await store.artifactRefs.deviceMayFetch('dev_a', sha(99)), false);
  });

  // ---------------------------------------------------------------- federated rounds

  test('rounds: put writes an attempt, again updates it; list in round and attempt order', async (t, store) => {
    await store.jobs.create('job_f', jobSpec({ target: { kind: 'selector', selector: { pool: 'a' } } }), 1_000);
    const attempt = (round: number, n: number) => ({
      jobId: 'job_f',
      round,
      attempt: n,
      state: 'running' as const,
      globalSha256: sha(round),
      resultSha256: null,
      clients: [{ deviceId: 'dev_a', rank: 0 }, { deviceId: 'dev_b', rank: 1 }],
      participants: [],
      dropped: [],
      metrics: {},
      startedAt: 2_000,
      deadlineAt: 62_000,
      finishedAt: null,
      error: null,
    });
    t.strictSame(await store.rounds.list('job_f'), []);
    await store.rounds.put(attempt(2, 1));
    await store.rounds.put(attempt(1, 2));
    await store.rounds.put(attempt(1, 1));
    t.strictSame((await store.rounds.list('job_f')).map((r) => [r.round, r.attempt]), [[1, 1], [1, 2], [2, 1]]);
    const done = { ...attempt(1, 1), state: 'aggregated' as const, resultSha256: sha(7), participants: [{ deviceId: 'dev_a', numExamples: 150 }], dropped: [{ client: 'dev_b', reason: 'no update by the round deadline' }], metrics: { loss: 0.25, num_examples: 150 }, finishedAt: 9_000 };
    await store.rounds.put(done);
    t.strictSame((await store.rounds.list('job_f'))[0], done, 'every field back as written, JSON ones too');
    t.strictSame(await store.rounds.list('job_other'), []);
  });

  test('artifactRefs: a round\'s global model and average are referenced; its clients may fetch the global model', async (t, store) => {
    for (const id of ['dev_a', 'dev_b']) await addDevice(store, id);
    await store.jobs.create('job_f', jobSpec({ target: { kind: 'selector', selector: { pool: 'a' } } }), 1_000);
    await store.jobs.addRuns('job_f', [{ rank: 0, target: 'dev_a' }], 1_100);
    await store.rounds.put({ jobId: 'job_f', round: 1, attempt: 1, state: 'aggregated', globalSha256: sha(40), resultSha256: sha(41), clients: [{ deviceId: 'dev_a', rank: 0 }], participants: [], dropped: [], metrics: {}, startedAt: 1, deadlineAt: 2, finishedAt: 3, error: null });
    t.equal(await store.artifactRefs.referenced(sha(40)), true, 'the global model a round started from');
    t.equal(await store.artifactRefs.referenced(sha(41)), true, 'the average it made');
    t.equal(await store.artifactRefs.deviceMayFetch('dev_a', sha(40)), true, 'a client of the job');
    t.equal(await store.artifactRefs.deviceMayFetch('dev_b', sha(40)), false, 'not a device with no run of it');
  });

  // ---------------------------------------------------------------- health

  test('health: add keeps samples, rollups and each device’s latest heartbeat', async (t, store) => {
    for (const id of ['dev_a', 'dev_b']) await addDevice(store, id);
    const bucket = 60_000;
    const samples = [healthSample('dev_a', 61_000, 10, null, null), healthSample('dev_a', 62_000, 30, 4, 9), healthSample('dev_a', 63_000, 20, 6, 7), healthSample('dev_b', 61_500, 50, 1, 2)];
    await store.health.add(samples, bucket, [{ deviceId: 'dev_a', health: heartbeat, at: 63_000 }]);
    t.match(await store.devices.get('dev_a'), { health: heartbeat, lastSeen: 63_000 }, 'the latest heartbeat is the device’s health');
    t.match(await store.devices.get('dev_b'), { health: null, lastSeen: null }, 'only the devices given as latest');
    t.strictSame(await store.health.samples('dev_a', 0), samples.slice(0, 3), 'samples, oldest first');
    t.strictSame(await store.health.samples('dev_a', 62_000), samples.slice(1, 3), 'at or after since');
    t.strictSame(await store.health.samples('dev_b', 0), [samples[3]]);
    t.strictSame(await store.health.samples('dev_none', 0), []);

    await store.health.add([healthSample('dev_a', 125_000, 40, null, null)], bucket);
    t.strictSame(await store.health.rollups('dev_a', 0, 1_000_000, bucket), [
      { deviceId: 'dev_a', ts: 90_000, cpu: 20, memUsed: 200, memTotal: 1_000, rss: 40, reqRate: 5, errRate: 2.5, p50: 5, p99: 9 },
      { deviceId: 'dev_a', ts: 150_000, cpu: 40, memUsed: 400, memTotal: 1_000, rss: 80, reqRate: 10, errRate: 5, p50: null, p99: null },
    ], 'averaged per bucket, placed at its middle; p50 over the samples with latencies, p99 the highest');
    t.strictSame((await store.health.rollups('dev_a', 120_000, 1_000_000, bucket)).map((r) => r.ts), [150_000], 'buckets from since');
    t.strictSame((await store.health.rollups('dev_a', 0, 120_000, bucket)).map((r) => r.ts), [90_000], 'and before until');
    t.strictSame(await store.health.rollups('dev_b', 0, 1_000_000, bucket), [{ deviceId: 'dev_b', ts: 90_000, cpu: 50, memUsed: 500, memTotal: 1_000, rss: 100, reqRate: 12.5, errRate: 6.25, p50: 1, p99: 2 }]);

    await store.health.add([healthSample('dev_a', 64_000, 60, 8, 20)], bucket);
    t.match((await store.health.rollups('dev_a', 0, 120_000, bucket))[0], { cpu: 30, p50: 6, p99: 20 }, 'a later add goes into the same bucket');
  });

  test('health: prune and deleteDevice', async (t, store) => {
    const bucket = 10_000;
    await store.health.add(
      [healthSample('dev_a', 5_000, 1, null, null), healthSample('dev_a', 15_000, 2, null, null), healthSample('dev_a', 25_000, 3, null, null), healthSample('dev_b', 5_000, 4, null, null)],
      bucket,
    );
    await store.health.prune(15_000, 10_000);
    t.strictSame((await store.health.samples('dev_a', 0)).map((s) => s.ts), [15_000, 25_000], 'samples before samplesBefore go');
    t.strictSame(await store.health.samples('dev_b', 0), []);
    t.strictSame((await store.health.rollups('dev_a', 0, 100_000, bucket)).map((r) => r.ts), [15_000, 25_000], 'rollups before rollupsBefore go');
    t.strictSame(await store.health.rollups('dev_b', 0, 100_000, bucket), []);

    await store.health.add([healthSample('dev_b', 35_000, 4, null, null)], bucket);
    await store.health.deleteDevice('dev_a');
    t.strictSame(await store.health.samples('dev_a', 0), []);
    t.strictSame(await store.health.rollups('dev_a', 0, 100_000, bucket), []);
    t.equal((await store.health.samples('dev_b', 0)).length, 1, 'another device’s history stays');
    t.equal((await store.health.rollups('dev_b', 0, 100_000, bucket)).length, 1);
  });

  // ---------------------------------------------------------------- jobs

  test('jobs: create queued, get, list newest first, inState oldest first', async (t, store) => {
    t.strictSame(await store.jobs.list(), []);
    const spec = jobSpec({ env: { A: '1' }, dataset: 'mnist', timeoutMs: 60_000, registerModel: { name: 'm', output: 'model.onnx' } });
    const one = await store.jobs.create('job_1', spec, 1_000);
    t.match(one, { id: 'job_1', state: 'queued', spec, createdAt: 1_000, startedAt: null, finishedAt: null, error: null, model: null, runs: [] });
    t.strictSame(await store.jobs.get('job_1'), one);
    t.equal(await store.jobs.get('job_none'), undefined);
    const two = await store.jobs.create('job_2', jobSpec(), 2_000);
    const three = await store.jobs.create('job_3', jobSpec(), 3_000);
    t.ok(one.seq < two.seq && two.seq < three.seq, 'seq grows');
    t.strictSame(ids(await store.jobs.list()), ['job_3', 'job_2', 'job_1']);
    t.strictSame(ids(await store.jobs.list(2)), ['job_3', 'job_2']);
    await store.jobs.setState('job_2', 'running', 2_500);
    t.strictSame(ids(await store.jobs.inState('queued')), ['job_1', 'job_3']);
    t.strictSame(ids(await store.jobs.inState('running')), ['job_2']);
    t.strictSame(await store.jobs.inState('failed'), []);
  });

  test('jobs: setState sets startedAt, finishedAt and keeps the error; setModel', async (t, store) => {
    await store.jobs.create('job_1', jobSpec(), 1_000);
    await store.jobs.setState('job_1', 'running', 2_000);
    t.match(await store.jobs.get('job_1'), { state: 'running', startedAt: 2_000, finishedAt: null, error: null });
    await store.jobs.setState('job_1', 'failed', 3_000, 'rank 0 exited with 1');
    t.match(await store.jobs.get('job_1'), { state: 'failed', startedAt: 2_000, finishedAt: 3_000, error: 'rank 0 exited with 1' });
    await store.jobs.setState('job_1', 'failed', 4_000);
    t.equal((await store.jobs.get('job_1'))!.error, 'rank 0 exited with 1', 'no error given: the first one stays');
    await store.jobs.setState('job_1', 'failed', 4_000, null);
    t.equal((await store.jobs.get('job_1'))!.error, 'rank 0 exited with 1', 'null neither clears it');

    for (const state of ['succeeded', 'canceled'] as const) {
      await store.jobs.create(`job_${state}`, jobSpec(), 1_000);
      await store.jobs.setState(`job_${state}`, state, 5_000);
      t.match(await store.jobs.get(`job_${state}`), { state, startedAt: null, finishedAt: 5_000, error: null }, `${state} is finished`);
    }

    t.equal((await store.jobs.get('job_1'))!.model, null);
    await store.jobs.setModel('job_1', { name: 'm', version: 3 });
    t.strictSame((await store.jobs.get('job_1'))!.model, { name: 'm', version: 3 });
  });

  test('jobs: addRuns and setRunState', async (t, store) => {
    await store.jobs.create('job_1', jobSpec({ nodes: 2 }), 1_000);
    await store.jobs.addRuns('job_1', [{ rank: 1, target: 'dev_b' }, { rank: 0, target: 'dev_a' }], 2_000);
    t.strictSame((await store.jobs.get('job_1'))!.runs, [
      { rank: 0, target: 'dev_a', state: 'starting', exitCode: null, error: null, startedAt: 2_000, finishedAt: null, rendezvous: null },
      { rank: 1, target: 'dev_b', state: 'starting', exitCode: null, error: null, startedAt: 2_000, finishedAt: null, rendezvous: null },
    ], 'by rank, starting');
    t.equal(await store.jobs.setRunState('job_1', 0, 'running', 2_100), true);
    t.equal(await store.jobs.setRunState('job_1', 0, 'running', 2_200), false, 'running already');
    t.equal(await store.jobs.setRunState('job_1', 5, 'running', 2_200), false, 'no such rank');
    t.equal(await store.jobs.setRunState('job_none', 0, 'running', 2_200), false, 'no such job');
    t.equal(await store.jobs.setRunState('job_1', 0, 'failed', 3_000, 2, 'exit 2'), true);
    t.equal(await store.jobs.setRunState('job_1', 1, 'succeeded', 3_500, 0), true);
    t.strictSame((await store.jobs.get('job_1'))!.runs, [
      { rank: 0, target: 'dev_a', state: 'failed', exitCode: 2, error: 'exit 2', startedAt: 2_000, finishedAt: 3_000, rendezvous: null },
      { rank: 1, target: 'dev_b', state: 'succeeded', exitCode: 0, error: null, startedAt: 2_000, finishedAt: 3_500, rendezvous: null },
    ]);
    t.equal(await store.jobs.setRunState('job_1', 0, 'failed', 4_000, 3, 'again'), false, 'failed already');
  });

  test('jobs: rank 0\'s rendezvous point is set once; latestMetrics and outputs of some ranks', async (t, store) => {
    await store.jobs.create('job_1', jobSpec({ nodes: 3 }), 1_000);
    await store.jobs.addRuns('job_1', [{ rank: 0, target: 'dev_a' }, { rank: 1, target: 'dev_b' }, { rank: 2, target: 'dev_c' }], 2_000);
    t.equal(await store.jobs.setRunRendezvous('job_1', 0, { addr: '10.0.0.5', port: 29500 }), true);
    t.equal(await store.jobs.setRunRendezvous('job_1', 0, { addr: '10.0.0.6', port: 1 }), false, 'once');
    t.equal(await store.jobs.setRunRendezvous('job_1', 9, { addr: '10.0.0.6', port: 1 }), false, 'no such rank');
    t.strictSame((await store.jobs.get('job_1'))!.runs.map((r) => r.rendezvous), [{ addr: '10.0.0.5', port: 29500 }, null, null]);
    await store.jobs.addMetrics('job_1', [
      { rank: 0, name: 'num_examples', value: 10, step: null, ts: 1 },
      { rank: 1, name: 'num_examples', value: 20, step: null, ts: 1 },
      { rank: 1, name: 'num_examples', value: 25, step: null, ts: 2 },
      { rank: 1, name: 'loss', value: 0.5, step: 1, ts: 2 },
      { rank: 2, name: 'loss', value: 0.9, step: 1, ts: 2 },
    ]);
    t.strictSame(await store.jobs.latestMetrics('job_1', [1, 2]), [
      { rank: 1, name: 'loss', value: 0.5 },
      { rank: 1, name: 'num_examples', value: 25 },
      { rank: 2, name: 'loss', value: 0.9 },
    ], 'the latest of each name, only the ranks asked, by rank and name');
    t.strictSame(await store.jobs.latestMetrics('job_1', []), []);
    for (const rank of [0, 1, 2]) await store.jobs.addOutput('job_1', { rank, path: 'model.onnx', sha256: sha(50 + rank), size: 1 });
    t.strictSame((await store.jobs.outputs('job_1', [2, 0])).map((o) => o.rank), [0, 2]);
    t.equal((await store.jobs.outputs('job_1')).length, 3);
  });

  test('jobs: a finished run stays finished', async (t, store) => {
    // Not in store.ts's words; SQLite refuses to move a run out of succeeded, failed or canceled.
    await store.jobs.create('job_1', jobSpec(), 1_000);
    await store.jobs.addRuns('job_1', [{ rank: 0, target: 'dev_a' }], 2_000);
    t.equal(await store.jobs.setRunState('job_1', 0, 'succeeded', 3_000, 0), true);
    t.equal(await store.jobs.setRunState('job_1', 0, 'failed', 4_000, 1, 'late'), false);
    t.match((await store.jobs.get('job_1'))!.runs[0], { state: 'succeeded', exitCode: 0, error: null, finishedAt: 3_000 });
  });

  test('jobs: appendLogs caps per job, seq goes on across calls; logs pages', async (t, store) => {
    await store.jobs.create('job_1', jobSpec({ nodes: 2 }), 1_000);
    await store.jobs.create('job_2', jobSpec(), 1_000);
    const line = (rank: number, text: string, stream: 'stdout' | 'stderr' = 'stdout') => ({ rank, ts: 5_000, stream, text });
    const first = await store.jobs.appendLogs('job_1', [line(0, 'a'), line(1, 'b', 'stderr'), line(0, 'c')], 5);
    t.strictSame(first, [{ ...line(0, 'a'), seq: 1 }, { ...line(1, 'b', 'stderr'), seq: 2 }, { ...line(0, 'c'), seq: 3 }]);
    const second = await store.jobs.appendLogs('job_1', [line(1, 'd'), line(0, 'e'), line(0, 'f')], 5);
    t.strictSame(second, [{ ...line(1, 'd'), seq: 4 }, { ...line(0, 'e'), seq: 5 }], 'up to the cap: the rest are dropped');
    t.strictSame(await store.jobs.appendLogs('job_1', [line(0, 'g')], 5), [], 'at the cap, nothing is kept');
    t.strictSame(await store.jobs.appendLogs('job_2', [line(0, 'x')], 5), [{ ...line(0, 'x'), seq: 1 }], 'each job has its own seq and cap');

    const all = await store.jobs.logs('job_1', 0, 100);
    t.strictSame(all, [...first, ...second]);
    t.strictSame((await store.jobs.logs('job_1', 2, 2)).map((l) => l.seq), [3, 4], 'after a seq, at most limit');
    t.strictSame(await store.jobs.logs('job_1', 5, 100), []);
    t.strictSame(await store.jobs.logs('job_none', 0, 100), []);
    t.strictSame(await store.jobs.countRunRecords('job_1', 0), { logs: 3, metrics: 0, outputs: 0 });
    t.strictSame(await store.jobs.countRunRecords('job_1', 1), { logs: 2, metrics: 0, outputs: 0 });
  });

  test('jobs: metrics, metricSummary, outputs, countRunRecords', async (t, store) => {
    await store.jobs.create('job_1', jobSpec({ nodes: 2 }), 1_000);
    await store.jobs.create('job_2', jobSpec(), 1_000);
    const points = [
      { rank: 0, name: 'loss', value: 0.75, step: 1, ts: 10 },
      { rank: 0, name: 'acc', value: 0.25, step: null, ts: 10 },
      { rank: 0, name: 'loss', value: 0.5, step: 2, ts: 20 },
      { rank: 1, name: 'acc', value: 0.5, step: null, ts: 20 },
    ];
    await store.jobs.addMetrics('job_1', points.slice(0, 2));
    await store.jobs.addMetrics('job_1', points.slice(2));
    await store.jobs.addMetrics('job_1', [{ rank: 0, name: 'loss', value: 0.625, step: 3, ts: 30 }]);
    await store.jobs.addMetrics('job_2', [{ rank: 0, name: 'loss', value: 9, step: 1, ts: 10 }]);
    const key = (m: { name: string; ts: number; rank: number }) => `${m.name}/${m.ts}/${m.rank}`;
    const sorted = <T extends { name: string; ts: number; rank: number }>(xs: T[]) => [...xs].sort((a, b) => (key(a) < key(b) ? -1 : 1));
    t.strictSame(sorted(await store.jobs.metrics('job_1')), sorted([...points, { rank: 0, name: 'loss', value: 0.625, step: 3, ts: 30 }]));
    const summary = [...(await store.jobs.metricSummary('job_1'))].sort((a, b) => (a.name < b.name ? -1 : 1));
    t.strictSame(summary, [
      { name: 'acc', latest: 0.5, step: null, lowest: 0.25, highest: 0.5 },
      { name: 'loss', latest: 0.625, step: 3, lowest: 0.5, highest: 0.75 },
    ], 'latest is the last added, with its step');
    t.strictSame(await store.jobs.metricSummary('job_none'), []);

    t.strictSame(await store.jobs.outputs('job_1'), []);
    await store.jobs.addOutput('job_1', { rank: 1, path: 'b.onnx', sha256: sha(2), size: 2 });
    await store.jobs.addOutput('job_1', { rank: 0, path: 'a.onnx', sha256: sha(1), size: 1 });
    await store.jobs.addOutput('job_1', { rank: 0, path: 'c.txt', sha256: sha(3), size: 3 });
    const outKey = (o: { rank: number; path: string }) => `${o.rank}/${o.path}`;
    t.strictSame([...(await store.jobs.outputs('job_1'))].sort((a, b) => (outKey(a) < outKey(b) ? -1 : 1)), [
      { rank: 0, path: 'a.onnx', sha256: sha(1), size: 1 },
      { rank: 0, path: 'c.txt', sha256: sha(3), size: 3 },
      { rank: 1, path: 'b.onnx', sha256: sha(2), size: 2 },
    ]);
    t.strictSame(await store.jobs.outputs('job_2'), []);
    await store.jobs.appendLogs('job_1', [{ rank: 1, ts: 1, stream: 'stdout', text: 'hi' }], 100);
    t.strictSame(await store.jobs.countRunRecords('job_1', 0), { logs: 0, metrics: 4, outputs: 2 });
    t.strictSame(await store.jobs.countRunRecords('job_1', 1), { logs: 1, metrics: 1, outputs: 1 });
    t.strictSame(await store.jobs.countRunRecords('job_2', 1), { logs: 0, metrics: 0, outputs: 0 });
  });

  test('jobs: busyTargets are the targets of running jobs’ runs', async (t, store) => {
    t.strictSame([...(await store.jobs.busyTargets())], []);
    const job = async (id: string, targets: string[], state?: 'running' | 'succeeded') => {
      await store.jobs.create(id, jobSpec(), 1_000);
      await store.jobs.addRuns(id, targets.map((target, rank) => ({ rank, target })), 1_100);
      if (state) await store.jobs.setState(id, state, 1_200);
    };
    await job('job_run', ['dev_a', 'dev_b'], 'running');
    await store.jobs.setRunState('job_run', 1, 'running', 1_300);
    await job('job_queued', ['dev_c']);
    await job('job_done', ['dev_d'], 'succeeded');
    await job('job_local', ['local'], 'running');
    const busy = await store.jobs.busyTargets();
    t.type(busy, Set);
    t.strictSame([...busy].sort(), ['dev_a', 'dev_b', 'local'], 'starting or running runs of running jobs (local too: the scheduler holds it)');
    await store.jobs.setState('job_run', 'succeeded', 2_000);
    t.strictSame([...(await store.jobs.busyTargets())], ['local'], 'a finished job frees its targets');
  });

  // ---------------------------------------------------------------- audit

  test('audit: append gives growing seqs, keeps the newest `keep`', async (t, store) => {
    t.strictSame(await store.audit.list({ limit: 10 }), []);
    const token = audit(100, 'token.create', { target: 'tok_2', detail: { role: 'viewer' } });
    const a = await store.audit.append(token, 100);
    t.strictSame(a, { ...token, seq: a.seq });
    const device = audit(200, 'device.renew', { actor: { kind: 'device', id: 'dev_a' }, outcome: 'refused', status: 403, address: null });
    const b = await store.audit.append(device, 100);
    const relay = audit(300, 'deployment.rollback', { actor: { kind: 'relay' }, outcome: 'failed', status: null, address: null, target: 'dep_1' });
    const c = await store.audit.append(relay, 100);
    t.ok(a.seq < b.seq && b.seq < c.seq, 'seq grows');
    t.strictSame(await store.audit.list({ limit: 10 }), [{ ...relay, seq: c.seq }, { ...device, seq: b.seq }, { ...token, seq: a.seq }], 'newest first, as appended');

    for (let i = 0; i < 4; i++) await store.audit.append(audit(400 + i), 3);
    const kept = await store.audit.list({ limit: 10 });
    t.strictSame(kept.map((e) => e.ts), [403, 402, 401], 'only the newest 3');
    const next = await store.audit.append(audit(500), 3);
    t.ok(next.seq > kept[0]!.seq, 'dropping entries gives no seq back');
  });

  test('audit: list since, before, limit', async (t, store) => {
    const seqs: number[] = [];
    for (const ts of [100, 200, 300, 400, 500]) seqs.push((await store.audit.append(audit(ts), 100)).seq);
    const [s1, s2, s3, s4, s5] = seqs as [number, number, number, number, number];
    const list = async (q: { since?: number; before?: number; limit: number }) => (await store.audit.list(q)).map((e) => e.seq);
    t.strictSame(await list({ limit: 10 }), [s5, s4, s3, s2, s1]);
    t.strictSame(await list({ limit: 2 }), [s5, s4]);
    t.strictSame(await list({ since: 300, limit: 10 }), [s5, s4, s3], 'at or after since');
    t.strictSame(await list({ before: s4, limit: 10 }), [s3, s2, s1], 'before a seq');
    t.strictSame(await list({ since: 200, before: s5, limit: 2 }), [s4, s3]);
    t.strictSame(await list({ since: 600, limit: 10 }), []);
  });

  // ---------------------------------------------------------------- units of work

  test('transaction: its writes land together, and it returns what work returns', async (t, store) => {
    await addDevice(store, 'dev_a');
    const result = await store.transaction(async (tx) => {
      await tx.tokens.add({ id: 'tok_1', name: 'ci', hash: 'h', role: 'deployer' });
      await tx.models.addVersion('m', sha(1), 1, signature);
      await tx.devices.setLabels('dev_a', { zone: 'b' });
      await tx.audit.append(audit(100, 'token.create'), 100);
      return 42;
    });
    t.equal(result, 42);
    t.ok(await store.tokens.get('tok_1'));
    t.equal((await store.models.get('m'))!.version, 1);
    t.strictSame((await store.devices.get('dev_a'))!.labels, { zone: 'b' });
    t.equal((await store.audit.list({ limit: 10 })).length, 1);
  });

  test('transaction: a throw rolls every write back and is rethrown', async (t, store) => {
    await addDevice(store, 'dev_a', 1_000, { zone: 'a' });
    await store.models.addVersion('m', sha(1), 1, signature);
    const boom = new Error('boom');
    await t.rejects(
      store.transaction(async (tx) => {
        await tx.tokens.add({ id: 'tok_1', name: 'ci', hash: 'h', role: 'deployer' });
        await tx.models.addVersion('m', sha(2), 1, signature);
        await tx.devices.setLabels('dev_a', { zone: 'b' });
        await tx.audit.append(audit(100), 100);
        await tx.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000);
        await tx.jobs.create('job_1', jobSpec(), 1_000);
        await turn();
        throw boom;
      }),
      boom,
      'the error itself',
    );
    t.equal(await store.tokens.count(), 0);
    t.strictSame((await store.models.versions('m')).map((v) => v.version), [1]);
    t.strictSame((await store.devices.get('dev_a'))!.labels, { zone: 'a' });
    t.strictSame(await store.audit.list({ limit: 10 }), []);
    t.equal(await store.deployments.get('dep_1'), undefined);
    t.equal(await store.jobs.get('job_1'), undefined);
    // The store works on after it.
    t.equal(await store.transaction(async (tx) => (await tx.models.addVersion('m', sha(3), 1, signature)).record.version), 2, 'the rolled-back version number was not used');
    t.equal(await store.tokens.count(), 0);
  });

  test('transaction: work sees its own writes', async (t, store) => {
    await addDevice(store, 'dev_a');
    await store.transaction(async (tx) => {
      await tx.devices.setLabels('dev_a', { zone: 'c' });
      t.strictSame((await tx.devices.get('dev_a'))!.labels, { zone: 'c' });
      const { record } = await tx.models.addVersion('m', sha(1), 1, signature);
      t.strictSame(await tx.models.get('m'), record);
      t.equal(await tx.artifactRefs.referenced(sha(1)), true);
      await tx.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: ['dev_a'] }, 1_000);
      t.strictSame(ids(await tx.deployments.forDevice('dev_a')), ['dep_1']);
      await tx.deployments.setRolloutState('dep_1', 'dev_a', 'serving', null, 1_100);
      t.strictSame(await tx.deployments.rolloutCounts('dep_1'), { serving: 1 });
      const entry = await tx.audit.append(audit(100), 100);
      t.strictSame((await tx.audit.list({ limit: 10 })).map((e) => e.seq), [entry.seq]);
    });
  });

  /** Opens a transaction that holds until `release`, for calls made from outside it meanwhile. */
  const held = (store: Store, work: (tx: Repositories) => Promise<void>, after: (tx: Repositories) => Promise<void>) => {
    let opened!: () => void;
    let release!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const go = new Promise<void>((resolve) => (release = resolve));
    const done = store.transaction(async (tx) => {
      await work(tx);
      opened();
      await go;
      await after(tx);
    });
    return { open, release, done };
  };

  test('transaction: calls on the store from outside it, made while it is open, complete', async (t, store) => {
    await addDevice(store, 'dev_a', 1_000, { zone: 'a' });
    const tx = held(
      store,
      (tx) => tx.devices.setLabels('dev_a', { zone: 'b' }),
      async (tx) => void (await tx.tokens.add({ id: 'tok_1', name: 'ci', hash: 'h', role: 'deployer' })),
    );
    await tx.open;
    // Issued before the transaction adds tok_1: on SQLite it waits, and so sees tok_1.
    const outsideRead = Promise.all([store.devices.get('dev_a').then((d) => d?.labels), store.tokens.get('tok_1').then((x) => x !== undefined)]);
    const outsideWrite = store.audit.append(audit(100, 'outside'), 100);
    await turn();
    tx.release();
    await tx.done;
    const [labels, sawToken] = await outsideRead;
    if (store.kind === 'sqlite') {
      t.strictSame(labels, { zone: 'b' }, 'on SQLite it ran after the transaction: it saw its writes');
      t.equal(sawToken, true, 'even those made after the call');
    } else {
      // Elsewhere each call runs beside the transaction: it sees the state before it or after it.
      t.ok(['a', 'b'].includes(labels?.zone ?? ''), 'the labels before or after');
      t.type(sawToken, 'boolean');
    }
    t.match(await outsideWrite, { action: 'outside' });
    t.strictSame((await store.audit.list({ limit: 10 })).map((e) => e.action), ['outside']);
    t.ok(await store.tokens.get('tok_1'), 'and the transaction committed');
  });

  test('transaction: a store call from outside it is not rolled back with it', async (t, store) => {
    const tx = held(
      store,
      async (tx) => void (await tx.audit.append(audit(100, 'inside'), 100)),
      async (tx) => {
        await tx.tokens.add({ id: 'tok_1', name: 'ci', hash: 'h', role: 'deployer' });
        throw new Error('boom');
      },
    );
    await tx.open;
    const outside = store.audit.append(audit(200, 'outside'), 100);
    await turn();
    tx.release();
    await t.rejects(tx.done, { message: 'boom' });
    t.match(await outside, { action: 'outside' });
    t.strictSame((await store.audit.list({ limit: 10 })).map((e) => e.action), ['outside']);
    t.equal(await store.tokens.count(), 0);
  });

  test('transaction: a call on the store itself from inside the work is part of it', async (t, store) => {
    await t.rejects(
      store.transaction(async (tx) => {
        await tx.audit.append(audit(100, 'inside'), 100);
        // A helper that takes the store, not tx (fleet code does): it joins, it does not wait for itself.
        await store.tokens.add({ id: 'tok_1', name: 'ci', hash: 'h', role: 'deployer' });
        t.ok(await tx.tokens.get('tok_1'), 'the transaction sees it');
        await store.transaction(async (inner) => void (await inner.audit.append(audit(200, 'nested'), 100)));
        throw new Error('boom');
      }),
      { message: 'boom' },
    );
    t.equal(await store.tokens.count(), 0, 'rolled back with it');
    t.strictSame(await store.audit.list({ limit: 10 }), [], 'a nested transaction too');
  });

  test('exclusive: work under one key runs one at a time, each reading what the one before wrote', async (t, store) => {
    await addDevice(store, 'dev_a');
    const steps: string[] = [];
    // Ten read-then-act pieces of work at once, as relays publishing one device's state do:
    // each reads the labels, "publishes" what it read, and writes the next.
    const published: number[] = [];
    await Promise.all(Array.from({ length: 10 }, (_, i) =>
      store.exclusive('desired:dev_a', async () => {
        steps.push(`start ${i}`);
        const n = Number((await store.devices.get('dev_a'))!.labels.n ?? 0);
        await new Promise((r) => setImmediate(r));
        published.push(n);
        await store.devices.setLabels('dev_a', { n: String(n + 1) });
        steps.push(`end ${i}`);
      })));
    t.strictSame(published, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each read what the one before wrote: none read a stale state');
    for (let i = 0; i < steps.length; i += 2) t.equal(steps[i]!.replace('start', 'end'), steps[i + 1], 'no two overlapped');
    t.strictSame((await store.devices.get('dev_a'))!.labels, { n: '10' });
  });

  test('exclusive: other keys run beside it; a throw releases the key', async (t, store) => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = store.exclusive('k1', () => held);
    t.equal(await store.exclusive('k2', async () => 'other key'), 'other key', 'another key is not held up');
    release();
    await first;
    await t.rejects(store.exclusive('k1', async () => {
      throw new Error('boom');
    }), { message: 'boom' });
    t.equal(await store.exclusive('k1', async () => 'next'), 'next', 'the key is free again after a throw');
  });

  test('exclusive: the key taken again inside its work runs at once; work that outlives it takes the key anew', async (t, store) => {
    t.equal(await store.exclusive('k', () => store.exclusive('k', async () => 'inner')), 'inner', 'no wait for itself');
    // Work started inside (a listener's promise, a timer) that runs after the holder let go.
    // The order is recorded inside each work, while it holds the key: when each caller's promise
    // settles depends on the engine's unlock round trip, not on the lock.
    const order: string[] = [];
    let late!: Promise<string>;
    await store.exclusive('k', async () => {
      late = new Promise<void>((r) => setTimeout(r, 20)).then(() => store.exclusive('k', async () => {
        order.push('late');
        return 'late';
      }));
    });
    let release!: () => void;
    const second = store.exclusive('k', () => new Promise<string>((r) => (release = () => {
      order.push('second');
      r('second');
    })));
    await new Promise((r) => setTimeout(r, 60));
    t.strictSame(order, [], 'the late work waits for the holder after it, not taking itself for the first');
    release();
    t.equal(await second, 'second');
    t.equal(await late, 'late');
    t.strictSame(order, ['second', 'late'], 'the late work ran after the holder after it let go');
  });

  test('transaction: work started inside it that runs after the commit is not part of it', async (t, store) => {
    let late!: Promise<number>;
    await store.transaction(async (tx) => {
      await tx.tokens.add({ id: 'tok_1', name: 'ci', hash: 'h', role: 'deployer' });
      late = new Promise<void>((r) => setTimeout(r, 20)).then(() => store.tokens.count());
    });
    t.equal(await late, 1, 'it runs on its own, after the commit');
  });

  // ---------------------------------------------------------------- concurrent writers

  test('concurrency: 20 enrolls with one token, exactly one device', async (t, store) => {
    await store.enrollment.addToken({ id: 'et_1', hash: 'eh', labels: {}, allowDeviceLabels: false, expiresAt: 1e12, usedAt: null });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.enrollment.enroll('et_1', 1_000, { id: `dev_${i}`, name: `d${i}`, labels: {}, secretHash: 's' })));
    t.equal(results.filter((r) => r).length, 1, 'exactly one succeeds');
    const winner = `dev_${results.indexOf(true)}`;
    t.strictSame(ids(await store.devices.list()), [winner], 'and only its device exists');
    t.equal((await store.enrollment.getToken('et_1'))!.usedAt, 1_000);
  });

  test('concurrency: 20 versions pushed at once are 1..20', async (t, store) => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.models.addVersion('m', sha(i + 1), i + 1, signature)));
    t.ok(results.every((r) => r.created), 'each is created');
    t.strictSame(results.map((r) => r.record.version).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1), 'distinct numbers 1..20');
    const stored = await store.models.versions('m');
    t.strictSame(stored.map((v) => v.version), Array.from({ length: 20 }, (_, i) => i + 1));
    for (const r of results) t.equal(stored.find((v) => v.version === r.record.version)!.sha256, r.record.sha256, `version ${r.record.version} holds the bytes it was given for`);
  });

  test('concurrency: the same bytes pushed 10 times at once are one version', async (t, store) => {
    const results = await Promise.all(Array.from({ length: 10 }, () => store.models.addVersion('m', sha(1), 1, signature)));
    t.equal(results.filter((r) => r.created).length, 1, 'one creates it');
    t.ok(results.every((r) => r.record.version === 1), 'all name version 1');
    t.equal((await store.models.versions('m')).length, 1);
  });

  test('concurrency: appendLogs at once keep seqs unique, contiguous and under the cap', async (t, store) => {
    await store.jobs.create('job_1', jobSpec(), 1_000);
    const batch = (i: number): Array<Omit<JobLogLine, 'seq'>> => Array.from({ length: 4 }, (_, j) => ({ rank: 0, ts: 1_000, stream: 'stdout', text: `${i}.${j}` }));
    const kept = (await Promise.all(Array.from({ length: 10 }, (_, i) => store.jobs.appendLogs('job_1', batch(i), 25)))).flat();
    t.equal(kept.length, 25, 'the cap holds in total');
    t.strictSame(kept.map((l) => l.seq).sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i + 1), 'unique, 1..25');
    const stored = await store.jobs.logs('job_1', 0, 100);
    t.strictSame(stored, [...kept].sort((a, b) => a.seq - b.seq), 'what each call returned is what was stored');
  });

  test('concurrency: audit appends at once get unique seqs; keep holds', async (t, store) => {
    const entries = await Promise.all(Array.from({ length: 20 }, (_, i) => store.audit.append(audit(100 + i, `a${i}`), 1_000)));
    t.equal(new Set(entries.map((e) => e.seq)).size, 20, 'unique seqs');
    t.strictSame((await store.audit.list({ limit: 100 })).map((e) => e.seq), entries.map((e) => e.seq).sort((a, b) => b - a), 'all kept, newest first');
    const more = await Promise.all(Array.from({ length: 20 }, (_, i) => store.audit.append(audit(200 + i, `b${i}`), 5)));
    const top = more.map((e) => e.seq).sort((a, b) => b - a).slice(0, 5);
    t.strictSame((await store.audit.list({ limit: 100 })).map((e) => e.seq), top, 'the newest 5 remain');
  });

  test('concurrency: transactions at once that read, then write, all commit', async (t, store) => {
    const devices = ['dev_a', 'dev_b', 'dev_c', 'dev_d'];
    for (const id of devices) await addDevice(store, id);
    await addVersions(store, 'm', 1);
    await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha(1), deviceIds: devices }, 1_000);
    const seen = await Promise.all(
      devices.map((id) =>
        store.transaction(async (tx) => {
          const before = await tx.deployments.rolloutCounts('dep_1');
          await turn();
          t.equal(await tx.deployments.setRolloutState('dep_1', id, 'serving', null, 2_000), true, `${id}: its row changes`);
          await turn();
          const after = await tx.deployments.rolloutCounts('dep_1');
          await tx.audit.append(audit(2_000, `serving ${id} (saw ${before.serving ?? 0})`), 100);
          return { before, after };
        }),
      ),
    );
    for (const { before, after } of seen) {
      t.equal((before.pending ?? 0) + (before.serving ?? 0), 4, 'each saw a whole deployment');
      t.ok((after.serving ?? 0) >= 1, 'and then its own write');
    }
    t.strictSame(await store.deployments.rolloutCounts('dep_1'), { serving: 4 }, 'no write was lost');
    t.equal((await store.audit.list({ limit: 10 })).length, 4);
  });

  test('concurrency: a transaction that throws does not take another’s writes with it', async (t, store) => {
    const results = await Promise.allSettled([
      store.transaction(async (tx) => {
        await tx.tokens.add({ id: 'tok_fail', name: 'a', hash: 'h', role: 'viewer' });
        await turn();
        await turn();
        throw new Error('boom');
      }),
      store.transaction(async (tx) => {
        await tx.tokens.add({ id: 'tok_ok', name: 'b', hash: 'h', role: 'viewer' });
        await turn();
        return 'ok';
      }),
      store.tokens.add({ id: 'tok_plain', name: 'c', hash: 'h', role: 'viewer' }),
    ]);
    t.strictSame(results.map((r) => r.status), ['rejected', 'fulfilled', 'fulfilled']);
    t.strictSame(ids(await store.tokens.list()).sort(), ['tok_ok', 'tok_plain']);
  });

  // A todo that names no subtest is a typo: say so rather than let it go unused.
  for (const title of todo.keys()) if (!titles.has(title)) throw new Error(`storeContract(${name}): todo names no subtest: "${title}"`);
}
