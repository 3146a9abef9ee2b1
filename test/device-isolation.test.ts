// Security and hostile input at the broker and the API: a device reaches only its own topics
// and artifacts; bad credentials, malformed payloads and floods are refused and crash nothing.

import t from 'tap';
import type { MqttClient } from 'mqtt';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, runCli, AGENT_BIN, startAgent, startRelay, type Device } from './helpers/programs.js';
import { connectAs } from './helpers/mqtt-client.js';
import { waitFor } from './helpers/wait.js';

const prefix = (id: string) => `outpost/v1/devices/${id}`;

function deviceClient(url: string, d: Device): Promise<MqttClient> {
  return connectAs(url, { clientId: d.deviceId, username: d.deviceId, password: d.secret });
}

interface DeviceView {
  id: string;
  online: boolean;
  health: unknown;
}

t.test('a device reaches only its own topics and artifacts', async (t) => {
  const relay = await startRelay(t);
  const a = await enrollDevice(t, relay, 'a');
  const b = await enrollDevice(t, relay, 'b');
  const m = await enrollDevice(t, relay, 'mallory');
  const agentB = await startAgent(t, b);
  const pushed = JSON.parse((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear', '--json')).stdout) as { sha256: string };
  t.equal((await relay.cli('deploy', 'linear', '--device', b.deviceId, '--wait')).code, 0);

  await t.test('anonymous, wrong and borrowed credentials are refused', async (t) => {
    await t.rejects(connectAs(relay.mqttUrl, { clientId: 'anon' }), /Bad username or password|Not authorized/i);
    await t.rejects(connectAs(relay.mqttUrl, { clientId: a.deviceId, username: a.deviceId, password: 'wrong' }), /Bad username or password/i);
    await t.rejects(connectAs(relay.mqttUrl, { clientId: a.deviceId, username: a.deviceId, password: b.secret }), /Bad username or password/i);
    // Right credentials, someone else's client id: that would evict the other device's session (CONNACK 2, MQTT-3.1.3-9).
    await t.rejects(connectAs(relay.mqttUrl, { clientId: b.deviceId, username: a.deviceId, password: a.secret }), /Identifier rejected/i);
    await t.rejects(connectAs(relay.mqttUrl, { clientId: b.deviceId, username: a.deviceId, password: b.secret }), /Bad username or password/i, 'wrong credentials and a borrowed id: bad credentials');
    t.equal(await (await fetch(`${agentB.httpUrl}/v2/health/ready`)).status, 200, 'b kept its session through all that');
  });

  await t.test('subscriptions outside the prefix get nothing, retained or live', async (t) => {
    const spy = await deviceClient(relay.mqttUrl, a);
    t.teardown(() => spy.endAsync());
    const seen: string[] = [];
    spy.on('message', (topic) => seen.push(topic));
    for (const filter of ['#', `${prefix(b.deviceId)}/#`, 'outpost/v1/devices/+/status', '$SYS/#']) {
      // The broker grants 128 (failure), which MQTT.js turns into a rejection; the session stays up.
      await t.rejects(spy.subscribeAsync(filter, { qos: 1 }), /Unspecified error/, `${filter} is denied`);
    }
    const own = await spy.subscribeAsync(`${prefix(a.deviceId)}/#`, { qos: 1 });
    t.equal(own[0]!.qos, 1, 'its own prefix is granted');
    // Wait for two of b's heartbeats (the relay sees them) while a listens everywhere it may.
    const before = (await relay.api<DeviceView>('GET', `/v1/devices/${b.deviceId}`)).body.health;
    await waitFor('b heartbeats', async () => {
      const h = (await relay.api<DeviceView>('GET', `/v1/devices/${b.deviceId}`)).body.health;
      return JSON.stringify(h) !== JSON.stringify(before) || undefined;
    });
    t.same(seen.filter((topic) => !topic.startsWith(prefix(a.deviceId))), [], 'a saw none of b\'s messages');
  });

  await t.test('a publish outside the prefix is dropped and the publisher disconnected', async (t) => {
    const evil = await deviceClient(relay.mqttUrl, m);
    const closed = new Promise<void>((resolve) => evil.once('close', () => resolve()));
    evil.publish(`${prefix(b.deviceId)}/status`, JSON.stringify({ online: false, ts: Date.now() }), { qos: 1, retain: true });
    await closed;
    evil.end(true);
    const d = (await relay.api<DeviceView>('GET', `/v1/devices/${b.deviceId}`)).body;
    t.equal(d.online, true, 'b is still online in the relay');
  });

  await t.test('malformed payloads are dropped; the relay keeps running', async (t) => {
    const c = await deviceClient(relay.mqttUrl, m);
    t.teardown(() => c.endAsync());
    await c.publishAsync(`${prefix(m.deviceId)}/health`, 'not json at all', { qos: 1 });
    await c.publishAsync(`${prefix(m.deviceId)}/reported`, JSON.stringify({ revision: 1, models: [{ name: '../etc', state: 'serving' }] }), { qos: 1 });
    await c.publishAsync(`${prefix(m.deviceId)}/status`, JSON.stringify({ online: 'yes' }), { qos: 1 });
    await c.publishAsync(`${prefix(m.deviceId)}/whatever`, '{}', { qos: 1 });
    // One good message after the bad ones: once the relay has it, it has read them all.
    await c.publishAsync(`${prefix(m.deviceId)}/status`, JSON.stringify({ online: true, ts: Date.now() }), { qos: 1 });
    const d = await waitFor('mallory online', async () => {
      const res = await relay.api<DeviceView & { models: unknown[] }>('GET', `/v1/devices/${m.deviceId}`);
      return res.body.online ? res.body : undefined;
    });
    t.same(d.models, [], 'the malformed report was not stored');
    t.equal(d.health, null, 'the malformed heartbeat was not stored');
    // Three refused payloads plus one on an unknown topic, each logged (logs are written asynchronously).
    await waitFor('the warnings in the relay log', () => relay.logs.filter((l) => l.msg === 'device message dropped').length >= 3);
    // A topic a device does not write is refused at the broker (a quota strike), before the relay's logic.
    await waitFor('the unknown topic refusal', () => relay.logs.some((l) => l.msg === 'device message refused: past its quota' && l.quota === 'topic' && l.deviceId === m.deviceId));
    t.pass('each malformed message was logged');
    t.notOk(relay.logs.some((l) => JSON.stringify(l).includes(m.secret)), 'no log line holds the secret');
  });

  await t.test('a flooding device is disconnected; everyone else carries on', async (t) => {
    const flood = await deviceClient(relay.mqttUrl, m);
    const closed = new Promise<void>((resolve) => flood.once('close', () => resolve()));
    const payload = JSON.stringify({ online: true, ts: Date.now() });
    let sent = 0;
    // Far past the per-device rate, as fast as the socket takes it.
    while (sent < 5000 && flood.connected) {
      flood.publish(`${prefix(m.deviceId)}/status`, payload, { qos: 0 });
      sent++;
    }
    await closed;
    flood.end(true);
    await waitFor('the flood warning', () => relay.logs.some((l) => l.msg === 'device disconnected: past its quota' && l.quota === 'rate' && l.deviceId === m.deviceId));
    t.equal((await relay.api<{ status: string }>('GET', '/v1/health', undefined, null)).body.status, 'ok');
    const res = await fetch(`${agentB.httpUrl}/v2/models/linear/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
    });
    t.equal(res.status, 200, 'b still serves');
  });

  await t.test('artifacts need a credential, and a device sees only what is deployed to it', async (t) => {
    const url = `${relay.httpUrl}/v1/artifacts/${pushed.sha256}`;
    t.equal((await relay.fetch(url)).status, 401, 'no credential');
    t.equal((await relay.fetch(url, { headers: { authorization: 'Bearer ods_000000000000_wrongwrongwrongwrongwrong' } })).status, 401, 'wrong secret');
    t.equal((await relay.fetch(url, { headers: { authorization: `Bearer ${a.secret}` } })).status, 404, 'a has no deployment of it');
    const asB = await relay.fetch(url, { headers: { authorization: `Bearer ${b.secret}` } });
    t.equal(asB.status, 200);
    const bytes = Buffer.from(await asB.arrayBuffer());
    t.equal(createHash('sha256').update(bytes).digest('hex'), pushed.sha256);
    t.equal(asB.headers.get('etag'), `"${pushed.sha256}"`);
    const part = await relay.fetch(url, { headers: { authorization: `Bearer ${relay.token}`, range: 'bytes=10-19' } });
    t.equal(part.status, 206);
    t.equal(part.headers.get('content-range'), `bytes 10-19/${bytes.length}`);
    t.same(Buffer.from(await part.arrayBuffer()), bytes.subarray(10, 20));
    const cached = await relay.fetch(url, { headers: { authorization: `Bearer ${relay.token}`, 'if-none-match': `"${pushed.sha256}"` } });
    t.equal(cached.status, 304);
    const outside = await relay.fetch(url, { headers: { authorization: `Bearer ${relay.token}`, range: `bytes=${bytes.length + 5}-` } });
    t.equal(outside.status, 416);
    t.equal((await relay.api('GET', '/v1/devices', undefined, b.secret)).status, 403, 'a device secret cannot use the admin API');
    t.equal((await relay.api('GET', '/v1/devices', undefined, null)).status, 401);
  });

  await t.test('enrollment tokens are single use and expire', async (t) => {
    const tok = JSON.parse((await relay.cli('tokens', 'enroll', '--json')).stdout) as { token: string };
    const enrollWith = (token: string) => relay.fetch(`${relay.httpUrl}/v1/enroll`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
    t.equal((await enrollWith(tok.token)).status, 201);
    const reused = await enrollWith(tok.token);
    t.equal(reused.status, 401);
    t.equal(((await reused.json()) as { error: { code: string } }).error.code, 'OUTPOST_ERR_ENROLL_TOKEN_INVALID');
    const short = await relay.api<{ token: string; expiresAt: string }>('POST', '/v1/tokens/enroll', { ttlSeconds: 0.001 });
    await waitFor('the token to expire', () => Date.now() > Date.parse(short.body.expiresAt));
    const expired = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', short.body.token, '--data-dir', join(relay.dataDir, 'x')]);
    t.equal(expired.code, 1);
    t.match(expired.stderr, /^error: OUTPOST_ERR_ENROLL_TOKEN_INVALID: /m);
    const removed = await relay.cli('devices', 'remove', m.deviceId);
    t.equal(removed.code, 0);
    await t.rejects(deviceClient(relay.mqttUrl, m), /Bad username or password/i, 'a removed device cannot connect');
  });

  t.ok(readFileSync(join(relay.dataDir, 'admin.token'), 'utf8').startsWith('opa_'));
});
