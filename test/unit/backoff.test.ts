// Retry delays: doubling to a ceiling, never below half of it (equal jitter), so a fleet spreads
// out without any device waiting longer than the ceiling; and isDiskFull finds the code in a
// cause chain.

import t from 'tap';
import fc from 'fast-check';
import { backoffMs, isDiskFull } from '@outpost/shared';

t.test('backoff: within [ceiling / 2, ceiling], the ceiling doubling up to maxMs', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 600_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (failures, baseMs, maxMs, r) => {
      const ceiling = Math.min(maxMs, baseMs * 2 ** (failures - 1));
      const d = backoffMs(failures, { baseMs, maxMs }, () => r);
      return Number.isFinite(d) && d >= Math.floor(ceiling / 2) && d <= Math.ceil(ceiling);
    }),
  );
  t.equal(backoffMs(1, { baseMs: 1000, maxMs: 30_000 }, () => 1), 1000);
  t.equal(backoffMs(4, { baseMs: 1000, maxMs: 30_000 }, () => 1), 8000);
  t.equal(backoffMs(50, { baseMs: 1000, maxMs: 30_000 }, () => 1), 30_000, 'capped');
  t.equal(backoffMs(1, { baseMs: 1000, maxMs: 30_000 }, () => 0), 500, 'half of the ceiling at least');
  const spread = new Set(Array.from({ length: 100 }, () => backoffMs(3, { baseMs: 1000, maxMs: 30_000 })));
  t.ok(spread.size > 50, `a hundred devices pick ${spread.size} different delays`);
});

t.test('disk full: ENOSPC, EDQUOT and SQLITE_FULL, also as a cause', async (t) => {
  t.ok(isDiskFull(Object.assign(new Error('no space'), { code: 'ENOSPC' })));
  t.ok(isDiskFull(Object.assign(new Error('quota'), { code: 'EDQUOT' })));
  t.ok(isDiskFull(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })));
  t.ok(isDiskFull(new Error('upload failed', { cause: Object.assign(new Error('x'), { code: 'ENOSPC' }) })));
  t.notOk(isDiskFull(Object.assign(new Error('gone'), { code: 'ENOENT' })));
  t.notOk(isDiskFull(undefined));
  t.notOk(isDiskFull('ENOSPC'));
  const loop: { code: string; cause?: unknown } = { code: 'EIO' };
  loop.cause = loop;
  t.notOk(isDiskFull(loop), 'a cause cycle ends');
});
