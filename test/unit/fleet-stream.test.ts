// The stream hub with in-memory sockets: a stuck client is dropped without slowing the rest,
// health updates coalesce while a client waits, and the window serves reconnects.

import t from 'tap';
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import { FleetStream } from '../../packages/relay/dist/stream/fleet-stream.js';
import { FleetView } from '../../packages/relay/dist/cli/fleet-view.js';
import type { HealthMessage, StreamMessage } from '@outpost/shared';

/** A socket whose kernel buffer we control: `stuck` sockets never drain. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  sent: StreamMessage[] = [];
  bufferedAmount = 0;
  closedWith?: number;
  pending: Array<() => void> = [];
  send(data: string, cb?: () => void): void {
    this.sent.push(JSON.parse(data) as StreamMessage);
    if (cb) this.pending.push(cb);
  }
  drain(): void {
    this.bufferedAmount = 0;
    const cbs = this.pending;
    this.pending = [];
    for (const cb of cbs) cb();
  }
  close(code: number): void {
    this.closedWith = code;
    this.emit('close');
  }
}

const health = (cpu: number): HealthMessage => ({ ts: 0, uptimeS: 1, cpuPercent: cpu, memory: { rssBytes: 1, usedBytes: 1, totalBytes: 2 }, disk: { freeBytes: 1, totalBytes: 2 }, models: {} });
const limits = { maxQueue: 10, highWaterBytes: 100 };
const snapshot = async () => ({ devices: [], deployments: [], jobs: [] });
/** The snapshot is read from the store: a client gets it, and joins, a turn after attach. */
const snapshotRead = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('a stuck client is dropped; a fast one gets everything', async (t) => {
  const stream = new FleetStream({ snapshot, limits, now: () => 1000 });
  const fast = new FakeSocket();
  const stuck = new FakeSocket();
  stream.attach(fast as unknown as WebSocket);
  stream.attach(stuck as unknown as WebSocket);
  await snapshotRead();
  stuck.bufferedAmount = 1e9; // nothing it is sent ever leaves
  for (let i = 0; i < 30; i++) stream.publish({ type: 'device.removed', deviceId: `d${i}` });
  t.equal(fast.sent.length, 31, 'snapshot and every event');
  t.equal(stuck.closedWith, 4008, 'closed as too slow');
  t.equal(stream.clients, 1);
  t.equal(stream.clientsDropped, 1);
  t.same(fast.sent.map((m) => m.seq), Array.from({ length: 31 }, (_, i) => 1000 + i));
});

t.test('health coalesces per device while a client waits, and order holds', async (t) => {
  const stream = new FleetStream({ snapshot, limits, now: () => 0 });
  const slow = new FakeSocket();
  stream.attach(slow as unknown as WebSocket);
  await snapshotRead();
  slow.bufferedAmount = 1e9;
  stream.publish({ type: 'device.removed', deviceId: 'x' }); // written (waits for drain)
  for (let i = 0; i < 50; i++) stream.publish({ type: 'device.health', deviceId: 'a', health: health(i) });
  stream.publish({ type: 'device.removed', deviceId: 'y' });
  for (let i = 0; i < 50; i++) stream.publish({ type: 'device.health', deviceId: 'b', health: health(i) });
  t.equal(slow.closedWith, undefined, '100 health updates for two devices fit in a queue of 10');
  slow.drain();
  const types = slow.sent.map((m) => (m.type === 'device.health' ? `${m.type}:${m.deviceId}:${m.health.cpuPercent}` : m.type));
  t.same(types, ['snapshot', 'device.removed', 'device.health:a:49', 'device.removed', 'device.health:b:49'], 'only the newest health per device');
  const seqs = slow.sent.map((m) => m.seq);
  t.same(seqs, [...seqs].sort((a, b) => a - b));
});

t.test('events published while the snapshot is read follow it; a socket closed meanwhile is not kept', async (t) => {
  let release!: () => void;
  const slowRead = () => new Promise<{ devices: []; deployments: []; jobs: [] }>((resolve) => (release = () => resolve({ devices: [], deployments: [], jobs: [] })));
  const stream = new FleetStream({ snapshot: slowRead, now: () => 500 });
  const client = new FakeSocket();
  stream.attach(client as unknown as WebSocket);
  stream.publish({ type: 'device.removed', deviceId: 'a' });
  stream.publish({ type: 'device.removed', deviceId: 'b' });
  t.same(client.sent, [], 'nothing before the snapshot');
  release();
  await snapshotRead();
  t.same(client.sent.map((m) => [m.type, m.seq]), [['snapshot', 500], ['device.removed', 501], ['device.removed', 502]], 'the snapshot at the seq it was asked at, then what came meanwhile');
  stream.publish({ type: 'device.removed', deviceId: 'c' });
  t.equal(client.sent.at(-1)!.seq, 503, 'and it is live');
  const gone = new FakeSocket();
  stream.attach(gone as unknown as WebSocket);
  gone.readyState = 3;
  gone.emit('close');
  release();
  await snapshotRead();
  t.equal(stream.clients, 1, 'the closed one never joined');
  const failing = new FleetStream({ snapshot: async () => Promise.reject(new Error('store gone')), onSnapshotError: (err) => t.match(err, { message: 'store gone' }) });
  const refused = new FakeSocket();
  failing.attach(refused as unknown as WebSocket);
  await snapshotRead();
  t.equal(refused.closedWith, 1001, 'a snapshot that cannot be read closes the client (it reconnects)');
});

t.test('the window serves reconnects, else a snapshot', async (t) => {
  const stream = new FleetStream({ snapshot, window: 5, now: () => 100 });
  for (let i = 0; i < 8; i++) stream.publish({ type: 'device.removed', deviceId: `d${i}` });
  const back = new FakeSocket();
  stream.attach(back as unknown as WebSocket, 105);
  t.same(back.sent.map((m) => m.seq), [106, 107, 108]);
  const late = new FakeSocket();
  stream.attach(late as unknown as WebSocket, 101);
  await snapshotRead();
  t.same(late.sent.map((m) => m.type), ['snapshot'], 'older than the window');
  const future = new FakeSocket();
  stream.attach(future as unknown as WebSocket, 5000);
  await snapshotRead();
  t.equal(future.sent[0]!.type, 'snapshot', 'a seq from another relay life');
  const current = new FakeSocket();
  stream.attach(current as unknown as WebSocket, 108);
  t.same(current.sent, [], 'up to date: nothing to send');
  stream.close();
  t.equal(current.closedWith, 1001);
});

t.test('fleet watch renders what the stream says', async (t) => {
  const view = new FleetView();
  const ts = new Date(10_000).toISOString();
  const device = { id: 'dev_1', name: 'cam-1', labels: {}, online: false, lastSeen: null, createdAt: ts, models: [], health: null };
  view.apply({ type: 'snapshot', devices: [device], deployments: [], jobs: [], seq: 1, ts });
  view.apply({ type: 'device.status', deviceId: 'dev_1', online: true, lastSeen: ts, seq: 2, ts });
  view.apply({ type: 'device.health', deviceId: 'dev_1', health: { ...health(42), models: { m: { requests: 1, errors: 0, p50Ms: 0.75, p99Ms: 1 } } }, seq: 3, ts });
  view.apply({ type: 'device.models', deviceId: 'dev_1', models: [{ name: 'm', version: 2, sha256: 'a'.repeat(64), state: 'serving' }], seq: 4, ts });
  view.apply({ type: 'deployment.created', deployment: { id: 'dep_1', model: 'm', version: 2, sha256: 'a'.repeat(64), state: 'in-progress', selector: null, strategy: null, serving: null, createdAt: ts, counts: { pending: 1 }, devices: [{ deviceId: 'dev_1', state: 'pending', reason: null, updatedAt: ts }] }, seq: 5, ts });
  view.apply({ type: 'deployment.progress', deploymentId: 'dep_1', deviceId: 'dev_1', state: 'loading', reason: null, seq: 6, ts });
  const lines = view.render(120, 20, 'live', 15_000);
  t.match(lines[0], /^outpost fleet — 1 devices, 1 online — live/);
  t.match(lines[2], /^NAME\s+ID\s+STATE\s+MODELS\s+CPU\s+RSS\s+P50\s+LAST SEEN/);
  t.match(lines[3], /^cam-1\s+dev_1\s+online\s+m:2 serving\s+42%\s+1 B\s+0.75 ms\s+5s ago/);
  t.match(lines[lines.length - 1], /deploying m:2 \(dep_1\): 1 loading/);
  const problem = { kind: 'duplicate-connection' as const, since: ts, takeovers: 3, message: 'two agents are using this device\'s identity' };
  view.apply({ type: 'device.problem', deviceId: 'dev_1', problem, seq: 7, ts });
  t.match(view.render(160, 20, 'live', 15_000)[3], /^cam-1\s+dev_1\s+online, duplicate-connection\s+m:2 serving/, 'a problem shows in STATE');
  view.apply({ type: 'device.problem', deviceId: 'dev_1', problem: null, seq: 7, ts });
  view.apply({ type: 'device.problem', deviceId: 'dev_gone', problem, seq: 7, ts });
  t.match(view.render(160, 20, 'live', 15_000)[3], /^cam-1\s+dev_1\s+online\s+m:2 serving/, 'and goes when it clears');
  t.ok(view.render(30, 20, 'live').every((l) => l.length <= 30), 'lines fit the width');
  t.equal(view.render(120, 3, 'live').length, 3, 'and the height');
  view.apply({ type: 'deployment.state', deploymentId: 'dep_1', state: 'succeeded', seq: 7, ts });
  view.apply({ type: 'device.removed', deviceId: 'dev_1', seq: 8, ts });
  t.match(view.render(120, 20, 'live')[0], /0 devices/);
  t.equal(view.lastSeq, 8);
});

t.test('a snapshot read while more events came in than the window keeps is read again', async (t) => {
  // The first snapshot is slow: 20 events arrive while it is read, past a window of 5.
  let reads = 0;
  let release!: () => void;
  const slowFirst = async () => {
    reads++;
    if (reads === 1) await new Promise<void>((r) => (release = r));
    return { devices: [], deployments: [], jobs: [] };
  };
  const stream = new FleetStream({ snapshot: slowFirst, window: 5, limits: { maxQueue: 100, highWaterBytes: 1e6 }, now: () => 0 });
  const client = new FakeSocket();
  stream.attach(client as unknown as WebSocket);
  for (let i = 0; i < 20; i++) stream.publish({ type: 'device.removed', deviceId: `d${i}` });
  release();
  await snapshotRead();
  await snapshotRead();
  t.equal(reads, 2, 'a second snapshot was read');
  t.equal(client.sent[0]!.type, 'snapshot');
  t.equal(client.sent[0]!.seq, 20, 'taken after the events that were gone from the window');
  stream.publish({ type: 'device.removed', deviceId: 'next' });
  t.same(client.sent.map((m) => m.seq), [20, 21], 'then every event after it, none missing');

  // A fleet that never slows down: after three tries the client is told to reconnect.
  const always = new FleetStream({
    snapshot: async () => {
      for (let i = 0; i < 10; i++) always.publish({ type: 'device.removed', deviceId: `x${i}` });
      return { devices: [], deployments: [], jobs: [] };
    },
    window: 5,
    limits: { maxQueue: 100, highWaterBytes: 1e6 },
    now: () => 0,
  });
  const gaveUp = new FakeSocket();
  always.attach(gaveUp as unknown as WebSocket);
  for (let i = 0; i < 4; i++) await snapshotRead();
  t.equal(gaveUp.closedWith, 1001, 'going away: reconnect');
  t.equal(gaveUp.sent.length, 0, 'never a snapshot with a gap after it');
});
