// The stream's ring of recent events behaves as the last `size` events of everything pushed.

import t from 'tap';
import fc from 'fast-check';
import { EventWindow } from '../../packages/relay/dist/stream/event-window.js';

t.test('the window is the last `size` events, oldest first, whatever was pushed', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 80 }), fc.integer({ min: -1, max: 90 }), (size, pushes, since) => {
      const window = new EventWindow(size);
      const all = Array.from({ length: pushes }, (_, i) => ({ seq: i + 1, json: `${i + 1}` }));
      for (const m of all) window.push(m);
      const kept = all.slice(Math.max(0, pushes - size));
      return (
        window.length === kept.length &&
        window.oldestSeq === kept[0]?.seq &&
        JSON.stringify([...window.after(since)]) === JSON.stringify(kept.filter((m) => m.seq > since))
      );
    }),
  );
  t.pass('matches a plain slice of the last events');
});

t.test('a window of no events is refused', async (t) => {
  t.throws(() => new EventWindow(0), /at least one event/);
  t.throws(() => new EventWindow(1.5), /at least one event/);
});
