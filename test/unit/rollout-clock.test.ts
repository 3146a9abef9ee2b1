// Health windows on an injected clock, against the real SQLite store: a wall clock stepped back
// does not stall a window (it is timed on a monotonic clock), and a window passes only with a
// heartbeat after its end from a device that stayed online through it.

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HealthMessage, Logger } from '@outpost/shared';
import { SqliteStore } from '../../packages/relay/dist/store/sqlite-store.js';
import { FleetEvents } from '../../packages/relay/dist/fleet/fleet-events.js';
import { Presence } from '../../packages/relay/dist/fleet/presence.js';
import { RolloutController } from '../../packages/relay/dist/fleet/rollout-controller.js';
import { waitFor } from '../helpers/wait.js';

const silent = { info() {}, warn() {}, error() {}, debug() {}, child: () => silent } as unknown as Logger;
const heartbeat: HealthMessage = { ts: 1, uptimeS: 1, cpuPercent: 1, memory: { rssBytes: 1, usedBytes: 1, totalBytes: 2 }, disk: { freeBytes: 1, totalBytes: 2 }, models: {} };

t.test('health windows: monotonic, and only with fresh heartbeats', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-clock-'));
  const store = new SqliteStore(join(dir, 'relay.db'));
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let wall = Date.parse('2026-12-01T12:00:00Z');
  let mono = 1_000_000;
  const events = new FleetEvents(silent);
  const ctx = {
    store,
    log: silent,
    now: () => wall,
    events,
    history: { forget() {} },
    quota: { exceeded() {} },
    presence: new Presence(),
    mqtt: { publishRetained: async () => {}, clearRetained: async () => {}, published: 0, close: async () => {} },
  };
  await store.enrollment.addToken({ id: 'tok', hash: 'x', labels: {}, allowDeviceLabels: false, expiresAt: wall + 1e9, usedAt: null });
  await store.enrollment.enroll('tok', wall, { id: 'dev_a', name: 'a', labels: {}, secretHash: 'h' });
  await store.enrollment.addToken({ id: 'tok2', hash: 'x', labels: {}, allowDeviceLabels: false, expiresAt: wall + 1e9, usedAt: null });
  await store.enrollment.enroll('tok2', wall, { id: 'dev_b', name: 'b', labels: {}, secretHash: 'h' });
  const sha = 'a'.repeat(64);
  await store.models.addVersion('m', sha, 1, { inputs: [], outputs: [] });
  await store.deployments.create({ id: 'dep_1', model: 'm', version: 1, sha256: sha, deviceIds: ['dev_a', 'dev_b'], strategy: { kind: 'rolling', batch: 2, canary: 0, failureThreshold: 0, healthWindowMs: 10_000 }, initialState: 'waiting' }, wall);
  const controller = new RolloutController(ctx as never, 60_000, () => mono);
  t.teardown(() => controller.close());
  const state = async (id: string) => (await store.deployments.get('dep_1'))!.devices.find((d) => d.deviceId === id)!.state;

  controller.start();
  await waitFor('both released', async () => (await state('dev_a')) === 'pending' && (await state('dev_b')) === 'pending');
  for (const id of ['dev_a', 'dev_b']) await store.deployments.setRolloutState('dep_1', id, 'serving', null, wall);
  controller.evaluate(); // the windows open
  await new Promise((r) => setImmediate(r));

  // The wall clock is set back an hour; 11 s pass on the monotonic clock.
  wall -= 3_600_000;
  mono += 11_000;
  events.emit({ type: 'device.status', deviceId: 'dev_b', online: false, lastSeen: '' });
  mono += 1;
  events.emit({ type: 'device.health', deviceId: 'dev_a', health: heartbeat });
  controller.evaluate();
  await waitFor('dev_a healthy', async () => (await state('dev_a')) === 'healthy');
  t.pass('a window timed on the monotonic clock passes although the wall clock went back an hour');
  t.equal(await state('dev_b'), 'serving', 'a device that went offline inside its window is not taken for healthy');

  // dev_b comes back and heartbeats: its window starts again from its return.
  mono += 1000;
  events.emit({ type: 'device.health', deviceId: 'dev_b', health: heartbeat });
  controller.evaluate();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(await state('dev_b'), 'serving', 'a fresh heartbeat right after its return does not end a new window');
  mono += 10_500;
  events.emit({ type: 'device.health', deviceId: 'dev_b', health: heartbeat });
  controller.evaluate();
  await waitFor('dev_b healthy', async () => (await state('dev_b')) === 'healthy');
  t.pass('a whole window with heartbeats after its return passes');
  await waitFor('the deployment done', async () => (await store.deployments.info('dep_1'))!.state === 'succeeded');
  t.pass('the rollout succeeded');
});
