// Federated rounds' rules: client selection (fraction, minimum, uniform, no repeats) and when a
// round aggregates, waits, or is tried again, with every dropped client named.

import t from 'tap';
import fc from 'fast-check';
import { roundVerdict, selectClients, type ClientAnswer } from '../../packages/relay/dist/federated/round-rules.js';

/** A small LCG in [0, 1), for samples a test can repeat. */
const seeded = (seed: number) => () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;

t.test('selection: a fraction of those available, at least the minimum', async (t) => {
  const ten = Array.from({ length: 10 }, (_, i) => `dev_${i}`);
  t.equal(selectClients(ten.slice(0, 2), { fraction: 1, minClients: 3 }, seeded(1)), null, 'fewer than the minimum: wait');
  t.equal(selectClients(ten, { fraction: 0.5, minClients: 2 }, seeded(1))!.length, 5);
  t.equal(selectClients(ten, { fraction: 0.1, minClients: 3 }, seeded(1))!.length, 3, 'the minimum wins over a small fraction');
  t.same(selectClients(ten, { fraction: 1, minClients: 1 }, seeded(1)), ten);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 30 }), fc.double({ min: 0.01, max: 1, noNaN: true }), fc.integer({ min: 1, max: 10 }), fc.integer(), (n, fraction, minClients, seed) => {
      const available = Array.from({ length: n }, (_, i) => `d${i}`);
      const chosen = selectClients(available, { fraction, minClients }, seeded(seed));
      if (n < minClients) return chosen === null;
      return chosen !== null && new Set(chosen).size === chosen.length && chosen.every((c) => available.includes(c)) && chosen.length >= minClients && chosen.length <= n;
    }),
  );
  // Uniform enough: over many rounds every client is picked about as often.
  const counts = new Map<string, number>();
  const rnd = seeded(42);
  for (let i = 0; i < 2000; i++) for (const c of selectClients(ten, { fraction: 0.3, minClients: 1 }, rnd)!) counts.set(c, (counts.get(c) ?? 0) + 1);
  t.ok([...counts.values()].every((n) => n > 450 && n < 750), `each picked about 600 times of 2000: ${[...counts.values()].join(', ')}`);
});

t.test('a round waits, aggregates, or is tried again', async (t) => {
  const selected = ['a', 'b', 'c'];
  const answers = (entries: Array<[string, ClientAnswer]>) => new Map(entries);
  const update = { kind: 'update', numExamples: 10 } as const;
  t.same(roundVerdict({ selected, answers: answers([['a', update]]), deadlinePassed: false, minClients: 2 }), { kind: 'wait' });
  t.same(roundVerdict({ selected, answers: answers([['a', update], ['b', update], ['c', update]]), deadlinePassed: false, minClients: 2 }), { kind: 'aggregate', clients: ['a', 'b', 'c'], dropped: [] }, 'everyone answered');
  t.same(roundVerdict({ selected, answers: answers([['a', update], ['b', update]]), deadlinePassed: true, minClients: 2 }), { kind: 'aggregate', clients: ['a', 'b'], dropped: [{ client: 'c', reason: 'no update by the round deadline' }] }, 'a straggler is dropped at the deadline');
  t.same(
    roundVerdict({ selected, answers: answers([['a', update], ['b', { kind: 'refused', reason: 'initializer W has a non-finite value' }], ['c', { kind: 'failed', reason: 'exit code 1' }]]), deadlinePassed: false, minClients: 2 }),
    { kind: 'retry', reason: '1 good update of 3 asked; the round needs 2', dropped: [{ client: 'b', reason: 'update refused: initializer W has a non-finite value' }, { client: 'c', reason: 'exit code 1' }] },
    'too few good: tried again, each dropped client named',
  );
  t.equal(roundVerdict({ selected, answers: answers([]), deadlinePassed: true, minClients: 0 }).kind, 'retry', 'nothing to average is never a round');
});
