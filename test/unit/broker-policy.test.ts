import t from 'tap';
import { IndexedRetainedPersistence, topicMatches } from '../../packages/relay/dist/broker/retained-index.js';
import { isReserved, mayPublish, maySubscribe, mayReceive, mayWill } from '../../packages/relay/dist/broker/access-policy.js';
import { BrokerPersistence, MAX_WAITING_MESSAGES } from '../../packages/relay/dist/broker/broker-persistence.js';
import { FloodGuard } from '../../packages/relay/dist/broker/flood-guard.js';
import { DeviceQuotas } from '../../packages/relay/dist/broker/device-quotas.js';
import { LogThrottle, guarded, guardedInterval, runGuarded, type Logger } from '@outpost/shared';

t.test('a device reaches only its own prefix; the relay reaches all', async (t) => {
  const dev = { kind: 'device', deviceId: 'dev_a' } as const;
  const relay = { kind: 'relay' } as const;
  t.ok(mayPublish(dev, 'outpost/v1/devices/dev_a/health'));
  t.notOk(mayPublish(dev, 'outpost/v1/devices/dev_b/health'));
  t.notOk(mayPublish(dev, 'outpost/v1/devices/dev_a'), 'the prefix needs its slash');
  t.ok(maySubscribe(dev, 'outpost/v1/devices/dev_a/#'));
  t.notOk(maySubscribe(dev, '#'));
  t.notOk(maySubscribe(dev, 'outpost/+/devices/dev_a/#'));
  t.notOk(mayReceive(dev, 'outpost/v1/devices/dev_b/desired'));
  t.ok(mayPublish(relay, 'outpost/v1/devices/dev_b/desired'));
  t.ok(maySubscribe(relay, 'outpost/v1/devices/+/+'));
  t.ok(mayReceive(relay, 'anything'));
});

t.test('$ topics are no one\'s, the relay\'s identity included', async (t) => {
  const dev = { kind: 'device', deviceId: 'dev_a' } as const;
  const relay = { kind: 'relay' } as const;
  t.ok(isReserved('$SYS/x/new/clients'));
  t.notOk(isReserved('outpost/$x'), 'only a leading $');
  for (const who of [dev, relay]) {
    t.notOk(mayPublish(who, '$SYS/b/new/clients'), `${who.kind} may not publish to $SYS`);
    t.notOk(maySubscribe(who, '$SYS/#'), `${who.kind} may not subscribe to $SYS`);
    t.notOk(mayReceive(who, '$outpost/dropped'), `${who.kind} receives no $ topic`);
  }
  t.notOk(mayWill(relay, '$SYS/x'), 'nor is a will sent there');
});

t.test('a will goes only to the device\'s own status topic', async (t) => {
  const dev = { kind: 'device', deviceId: 'dev_a' } as const;
  const relay = { kind: 'relay' } as const;
  t.ok(mayWill(dev, 'outpost/v1/devices/dev_a/status'));
  t.notOk(mayWill(dev, 'outpost/v1/devices/dev_a/health'), 'not another leaf of its own');
  t.notOk(mayWill(dev, 'outpost/v1/devices/dev_b/status'), 'not another device\'s status');
  t.ok(mayWill(relay, 'outpost/v1/devices/dev_b/desired'), 'the relay\'s will, had it one, goes where it may publish');
});

/** The embedded broker's persistence, with the method aedes calls as it sends a waiting message. */
const persistence = (onFull?: (clientId: string) => void) =>
  new BrokerPersistence(onFull) as BrokerPersistence & { outgoingUpdate(client: { id: string }, packet: object): Promise<void> };

t.test('a session\'s waiting messages go out with RETAIN 0, and DUP 1 when they were sent before', async (t) => {
  const p = persistence();
  const client = { id: 'c' };
  const queued = { cmd: 'publish', topic: 't', payload: Buffer.from('q'), qos: 1, retain: true, brokerId: 'b', brokerCounter: 1 };
  const sent = { ...queued, brokerCounter: 2, messageId: 7 };
  await p.outgoingEnqueueCombi([{ clientId: 'c' }], queued);
  await p.outgoingEnqueueCombi([{ clientId: 'c' }], sent);
  await p.outgoingUpdate(client, sent);
  await p.outgoingEnqueueCombi([{ clientId: 'c' }], { ...queued, brokerCounter: 3 });
  await p.outgoingUpdate(client, { ...queued, brokerCounter: 3, messageId: 8 });
  await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 8 }); // its PUBREC came: the PUBREL is owed instead
  const out: Array<{ cmd: string; retain?: boolean; dup?: boolean }> = [];
  for await (const x of p.outgoingStream(client)) out.push(x as (typeof out)[number]);
  t.same(out.map((x) => [x.cmd, x.retain, x.dup]), [['publish', false, false], ['publish', false, true], ['pubrel', undefined, undefined]]);
});

t.test('a session keeps a bounded number of messages waiting; an acknowledged one makes room', async (t) => {
  const full: string[] = [];
  const p = persistence((id) => full.push(id));
  const packet = (n: number) => ({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, brokerId: 'b', brokerCounter: n });
  for (let n = 1; n <= MAX_WAITING_MESSAGES; n++) await p.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'other' }], packet(n));
  await p.outgoingEnqueue({ clientId: 'c' }, packet(100));
  t.same(full, ['c'], 'the one past the bound is not kept, and told');
  const count = async (id: string) => (await p.outgoingStream({ id }).toArray()).length;
  t.equal(await count('c'), MAX_WAITING_MESSAGES);
  await p.outgoingUpdate({ id: 'c' }, { ...packet(1), messageId: 1 });
  t.ok(await p.outgoingClearMessageId({ id: 'c' }, { messageId: 1 }), 'its PUBACK');
  t.notOk(await p.outgoingClearMessageId({ id: 'c' }, { messageId: 1 }), 'a second PUBACK of it frees nothing');
  await p.outgoingEnqueue({ clientId: 'c' }, packet(101));
  t.equal(await count('c'), MAX_WAITING_MESSAGES, 'room for one more');
  t.same(full, ['c'], 'kept this time');
  for (let n = 2; n <= MAX_WAITING_MESSAGES; n++) {
    await p.outgoingUpdate({ id: 'other' }, { ...packet(n), messageId: n });
    await p.outgoingClearMessageId({ id: 'other' }, { messageId: n });
  }
  t.equal(await count('other'), 1, 'sessions are counted apart');
});

t.test('the flood guard allows bursts, then the rate, and forgets', async (t) => {
  let now = 0;
  const guard = new FloodGuard({ ratePerSec: 10, burst: 5 }, () => now);
  for (let i = 0; i < 5; i++) t.ok(guard.allow('d'), `burst ${i}`);
  t.notOk(guard.allow('d'), 'past the burst');
  t.ok(guard.allow('other'), 'buckets are per client');
  now += 100; // one token at 10/s
  t.ok(guard.allow('d'));
  t.notOk(guard.allow('d'));
  now += 10_000;
  for (let i = 0; i < 5; i++) t.ok(guard.allow('d'), 'refilled up to the burst');
  t.notOk(guard.allow('d'));
  guard.forget('d');
  t.ok(guard.allow('d'), 'a forgotten client starts full');
});

t.test('retained index: MQTT topic matching', async (t) => {
  t.ok(topicMatches('a/b/c', 'a/b/c'));
  t.notOk(topicMatches('a/b/c', 'a/b'));
  t.ok(topicMatches('a/+/c', 'a/x/c'));
  t.notOk(topicMatches('a/+/c', 'a/x/y/c'));
  t.ok(topicMatches('a/#', 'a/x/y'));
  t.ok(topicMatches('a/#', 'a'), '# also matches the parent level');
  t.ok(topicMatches('#', 'outpost/v1/devices/d/desired'));
  t.notOk(topicMatches('#', '$SYS/broker/uptime'), 'wildcards at the start skip $ topics');
  t.notOk(topicMatches('+/x', 'a/y'));
});

t.test('retained index: exact and wildcard lookups, deletes', async (t) => {
  const p = new IndexedRetainedPersistence();
  const packet = (topic: string, payload: string) => ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true });
  await p.storeRetained(packet('outpost/v1/devices/a/desired', '1'));
  await p.storeRetained(packet('outpost/v1/devices/b/desired', '2'));
  await p.storeRetained(packet('outpost/v1/devices/a/status', '3'));
  const read = async (s: NodeJS.ReadableStream) => {
    const out: string[] = [];
    for await (const x of s as AsyncIterable<{ payload: Buffer }>) out.push(x.payload.toString());
    return out.sort();
  };
  t.same(await read(p.createRetainedStream('outpost/v1/devices/a/desired')), ['1']);
  t.same(await read(p.createRetainedStreamCombi(['outpost/v1/devices/+/desired', 'outpost/v1/devices/a/status'])), ['1', '2', '3']);
  await p.storeRetained(packet('outpost/v1/devices/a/desired', ''));
  t.same(await read(p.createRetainedStream('outpost/v1/devices/a/desired')), [], 'an empty retained message deletes');
});

t.test('device quotas: only written leaves, rate held across reconnects, strikes then a cool-down', async (t) => {
  let now = 0;
  const q = new DeviceQuotas({ ratePerSec: 10, burst: 6, strikes: 3, strikeRefillMs: 1000, cooldownMs: 5000, retainedBytes: 100, maxSubscriptions: 2 }, () => now);
  t.ok(q.mayConnect('d'));
  t.same(q.publish('d', 'health', 10, false), { action: 'allow' });
  t.equal(q.publish('d', 'desired', 10, false).action, 'drop', 'desired is the relay\'s to write');
  t.equal(q.publish('d', 'junk', 10, false).action, 'drop');
  t.equal(q.publish('d', 'health', 10, true).action, 'unretain', 'a heartbeat is not kept retained');
  t.same(q.publish('d', 'status', 60, true), { action: 'allow' });
  t.equal(q.publish('d', 'reported', 60, true).action, 'unretain', 'past the retained bytes');
  t.same(q.publish('d', 'status', 20, true), { action: 'allow' }, 'replacing a retained message counts its new size');
  t.same(q.publish('d', 'reported', 60, true), { action: 'allow' });
  t.equal(q.retainedBytes('d'), 80);
  // Six publishes took the burst's six tokens (the refused topics took none, but two strikes).
  t.equal(q.publish('d', 'health', 1, false).action, 'drop', 'past the burst: throttled');
  t.equal(q.publish('d', 'health', 1, false).action, 'disconnect', 'out of strikes');
  t.notOk(q.mayConnect('d'), 'a reconnect in the cool-down is refused');
  now += 5000;
  t.ok(q.mayConnect('d'), 'and allowed after it');
  t.same(q.publish('d', 'health', 1, false), { action: 'allow' }, 'the bucket refilled with time, not with the reconnect');
  t.same(q.subscribe('d', true, 'a'), { action: 'allow' });
  t.same(q.subscribe('d', true, 'b'), { action: 'allow' });
  t.equal(q.subscribe('d', true, 'c').action, 'drop', 'past the subscriptions');
  t.equal(q.subscribe('d', false, '#').action, 'drop', 'a denied filter is a strike');
  q.forget('d');
  t.equal(q.retainedBytes('d'), 0, 'a removed device is forgotten');
});

t.test('device quotas: a will takes no token and no strike, and its retained bytes count', async (t) => {
  const q = new DeviceQuotas({ ratePerSec: 1, burst: 1, strikes: 0, retainedBytes: 100 }, () => 0);
  t.same(q.publish('d', 'health', 1, false), { action: 'allow' });
  t.equal(q.publish('d', 'health', 1, false).action, 'disconnect', 'the bucket is empty and no strike is left');
  t.same(q.will('d', 'status', 60, true), { action: 'allow' }, 'the will still goes out');
  t.equal(q.retainedBytes('d'), 60);
  t.equal(q.will('d', 'status', 200, true).action, 'unretain', 'past the retained bytes: delivered, not kept');
  t.same(q.will('d', 'status', 200, false), { action: 'allow' });
});

t.test('log throttle: one line per key per interval, with the count left out', async (t) => {
  let now = 0;
  const th = new LogThrottle(1000, () => now);
  t.same(th.take('a'), { suppressed: 0 });
  t.equal(th.take('a'), null);
  t.equal(th.take('a'), null);
  t.same(th.take('b'), { suppressed: 0 }, 'keys are apart');
  now += 1000;
  t.same(th.take('a'), { suppressed: 2 });
});

t.test('guarded timers and handlers log instead of throwing', async (t) => {
  const errors: string[] = [];
  const log = { error: (_o: unknown, msg: string) => errors.push(msg) } as unknown as Logger;
  runGuarded(log, 'sync work', () => {
    throw new Error('x');
  });
  runGuarded(log, 'async work', async () => {
    throw new Error('y');
  });
  guarded(log, 'a handler', (n: number) => {
    if (n > 0) throw new Error('z');
  })(1);
  await new Promise((r) => setImmediate(r));
  t.same(errors.sort(), ['a handler failed', 'async work failed', 'sync work failed']);
  const keepAlive = setTimeout(() => {}, 10_000); // the guarded timer is unref'd
  await new Promise<void>((resolve) => {
    const timer = guardedInterval(log, 'a tick', 5, () => {
      clearInterval(timer);
      resolve();
      throw new Error('tick');
    });
  });
  clearTimeout(keepAlive);
  t.ok(errors.includes('a tick failed'), 'an interval that throws is logged');
});
