// Two agents on one identity, told apart from one agent reconnecting or restarting, by the
// instances in their online statuses; the mark clears once the connection stops changing hands.

import t from 'tap';
import { DuplicateConnections } from '../../packages/relay/dist/fleet/duplicate-connections.js';

t.test('alternating instances mark the device; one agent never does', async (t) => {
  const d = new DuplicateConnections(10_000);
  let now = 1_000_000;
  const online = (instance: string, dev = 'dev_a') => d.online(dev, instance, (now += 500));
  t.notOk(online('aaaaaaaa'), 'the first the relay hears of');
  t.notOk(online('aaaaaaaa'), 'the same agent reconnecting');
  t.notOk(online('bbbbbbbb'), 'a new instance: a restart, or a copy arriving');
  t.notOk(online('aaaaaaaa'), 'the first comes back: one return');
  t.equal(d.problem('dev_a', now), null);
  t.ok(online('bbbbbbbb'), 'the second return within a minute marks it (A→B→A→B)');
  const p = d.problem('dev_a', now)!;
  t.match(p, { kind: 'duplicate-connection', since: new Date(now).toISOString(), takeovers: 3 });
  t.match(p.message, /^two agents are using this device's identity \(3 takeovers in the last minute\)/);
  t.notOk(online('aaaaaaaa'), 'marked once');
  t.equal(d.problem('dev_a', now)!.takeovers, 4);
  t.equal(d.problem('dev_a', now + 60_000)!.takeovers, 0, 'takeovers older than a minute are not counted');

  for (const i of ['11111111', '22222222', '33333333', '44444444', '55555555', '66666666']) t.notOk(online(i, 'dev_loop'), 'a crash loop: a new instance each time');
  t.equal(d.problem('dev_loop', now), null);
  t.notOk(online('11111111', 'dev_loop'), 'forgotten after four others: not a return');
  t.equal(d.problem('dev_b', now), null, 'a device never seen');
});

t.test('the mark clears after clearMs without a takeover', async (t) => {
  const d = new DuplicateConnections(10_000);
  let now = 0;
  for (const i of ['aaaaaaaa', 'bbbbbbbb', 'aaaaaaaa', 'bbbbbbbb']) d.online('dev_a', i, (now += 1000));
  t.ok(d.problem('dev_a', now));
  t.same(d.expire(now + 9_999), [], 'not yet');
  d.online('dev_a', 'aaaaaaaa', (now += 5000));
  t.same(d.expire(now + 9_999), [], 'a takeover starts the wait again');
  t.same(d.expire(now + 10_000), ['dev_a']);
  t.equal(d.problem('dev_a', now + 10_000), null);
  t.same(d.expire(now + 20_000), [], 'cleared once');
  now += 20_000;
  t.notOk(d.online('dev_a', 'bbbbbbbb', (now += 1)), 'after clearing, returns count afresh');
  t.ok(d.online('dev_a', 'aaaaaaaa', (now += 1)));
  d.forget('dev_a');
  t.equal(d.problem('dev_a', now), null, 'a removed device is forgotten');
  t.equal(new DuplicateConnections().clearMs, 120_000, 'two minutes by default');
});
