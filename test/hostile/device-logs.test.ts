// A compromised device and the logs channel, over raw MQTT with the device's own credentials:
// malformed, out-of-order, oversized and over-long answers cost only themselves; a silent
// device is a timeout; no device may ask for logs, its own or another's, or read another's.
// The relay stays up and the bystander keeps serving and reporting.

import t from 'tap';
import mqtt, { type MqttClient } from 'mqtt';
import { LINEAR_REQUEST, fleetStillWorks, relayMetric, relayWithBystander } from '../helpers/hostile.js';
import { trustFor } from '../helpers/trust.js';
import { enrollDevice, type Device } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';

function connectAs(url: string, d: Device): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { ...trustFor(url), clientId: d.deviceId, username: d.deviceId, password: d.secret, reconnectPeriod: 0, connectTimeout: 5000 });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

interface Request {
  requestId: string;
  after?: number;
  limit: number;
}

const line = (seq: number, msg: string, extra: Record<string, unknown> = {}) => ({ seq, ts: Date.now(), level: 'info', msg, ...extra });

t.test('a hostile device on the logs topics', async (t) => {
  const { relay, agent, device: bystander } = await relayWithBystander(t);
  const mallory = await enrollDevice(t, relay, 'mallory');
  const prefix = `outpost/v1/devices/${mallory.deviceId}`;
  const c = await connectAs(relay.mqttUrl, mallory);
  t.teardown(() => c.end(true));
  await c.publishAsync(`${prefix}/status`, JSON.stringify({ online: true, ts: Date.now(), session: Date.now() }), { qos: 1, retain: true });
  await waitFor('mallory online', async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${mallory.deviceId}`)).body.online);
  await c.subscribeAsync(`${prefix}/logs-request`, { qos: 1 });
  let answer: (request: Request) => Promise<void> = async () => {};
  c.on('message', (topic, payload) => {
    if (topic === `${prefix}/logs-request`) void answer(JSON.parse(payload.toString()) as Request);
  });
  const logs = `${prefix}/logs`;

  await t.test('bad answers are dropped one by one; the good one after them is taken', async (t) => {
    const rejected = await relayMetric(relay, 'outpost_mqtt_messages_rejected_total');
    answer = async (r) => {
      const part = (p: number, done: boolean, lines: unknown[]) => JSON.stringify({ requestId: r.requestId, part: p, done, lines });
      await c.publishAsync(logs, 'not json {', { qos: 1 });
      await c.publishAsync(logs, part(0, true, [line(5, 'loud', { level: 'loud' })]), { qos: 1 });
      await c.publishAsync(logs, part(0, true, [line(5, 'x'.repeat(3000))]), { qos: 1 });
      await c.publishAsync(logs, part(0, true, [line(5, 'fields', { fields: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'v'.repeat(500)])) })]), { qos: 1 });
      await c.publishAsync(logs, part(0, true, Array.from({ length: r.limit + 1 }, (_, i) => line(i + 1, 'more than asked'))), { qos: 1 });
      await c.publishAsync(logs, part(1, true, [line(5, 'part 1 first')]), { qos: 1 });
      await c.publishAsync(logs, part(0, true, [line(6, 'backwards'), line(5, 'backwards')]), { qos: 1 });
      await c.publishAsync(logs, JSON.stringify({ requestId: 'someone-elses', part: 0, done: true, lines: [] }), { qos: 1 });
      // An answer is not state: retained, it is delivered but not kept.
      await c.publishAsync(logs, part(0, false, [line(7, 'the real first line')]), { qos: 1, retain: true });
      await c.publishAsync(logs, part(1, true, [line(8, 'the real last line')]), { qos: 1 });
    };
    const res = await relay.cli('devices', 'logs', mallory.deviceId, '--json', '--lines', '3');
    t.equal(res.code, 0, res.stderr);
    t.same(res.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg), ['the real first line', 'the real last line'], 'only the valid parts, in order');
    await waitFor('the refusals counted', async () => (await relayMetric(relay, 'outpost_mqtt_messages_rejected_total')) >= rejected + 8);
    await waitFor('a refusal logged', () => relay.logs.some((l) => l.msg === 'device message dropped' && l.deviceId === mallory.deviceId && l.topic === logs));
    t.ok(relay.logs.filter((l) => l.msg === 'device message dropped' && l.topic === logs).length <= 1, 'eight refused parts cost one log line (a minute)');
  });

  await t.test('an answer over the packet limit: the device is disconnected, nobody else notices', async (t) => {
    const d = await connectAs(relay.mqttUrl, mallory);
    const closed = new Promise<void>((resolve) => d.once('close', () => resolve()));
    d.publish(logs, JSON.stringify({ requestId: 'x', part: 0, done: true, lines: [line(1, 'y'.repeat(300 * 1024))] }), { qos: 1 });
    await closed;
    d.end(true);
    await fleetStillWorks(t, relay, agent, 'linear', LINEAR_REQUEST);
  });

  await t.test('a device that never answers: a timeout, named as such', async (t) => {
    // The relay still believes mallory online (no will was set): it asks, nobody answers.
    const started = Date.now();
    const res = await relay.cli('devices', 'logs', mallory.deviceId);
    t.equal(res.code, 1);
    t.match(res.stderr, new RegExp(`^error: OUTPOST_ERR_DEVICE_TIMEOUT: device ${mallory.deviceId} did not answer within 10 s: .*journalctl -u outpost-agent or its stdout\\)\\n$`));
    t.ok(Date.now() - started >= 9000, 'after the 10 s it may take');
  });

  await t.test('no device may ask for logs, nor read another device\'s', async (t) => {
    const m = await connectAs(relay.mqttUrl, mallory);
    t.teardown(() => m.end(true));
    const bprefix = `outpost/v1/devices/${bystander.deviceId}`;
    await t.rejects(m.subscribeAsync(`${bprefix}/logs`, { qos: 1 }), /Unspecified error/, 'another device\'s answers are not for it');
    // Its own logs-request is the relay's to write: dropped at the broker, a strike (counted;
    // the log line is once a minute, and the denied subscription above had this minute's).
    const topicRefusals = await relayMetric(relay, 'outpost_device_quota_events_total', 'quota="topic"');
    await m.publishAsync(`${prefix}/logs-request`, JSON.stringify({ requestId: 'r', limit: 1 }), { qos: 1 });
    await waitFor('the topic refusal', async () => (await relayMetric(relay, 'outpost_device_quota_events_total', 'quota="topic"')) === topicRefusals + 1);
    t.ok(m.connected, 'a strike, not a disconnect');
    // Another device's: outside its prefix, so the broker drops it and closes the connection.
    const closed = new Promise<void>((resolve) => m.once('close', () => resolve()));
    m.publish(`${bprefix}/logs-request`, JSON.stringify({ requestId: 'evil', limit: 1000 }), { qos: 1 });
    await closed;
    await fleetStillWorks(t, relay, agent, 'linear', LINEAR_REQUEST);
    t.notOk(relay.logs.some((l) => l.deviceId === bystander.deviceId && l.topic === `${bprefix}/logs`), 'the bystander was never asked, so it never answered');
    const own = await relay.cli('devices', 'logs', bystander.deviceId, '--lines', '5');
    t.equal(own.code, 0, 'the bystander\'s logs still come when the relay asks');
    t.match(own.stdout, /INFO {2}/);
  });
});
