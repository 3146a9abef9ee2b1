// An enrolled device that is broken or compromised, through MQTT: schema-valid but absurd
// heartbeats, topics it does not own, retained messages it may not keep, floods across
// reconnects, denied subscriptions by the thousand. The relay stays up, stores nothing
// impossible, tells of it once a minute, and the bystander keeps serving and reporting.

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

const heartbeat = (models: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ ts: Date.now(), uptimeS: 10, cpuPercent: 5, memory: { rssBytes: 1e8, usedBytes: 1e9, totalBytes: 4e9 }, disk: { freeBytes: 1e9, totalBytes: 2e9 }, models, ...extra });

interface DeviceView {
  online: boolean;
  health: { cpuPercent: number; memory: { rssBytes: number }; models: Record<string, { requests: number }> } | null;
}

t.test('a hostile device over MQTT', async (t) => {
  // A short cool-down would need a flag; the default 10 s is what a reconnecting flood meets.
  const { relay, agent } = await relayWithBystander(t);
  const mallory = await enrollDevice(t, relay, 'mallory');
  const prefix = `outpost/v1/devices/${mallory.deviceId}`;
  const view = async () => (await relay.api<DeviceView>('GET', `/v1/devices/${mallory.deviceId}`)).body;

  await t.test('absurd heartbeats are refused; counters near the largest double cannot crash the relay', async (t) => {
    const c = await connectAs(relay.mqttUrl, mallory);
    t.teardown(() => c.endAsync());
    const huge = { m: { requests: Number.MAX_VALUE, errors: Number.MAX_VALUE / 2, p50Ms: 1, p99Ms: 2 } };
    await c.publishAsync(`${prefix}/health`, heartbeat(huge), { qos: 1 });
    await c.publishAsync(`${prefix}/health`, heartbeat({ m: { requests: 0, errors: 0, p50Ms: 1e308, p99Ms: null } }), { qos: 1 });
    await c.publishAsync(`${prefix}/health`, heartbeat({}, { cpuPercent: 1e308 }), { qos: 1 });
    await c.publishAsync(`${prefix}/health`, heartbeat({}, { memory: { rssBytes: -1, usedBytes: 0, totalBytes: 0 } }), { qos: 1 });
    await c.publishAsync(`${prefix}/health`, heartbeat({}, { ts: 1e300 }), { qos: 1 });
    // JSON.parse makes Infinity of 1e400: TypeBox refuses non-finite numbers.
    await c.publishAsync(`${prefix}/health`, heartbeat({}).replace('"cpuPercent":5', '"cpuPercent":1e400'), { qos: 1 });
    // The largest counters that are valid, then a restart to 0, then the largest again: every rate stays finite.
    for (const n of [Number.MAX_SAFE_INTEGER, 0, Number.MAX_SAFE_INTEGER]) {
      await c.publishAsync(`${prefix}/health`, heartbeat({ m: { requests: n, errors: n, p50Ms: 86_400_000, p99Ms: 86_400_000 } }, { cpuPercent: 100 }), { qos: 1 });
    }
    await waitFor('the last valid heartbeat stored', async () => (await view()).health?.models.m?.requests === Number.MAX_SAFE_INTEGER);
    const d = await view();
    t.equal(d.health!.cpuPercent, 100, 'the stored heartbeat is the last valid one');
    t.ok(d.health!.memory.rssBytes >= 0);
    // The history is written by a timer once a second: it must have survived to write these.
    const history = await waitFor('the history with those samples', async () => {
      const res = await relay.api<{ points: Array<{ reqRate: number; cpu: number }> }>('GET', `/v1/devices/${mallory.deviceId}/health?range=1h`);
      return res.body.points.length >= 3 ? res.body.points : undefined;
    });
    t.ok(history.every((p) => Number.isFinite(p.reqRate) && p.cpu <= 100), 'every stored figure is finite and possible');
    await waitFor('the refusals in the log', () => relay.logs.some((l) => l.msg === 'device message dropped' && l.deviceId === mallory.deviceId));
    t.ok(relay.logs.filter((l) => l.msg === 'device message dropped' && l.deviceId === mallory.deviceId).length <= 2, 'six refused heartbeats cost one log line (a minute)');
  });

  await t.test('a device publishes only the topics it writes, and keeps only state retained', async (t) => {
    const c = await connectAs(relay.mqttUrl, mallory);
    // Its own desired state is the relay's to write.
    await c.publishAsync(`${prefix}/desired`, JSON.stringify({ revision: 99, models: [] }), { qos: 1, retain: true });
    // A heartbeat may not be retained: it is delivered, not kept.
    await c.publishAsync(`${prefix}/health`, heartbeat({}), { qos: 1, retain: true });
    // 600 retained messages of 200 KiB on topics of its own: none kept.
    for (let i = 0; i < 20; i++) await c.publishAsync(`${prefix}/junk${i}`, Buffer.alloc(200 * 1024, 0x20), { qos: 1, retain: true }).catch(() => {});
    // Its reported state is state: that one is kept.
    await c.publishAsync(`${prefix}/reported`, JSON.stringify({ revision: 1, models: [] }), { qos: 1, retain: true });
    await c.endAsync();
    const spy = await connectAs(relay.mqttUrl, mallory);
    t.teardown(() => spy.endAsync());
    const retained: string[] = [];
    const live: string[] = [];
    const payloads = new Map<string, string>();
    spy.on('message', (topic, payload, packet) => {
      if (!packet.retain) return live.push(topic);
      retained.push(topic);
      payloads.set(topic, payload.toString());
    });
    await spy.subscribeAsync(`${prefix}/#`, { qos: 1 });
    // A round trip on its own status proves every retained message has arrived before it.
    await spy.publishAsync(`${prefix}/status`, JSON.stringify({ online: true, ts: Date.now() }), { qos: 1, retain: true });
    await waitFor('its own status back', () => live.includes(`${prefix}/status`) || undefined);
    t.ok(retained.includes(`${prefix}/reported`), 'its reported state is retained');
    t.notOk(retained.some((topic) => /junk|health/.test(topic)), `only state topics are retained (${retained.join(', ')})`);
    t.notMatch(payloads.get(`${prefix}/desired`) ?? '', /"revision":99/, 'the device could not overwrite its desired state');
    t.ok((await relayMetric(relay, 'outpost_device_quota_events_total', 'quota="topic"')) >= 20, 'each refused topic is counted');
  });

  await t.test('a retained state over the per-device bytes is not kept', async (t) => {
    const c = await connectAs(relay.mqttUrl, mallory);
    t.teardown(() => c.endAsync());
    const before = await relayMetric(relay, 'outpost_device_quota_events_total', 'action="unretained"');
    await c.publishAsync(`${prefix}/jobs-reported`, JSON.stringify({ runs: [], pad: 'x'.repeat(200 * 1024) }), { qos: 1, retain: true });
    t.ok((await relayMetric(relay, 'outpost_device_quota_events_total', 'action="unretained"')) > before, '200 KiB over the 128 KiB quota is delivered but not retained');
  });

  await t.test('the rate limit holds across reconnects; the flooder is cut off and cools down', async (t) => {
    const inBefore = await relayMetric(relay, 'outpost_mqtt_messages_in_total');
    const started = Date.now();
    let rounds = 0;
    let refused = 0;
    while (rounds < 5) {
      let c: MqttClient;
      try {
        c = await connectAs(relay.mqttUrl, mallory);
      } catch {
        refused++;
        if (refused >= 1 && rounds >= 2) break;
        await new Promise((r) => setTimeout(r, 200)); // a reconnect loop, as a buggy agent would
        continue;
      }
      rounds++;
      const closed = new Promise<void>((r) => c.once('close', () => r()));
      for (let i = 0; i < 2000 && c.connected; i++) c.publish(`${prefix}/status`, '{"online":true,"ts":1}', { qos: 0 });
      await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
      c.end(true);
    }
    t.ok(refused >= 1, 'a reconnect during the cool-down is refused');
    const seconds = (Date.now() - started) / 1000;
    const got = (await relayMetric(relay, 'outpost_mqtt_messages_in_total')) - inBefore;
    // One burst plus the sustained rate over the whole time, across every reconnect (and the bystander's heartbeats).
    t.ok(got <= 200 + 20 * seconds + 10 * seconds, `${got} messages reached the relay in ${seconds.toFixed(1)} s over ${rounds} connections`);
    t.ok(relay.logs.filter((l) => l.msg === 'device disconnected: past its quota' && l.deviceId === mallory.deviceId && l.quota === 'rate').length <= 1, 'one log line a minute');
  });

  await t.test('thousands of denied subscriptions: one log line, then a disconnect', async (t) => {
    await waitFor('the cool-down to pass', async () => {
      try {
        const c = await connectAs(relay.mqttUrl, mallory);
        await c.endAsync();
        return true;
      } catch {
        return false;
      }
    }, 20_000, 500);
    const c = await connectAs(relay.mqttUrl, mallory);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    const linesBefore = relay.logs.length;
    for (let i = 0; i < 5000 && c.connected; i++) c.subscribe(`outpost/v1/devices/other${i}/#`, { qos: 0 }, () => {});
    await closed;
    c.end(true);
    t.pass('the subscriber was disconnected');
    const lines = relay.logs.slice(linesBefore).filter((l) => l.deviceId === mallory.deviceId);
    t.ok(lines.length <= 3, `${lines.length} log lines for the whole attack`);
  });

  await t.test('afterwards', async (t) => fleetStillWorks(t, relay, agent, 'linear', LINEAR_REQUEST));
});
