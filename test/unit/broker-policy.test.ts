import t from 'tap';
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
