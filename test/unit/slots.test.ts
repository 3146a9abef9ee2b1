// The counting semaphore behind the device messages handled at once and the artifact downloads
// served at once: first come first served, a release hands its slot on (active stays the same),
// and a waiter that leaves (timeout, abort, turnAway) costs nobody a slot or a turn.

import t from 'tap';
import fc from 'fast-check';
import { Slots } from '../../packages/relay/dist/fleet/slots.js';

/** Takes without a timeout; records the outcome under `name` once it settles. */
const taker = (slots: Slots, outcomes: string[]) => (name: string, signal?: AbortSignal) =>
  slots.take(Infinity, signal).then((got) => {
    outcomes.push(`${name} ${got}`);
    return got;
  });

t.test('waiters are served first come, first served, each release handing its slot on', async (t) => {
  const slots = new Slots(2);
  t.equal(slots.tryTake(), true);
  t.equal(await slots.take(0), true);
  t.equal(slots.tryTake(), false, 'both taken');
  const outcomes: string[] = [];
  const take = taker(slots, outcomes);
  const waiting = ['a', 'b', 'c', 'd'].map((name) => take(name));
  t.equal(slots.waiting, 4);
  for (let i = 0; i < 4; i++) {
    slots.release();
    t.equal(slots.active, 2, 'the slot passed straight on: active stays the same');
    t.equal(slots.waiting, 3 - i);
    t.equal(slots.tryTake(), false, 'nobody takes a handed-on slot in between');
  }
  await Promise.all(waiting);
  t.same(outcomes, ['a true', 'b true', 'c true', 'd true'], 'in arrival order');
  slots.release();
  t.equal(slots.active, 1, 'nobody waiting: the slot is freed');
  slots.release();
  t.equal(slots.active, 0);
  t.equal(slots.tryTake(), true);
});

t.test('no wait, or an aborted signal, is turned away at once when no slot is free', async (t) => {
  const slots = new Slots(1);
  const gone = new AbortController();
  gone.abort();
  t.equal(await slots.take(0, gone.signal), true, 'a free slot is taken whatever the signal');
  t.equal(await slots.take(0), false);
  t.equal(await slots.take(-1), false);
  t.equal(await slots.take(10_000, gone.signal), false);
  t.equal(slots.waiting, 0, 'none of them queued');
  t.equal(slots.active, 1);
});

t.test('a waiter whose wait runs out leaves the queue, and later releases skip nobody', async (t) => {
  const slots = new Slots(1);
  t.equal(slots.tryTake(), true);
  const outcomes: string[] = [];
  const take = taker(slots, outcomes);
  const first = take('first');
  const late = slots.take(1).then((got) => void outcomes.push(`late ${got}`));
  const last = take('last');
  await late; // settles when its wait runs out
  t.equal(slots.waiting, 2, 'it left the queue');
  t.equal(slots.active, 1, 'and took no slot with it');
  slots.release();
  slots.release();
  await Promise.all([first, last]);
  t.same(outcomes, ['late false', 'first true', 'last true']);
  t.equal(slots.active, 1);
  slots.release();
  t.equal(slots.active, 0);
});

t.test('a waiter whose signal aborts leaves the queue, and later releases skip nobody', async (t) => {
  const slots = new Slots(1);
  t.equal(slots.tryTake(), true);
  const outcomes: string[] = [];
  const take = taker(slots, outcomes);
  const gone = new AbortController();
  const first = take('first');
  const aborted = take('aborted', gone.signal);
  const last = take('last');
  gone.abort();
  t.equal(await aborted, false, 'it stopped waiting');
  t.equal(slots.waiting, 2);
  slots.release();
  slots.release();
  await Promise.all([first, last]);
  t.same(outcomes, ['aborted false', 'first true', 'last true']);
  slots.release();
  t.equal(slots.active, 0, 'every slot came back');
  gone.abort(); // again: nothing happens
  t.equal(slots.active, 0);
});

t.test('a waiter given its slot is done with its signal and its timer', async (t) => {
  const slots = new Slots(1);
  t.equal(slots.tryTake(), true);
  const gone = new AbortController();
  const got = slots.take(60_000, gone.signal);
  slots.release();
  t.equal(await got, true);
  gone.abort(); // after the hand-over: it must not leave, nor give the slot back
  t.equal(slots.active, 1);
  t.equal(slots.waiting, 0);
  slots.release();
  t.equal(slots.active, 0);
  // The 60 s timer was cleared with the hand-over: were it not, this file's process would stay up 60 s more.
});

t.test('turnAway sends every waiter off without a slot; the slots taken stay taken', async (t) => {
  const slots = new Slots(2);
  t.equal(slots.tryTake(), true);
  t.equal(slots.tryTake(), true);
  const outcomes: string[] = [];
  const take = taker(slots, outcomes);
  const gone = new AbortController();
  const waiting = [take('a'), take('left', gone.signal), take('b', new AbortController().signal), slots.take(60_000).then((got) => void outcomes.push(`timed ${got}`))];
  gone.abort();
  t.equal(slots.turnAway(), 3, 'the three still waiting, not the one that left');
  await Promise.all(waiting);
  t.same(outcomes, ['left false', 'a false', 'b false', 'timed false'], 'in arrival order');
  t.equal(slots.waiting, 0);
  t.equal(slots.active, 2);
  t.equal(slots.turnAway(), 0, 'nobody left to send off');
  const after = take('after');
  slots.release();
  t.equal(await after, true, 'the queue works on after it');
  slots.release();
  slots.release();
  t.equal(slots.active, 0);
});

t.test('no bound: Infinity slots, nobody waits', async (t) => {
  const slots = new Slots(Infinity);
  t.equal(Array.from({ length: 1000 }, () => slots.tryTake()).every(Boolean), true);
  t.equal(await slots.take(0), true);
  t.equal(slots.active, 1001);
  t.equal(slots.waiting, 0);
});

/**
 * Lets every take settled so far record its outcome (promise reactions run before the event loop
 * moves on): a take that never settles shows as undefined instead of hanging the test.
 */
const reactionsRun = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Takes without a timeout, each with its own AbortController; outcomes recorded by id, grants in order. */
function takers(slots: Slots) {
  const controllers: AbortController[] = [];
  const outcomes: Array<boolean | undefined> = [];
  const given: number[] = [];
  return {
    controllers,
    outcomes,
    given,
    take(): number {
      const id = controllers.length;
      controllers.push(new AbortController());
      outcomes.push(undefined);
      void slots.take(Infinity, controllers[id]!.signal).then((got) => {
        outcomes[id] = got;
        if (got) given.push(id);
      });
      return id;
    },
  };
}

t.test('thousands waiting, most of them leaving out of order: the rest served in order, none lost', async (t) => {
  const slots = new Slots(3);
  for (let i = 0; i < 3; i++) slots.tryTake();
  const n = 6000;
  const w = takers(slots);
  const ids = Array.from({ length: n }, () => w.take());
  // Two in three leave: those at the back first, then (after 500 releases) those at the front,
  // so the holes lie on both sides of the head and the queue is compacted on the way.
  const leaving = ids.filter((i) => i % 3 !== 0);
  for (const i of leaving.filter((i) => i >= n / 2).reverse()) w.controllers[i]!.abort();
  for (let r = 0; r < 500; r++) slots.release();
  for (const i of leaving.filter((i) => i < n / 2)) w.controllers[i]!.abort(); // the first 500 were served already
  const stayed = ids.filter((i) => i < 500 || i % 3 === 0);
  t.equal(slots.waiting, stayed.length - 500);
  t.equal(slots.active, 3, 'every release was handed on');
  for (let r = 500; r < stayed.length; r++) slots.release();
  t.equal(slots.waiting, 0);
  t.equal(slots.active, 3);
  await reactionsRun();
  t.same(w.given, stayed, 'those that stayed were served, in arrival order');
  t.same(w.outcomes, ids.map((i) => stayed.includes(i)), 'and the others were told no');
  for (let i = 0; i < 3; i++) slots.release();
  t.equal(slots.active, 0);
  t.equal(slots.tryTake(), true, 'free again');
});

const check = (ok: boolean, what: string) => {
  if (!ok) throw new Error(what);
};

t.test('property: whatever the takes, releases, aborts and turnAways, the slots match a model', async (t) => {
  type Op = { op: 'take' } | { op: 'release' } | { op: 'abort'; which: number } | { op: 'turnAway' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { arbitrary: fc.constant({ op: 'take' as const }), weight: 4 },
    { arbitrary: fc.constant({ op: 'release' as const }), weight: 3 },
    { arbitrary: fc.record({ op: fc.constant('abort' as const), which: fc.nat() }), weight: 2 },
    { arbitrary: fc.constant({ op: 'turnAway' as const }), weight: 1 },
  );
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 120 }), async (max, ops) => {
    const slots = new Slots(max);
    const w = takers(slots);
    // The model: slots held, who waits in order, each take's outcome and the order slots are given.
    let held = 0;
    let queue: number[] = [];
    const expected: boolean[] = [];
    const given: number[] = [];
    for (const o of ops) {
      if (o.op === 'take') {
        const id = w.take();
        if (held < max) {
          held++;
          expected[id] = true;
          given.push(id);
        } else queue.push(id);
      } else if (o.op === 'release') {
        if (held === 0) continue; // every release matches a slot taken
        slots.release();
        const next = queue.shift();
        if (next === undefined) held--;
        else {
          expected[next] = true;
          given.push(next);
        }
      } else if (o.op === 'abort') {
        if (w.controllers.length === 0) continue;
        const id = o.which % w.controllers.length;
        w.controllers[id]!.abort();
        if (queue.includes(id)) {
          queue = queue.filter((q) => q !== id);
          expected[id] = false;
        }
      } else {
        check(slots.turnAway() === queue.length, 'turnAway sent off as many as waited');
        for (const id of queue) expected[id] = false;
        queue = [];
      }
      check(slots.active <= max, `${slots.active} active of ${max}`);
      check(slots.active === held && slots.waiting === queue.length, `active ${slots.active}, waiting ${slots.waiting}; the model ${held} and ${queue.length}`);
      check(slots.waiting === 0 || slots.active === max, 'a slot free while someone waits');
    }
    // Those still waiting would never settle: send them off, then every take has its outcome.
    check(slots.turnAway() === queue.length, 'turnAway sent off as many as waited');
    for (const id of queue) expected[id] = false;
    await reactionsRun();
    check(JSON.stringify(w.outcomes) === JSON.stringify(expected), `outcomes ${JSON.stringify(w.outcomes)}; the model ${JSON.stringify(expected)}`);
    check(JSON.stringify(w.given) === JSON.stringify(given), `slots given to ${JSON.stringify(w.given)}; the model ${JSON.stringify(given)}`);
    for (let i = 0; i < held; i++) slots.release();
    check(slots.active === 0 && slots.tryTake(), 'a slot was lost');
  }), { numRuns: 300 });
  t.pass('300 random sequences matched the model');
});

t.test('property: a long queue that waiters leave at random while releases come serves the rest in order', async (t) => {
  // Long enough that the queue is compacted (past 1,024 spent entries) at random points.
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1100, max: 3000 }), fc.array(fc.tuple(fc.boolean(), fc.nat()), { minLength: 1500, maxLength: 4000 }), async (n, steps) => {
    const slots = new Slots(2);
    slots.tryTake();
    slots.tryTake();
    const w = takers(slots);
    const queue = Array.from({ length: n }, () => w.take());
    const given: number[] = [];
    for (const [release, which] of steps) {
      if (release) {
        slots.release();
        const next = queue.shift();
        if (next !== undefined) given.push(next);
        else slots.tryTake(); // the slot was freed: hold it again, as the model does
      } else {
        const id = which % n;
        w.controllers[id]!.abort();
        const at = queue.indexOf(id);
        if (at >= 0) queue.splice(at, 1);
      }
      check(slots.waiting === queue.length && slots.active === 2, `waiting ${slots.waiting}, active ${slots.active}; the model ${queue.length} and 2`);
    }
    for (const id of queue) given.push(id);
    for (let i = queue.length; i > 0; i--) slots.release();
    check(slots.waiting === 0 && slots.active === 2, 'all served, the two slots held');
    await reactionsRun();
    check(JSON.stringify(w.given) === JSON.stringify(given), 'served in the model\'s order');
    check(w.outcomes.every((o) => o !== undefined), 'every take settled');
  }), { numRuns: 30, endOnFailure: true }); // shrinking thousands of steps would take minutes
  t.pass('30 long queues matched the model');
});
