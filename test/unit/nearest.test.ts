// "Did you mean …?": edit distance with swaps, bounded, case-insensitive.

import t from 'tap';
import { didYouMean, editDistance, nearest, typoBudget } from '@outpost/shared';

t.test('edit distance', async (t) => {
  t.equal(editDistance('device1', 'device1'), 0);
  t.equal(editDistance('devce1', 'device1'), 1, 'a missing letter');
  t.equal(editDistance('modle', 'model'), 1, 'two neighbours swapped are one edit');
  t.equal(editDistance('kitten', 'sitting'), 3);
  t.equal(editDistance('', 'abc'), 3);
  t.equal(editDistance('abc', ''), 3);
  t.equal(editDistance('ca', 'abc'), 3, 'optimal string alignment: a swapped pair is not edited again');
  t.equal(editDistance('abcdef', 'abcxyz', 1), 2, 'past the limit: limit + 1');
  t.equal(editDistance('a', 'abcdefgh', 2), 3, 'lengths too far apart are not compared');
  t.equal(editDistance('x'.repeat(128) + 'a', 'x'.repeat(128) + 'b', 3), 1, 'long names stay cheap within the band');
});

t.test('typo budget', async (t) => {
  t.equal(typoBudget('ab'), 1);
  t.equal(typoBudget('modle'), 1);
  t.equal(typoBudget('devce1'), 2);
  t.equal(typoBudget('a-very-long-device-name'), 3, 'at most 3');
});

t.test('nearest and did you mean', async (t) => {
  const names = ['device1', 'device2', 'camera', 'dev_3f2a9c1b7d0e', 'device1'];
  t.same(nearest('devce1', names), ['device1']);
  t.same(nearest('device3', names), ['device1', 'device2'], 'ties, in the order given, each once');
  t.same(nearest('DEVICE1', names), ['device1'], 'case does not count');
  t.same(nearest('zzzzzz', names), [], 'nothing near');
  t.same(nearest('d', ['a', 'b', 'c', 'e'], 2), ['a', 'b'], 'at most max');
  t.same(nearest('camera', names), [], 'the name itself is no suggestion');
  t.equal(didYouMean('devce1', names), '; did you mean device1?');
  t.equal(didYouMean('device3', names), '; did you mean device1 or device2?');
  t.equal(didYouMean('d', ['a', 'b', 'c']), '; did you mean a, b or c?');
  t.equal(didYouMean('front dor', ['front door']), '; did you mean "front door"?', 'a name with spaces is quoted');
  t.equal(didYouMean('zzzzzz', names), '');
});
