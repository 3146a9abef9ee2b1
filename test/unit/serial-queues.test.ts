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
