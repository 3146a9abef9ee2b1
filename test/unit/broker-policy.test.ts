import t from 'tap';
import { IndexedRetainedPersistence, topicMatches } from '../../packages/relay/dist/broker/retained-index.js';
import { mayPublish, maySubscribe, mayReceive } from '../../packages/relay/dist/broker/access-policy.js';
import { FloodGuard } from '../../packages/relay/dist/broker/flood-guard.js';

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
