// Per-key order, keys side by side, a bounded backlog, and a failure that poisons nothing:
// what the relay relies on for each device's messages and each run's log batches.

import t from 'tap';
import { SerialQueues } from '../../packages/relay/dist/fleet/serial-queues.js';

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
};

t.test('one key in order, another beside it', async (t) => {
  const q = new SerialQueues(10);
  const seen: string[] = [];
  const first = gate();
  q.push('a', async () => {
    await first.opened;
    seen.push('a1');
  });
  q.push('a', async () => void seen.push('a2'));
  q.push('b', async () => void seen.push('b1'));
  await q.drained('b');
  t.same(seen, ['b1'], "b does not wait for a's slow first");
  first.open();
  await q.idle();
  t.same(seen, ['b1', 'a1', 'a2'], "a's in arrival order");
});

t.test('a flood past the bound is refused, and the key takes work again once it drains', async (t) => {
  const q = new SerialQueues(3);
  const held = gate();
  let ran = 0;
  const accepted = Array.from({ length: 10_000 }, () => q.push('dev', async () => {
    await held.opened;
    ran++;
  }));
  t.equal(accepted.filter(Boolean).length, 3, 'only the bound is kept');
  held.open();
  await q.idle();
  t.equal(ran, 3);
  t.equal(q.push('dev', async () => void ran++), true, 'room again');
  await q.idle();
  t.equal(ran, 4);
});

t.test('work that throws costs itself, not the work after it', async (t) => {
  const q = new SerialQueues(10);
  const seen: number[] = [];
  q.push('k', async () => {
    throw new Error('store gone');
  });
  q.push('k', async () => void seen.push(2));
  await q.idle();
  t.same(seen, [2]);
  const rejected = q.run('k', async () => {
    throw new Error('boom');
  });
  await t.rejects(rejected!, { message: 'boom' }, 'run() hands the error to its caller');
  t.equal(await q.run('k', async () => 7), 7, 'and gives results');
  const full = new SerialQueues(0);
  t.equal(full.run('k', async () => 1), undefined, 'undefined past the bound');
});

t.test('at most atOnce keys run at a time; the rest wait their turn in arrival order', async (t) => {
  const q = new SerialQueues({ perKey: 10, atOnce: 2 });
  const gates = Array.from({ length: 5 }, gate);
  const started: number[] = [];
  let running = 0;
  let most = 0;
  for (let i = 0; i < 5; i++) {
    q.push(`k${i}`, async () => {
      started.push(i);
      most = Math.max(most, ++running);
      await gates[i]!.opened;
      running--;
    });
  }
  await new Promise((resolve) => setImmediate(resolve));
  t.same(started, [0, 1], 'two run, three wait');
  gates[1]!.open();
  await new Promise((resolve) => setImmediate(resolve));
  t.same(started, [0, 1, 2], 'a finished one hands its turn to the oldest waiting');
  for (const g of gates) g.open();
  await q.idle();
  t.same(started, [0, 1, 2, 3, 4]);
  t.equal(most, 2, 'never more than two at once');
  t.equal(q.waiting, 0);
});

t.test('a key keeps its order while waiting for turns, and work that throws gives its turn back', async (t) => {
  const q = new SerialQueues({ perKey: 10, atOnce: 1 });
  const seen: string[] = [];
  q.push('a', async () => {
    throw new Error('store gone');
  });
  q.push('b', async () => void seen.push('b1'));
  q.push('a', async () => void seen.push('a2'));
  q.push('b', async () => void seen.push('b2'));
  await q.idle();
  t.same(seen.filter((s) => s.startsWith('a')), ['a2']);
  t.same(seen.filter((s) => s.startsWith('b')), ['b1', 'b2'], 'per key in order');
  t.equal(await q.run('c', async () => 3), 3, 'the turn came back after the throw');
});

t.test('past the total bound every key is refused until work drains', async (t) => {
  const q = new SerialQueues({ perKey: 10, total: 3 });
  const held = gate();
  const accepted = ['a', 'b', 'c', 'd', 'a'].map((k) => q.push(k, () => held.opened));
  t.same(accepted, [true, true, true, false, false]);
  t.equal(q.full, true);
  t.equal(q.waiting, 3);
  held.open();
  await q.idle();
  t.equal(q.full, false);
  t.equal(q.push('d', async () => {}), true);
});

t.test('thousands waiting for turns are handed them one by one, none lost', async (t) => {
  const q = new SerialQueues({ perKey: 10, atOnce: 3 });
  let ran = 0;
  for (let i = 0; i < 5000; i++) q.push(`k${i}`, async () => void ran++);
  await q.idle();
  t.equal(ran, 5000);
  t.equal(await q.run('x', async () => 'after'), 'after', 'the turns are all given back');
});

t.test('close waits for the work that runs, skips what has not started past its grace, and takes nothing new', async (t) => {
  const q = new SerialQueues({ perKey: 10, atOnce: 1 });
  const running = gate();
  const seen: string[] = [];
  q.push('a', async () => {
    await running.opened;
    seen.push('a1');
  });
  q.push('b', async () => void seen.push('b1'));
  q.push('a', async () => void seen.push('a2'));
  const closed = q.close(0);
  t.equal(q.closing, true);
  t.equal(q.push('c', async () => void seen.push('c1')), false, 'nothing new once closing');
  // Node fires timers in expiry order: the grace's (0 ms) before this one (5 ms).
  await new Promise((resolve) => setTimeout(resolve, 5));
  running.open();
  await closed;
  t.same(seen, ['a1'], 'the running work finished; the waiting work was skipped');
  t.equal(q.waiting, 0);
});

t.test('close with time to spare lets the waiting work run', async (t) => {
  const q = new SerialQueues({ perKey: 10, atOnce: 1 });
  const seen: number[] = [];
  for (let i = 0; i < 20; i++) q.push(`k${i}`, async () => void seen.push(i));
  await q.close(60_000);
  t.equal(seen.length, 20, 'all of it ran within the grace');
});
