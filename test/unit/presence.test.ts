import t from 'tap';
import { Presence } from '../../packages/relay/dist/fleet/presence.js';

const status = (online: boolean, session?: number) => ({ online, ts: 1, ...(session === undefined ? {} : { session }) });

t.test('status by session: a late will of an old connection is not news', async (t) => {
  const p = new Presence();
  t.ok(p.status('d', status(true, 100)), 'session 100 online');
  t.ok(p.status('d', status(true, 200)), 'the device reconnected (session 200)');
  t.notOk(p.status('d', status(false, 100)), "session 100's will, published late by the broker, is ignored");
  t.ok(p.status('d', status(false, 200)), 'the end of the current session counts');
  t.notOk(p.status('d', status(true, 200)), 'an online of an ended session is stale');
  t.ok(p.status('d', status(true, 300)), 'a new session');
  t.ok(p.status('d', status(false)), 'an agent without sessions: arrival order');
  t.notOk(await p.heartbeat('x', async () => true), 'a heartbeat of a device stored online changes nothing');
  t.ok(await p.heartbeat('d', async () => true), 'a heartbeat brings a device the relay saw go offline back online');
  t.notOk(await p.heartbeat('d', async () => false), 'once');
  p.forget('d');
  t.ok(await p.heartbeat('d', async () => false), 'a forgotten device falls back to the store');
});
