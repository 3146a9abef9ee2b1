// Desired state that does not depend on the broker: the relay serves each device its desired
// state and job list from the store (GET /v1/devices/me/desired, /jobs, with ETags), and the
// agent reads them on every connect. An agent whose broker never carries a single relay message
// (a bare Mosquitto the relay does not know) still converges, on start and on each reconnect.

import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tlsFetch } from '@outpost/shared';
import { FIXTURES, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { needPackage } from './helpers/system-package.js';
import { startMosquitto } from './helpers/mosquitto.js';

const skip = needPackage('mosquitto', 'mosquitto');

t.test('GET /v1/devices/me/desired and /jobs: the store\'s documents, for the device alone, with ETags', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'cam');
  const other = await enrollDevice(t, relay, 'other');
  const asDevice = tlsFetch(device.tls); // mutual TLS: the certificate says who it is
  const read = (path: string, headers: Record<string, string> = {}, f = asDevice) => f(`${relay.httpUrl}/v1/devices/me/${path}`, { headers });

  const first = await read('desired');
  t.equal(first.status, 200);
  const etag = first.headers.get('etag')!;
  t.match(etag, /^"[\w-]+"$/);
  t.same((await first.json() as { models: unknown[] }).models, []);
  t.equal((await read('desired', { 'if-none-match': etag })).status, 304, 'unchanged: 304');

  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  t.equal((await relay.cli('deploy', 'linear:1', '--device', device.deviceId)).code, 0);
  const changed = await read('desired', { 'if-none-match': etag });
  t.equal(changed.status, 200, 'a deployment changes the ETag');
  const doc = await changed.json() as { revision: number; models: Array<{ name: string; version: number; sha256: string }> };
  t.same(doc.models.map((m) => [m.name, m.version]), [['linear', 1]]);
  t.not(changed.headers.get('etag'), etag);
  t.same((await (await read('desired', {}, tlsFetch(other.tls))).json() as { models: unknown[] }).models, [], "another device's read names only its own state");

  const jobs = await read('jobs');
  t.equal(jobs.status, 200);
  t.same((await jobs.json() as { jobs: unknown[] }).jobs, []);

  const withSecret = await read('desired', { authorization: `Bearer ${device.secret}` }, relay.fetch);
  t.equal(withSecret.status, 200, 'the secret works where there is no certificate');
  const anonymous = await read('desired', {}, relay.fetch);
  t.equal(anonymous.status, 401);
  t.match(await anonymous.text(), /device's certificate or secret/);
  const token = await read('desired', { authorization: `Bearer ${relay.token}` }, relay.fetch);
  t.equal(token.status, 403, 'an API token is not a device');
  t.equal((await read('desired', { authorization: `Bearer ${device.secret}x` }, relay.fetch)).status, 401, 'a wrong secret');

  // A device reading in a loop is held back, not served every time.
  let limited: Response | undefined;
  for (let i = 0; i < 40 && !limited; i++) {
    const res = await read('desired');
    if (res.status === 429) limited = res;
    else await res.body?.cancel();
  }
  t.ok(limited, 'past the burst: 429');
  t.equal(limited?.headers.get('retry-after'), '2');
});

t.test('an agent on a broker that never carries the relay\'s messages converges through HTTP', { skip }, async (t) => {
  const relay = await startRelay(t);
  const bare = await startMosquitto(t, () => ['allow_anonymous true']);
  const device = await enrollDevice(t, relay, 'cam');
  // The device's broker is one the relay never publishes to: no retained state, no live message.
  const file = join(device.dataDir, 'device.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), mqttUrl: bare.url }), { mode: 0o600 });

  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  t.equal((await relay.cli('deploy', 'linear:1', '--device', device.deviceId)).code, 0);
  const agent = await startAgent(t, device);
  const served = async (version: number) => {
    const res = await fetch(`${agent.httpUrl}/v2/models/linear`);
    if (res.status !== 200) return undefined;
    return (await res.json() as { versions?: string[] }).versions?.includes(String(version)) || undefined;
  };
  await waitFor('the agent serves linear:1, read over HTTPS at start', () => served(1), 30_000);

  // A second version, deployed while the agent is connected to its bare broker: it arrives with
  // the next connect (the broker restarts: no persistence, nothing retained, as ever).
  const push2 = await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear', '--json');
  t.equal(push2.code, 0, push2.stderr);
  const v2 = (JSON.parse(push2.stdout) as { version: number }).version;
  t.equal((await relay.cli('deploy', `linear:${v2}`, '--device', device.deviceId)).code, 0);
  await bare.restart();
  await waitFor(`the agent serves linear:${v2} after its reconnect`, () => served(v2), 60_000);
});
