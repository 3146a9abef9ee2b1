// The router's memory of which devices exist: asked once, forgotten on removal or after a while.

import t from 'tap';
import { KnownDevices } from '../../packages/relay/dist/fleet/known-devices.js';

function storeOf(ids: string[]) {
  const devices = new Set(ids);
  let reads = 0;
  return {
    devices,
    get reads() {
      return reads;
    },
    exists: async (id: string) => {
      reads++;
      return devices.has(id);
    },
  };
}

t.test('a device found once is not read again until it is forgotten', async (t) => {
  const store = storeOf(['a']);
  const known = new KnownDevices({ exists: store.exists, now: () => 0 });
  t.equal(await known.exists('a'), true);
  t.equal(await known.exists('a'), true);
  t.equal(store.reads, 1, 'one store read for two messages');
  store.devices.delete('a');
  known.forget('a');
  t.equal(await known.exists('a'), false, 'removed: the store is asked again');
  t.equal(await known.exists('a'), false);
  t.equal(store.reads, 3, 'a missing device is never remembered');
});

t.test('the memory lasts ttlMs', async (t) => {
  let now = 0;
  const store = storeOf(['a']);
  const known = new KnownDevices({ exists: store.exists, ttlMs: 1000, now: () => now });
  await known.exists('a');
  now = 999;
  await known.exists('a');
  t.equal(store.reads, 1);
  now = 1000;
  store.devices.delete('a'); // removed with no event seen
  t.equal(await known.exists('a'), false, 'past the limit the store answers');
});

t.test('a removal during a read leaves that answer unremembered', async (t) => {
  const store = storeOf(['a']);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const known = new KnownDevices({ exists: async (id) => { const answer = await store.exists(id); await gate; return answer; }, now: () => 0 });
  const reading = known.exists('a');
  known.forget('a');
  store.devices.delete('a');
  release();
  t.equal(await reading, true, 'the read answers what it read');
  t.equal(await known.exists('a'), false, 'but it was not remembered');
});

t.test('past max devices the memory starts again', async (t) => {
  const store = storeOf(['a', 'b', 'c']);
  const known = new KnownDevices({ exists: store.exists, max: 2, now: () => 0 });
  await known.exists('a');
  await known.exists('b');
  t.equal(known.size, 2);
  await known.exists('c');
  t.equal(known.size, 1, 'cleared, then c');
});
