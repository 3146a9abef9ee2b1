// The broker forgets, and messages arrive out of order. A Mosquitto without persistence that
// restarts loses every retained desired state: the relay publishes them again when its
// connection is new, so an agent that starts afterwards still gets its model. A late will of
// an old connection cannot mark a reconnected device offline, and a heartbeat proves a device
// online.

import t from 'tap';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay } from '../helpers/programs.js';
import { startMosquitto, withAclFile } from '../helpers/mosquitto.js';
import { needPackage } from '../helpers/system-package.js';
import { waitFor } from '../helpers/wait.js';

interface DeviceView {
  online: boolean;
}

t.test('a broker without persistence restarts mid-fleet', { skip: needPackage('mosquitto', 'mosquitto') }, async (t) => {
  const broker = await startMosquitto(t, withAclFile);
  const relay = await startRelay(t, { extraArgs: ['--mqtt-url', broker.url.replace('mqtt://', 'mqtt://outpost-relay:unused@'), '--advertise-mqtt-url', broker.url] });
  const device = await enrollDevice(t, relay, 'edge');
  let agent = await startAgent(t, device);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  t.equal((await relay.cli('deploy', 'linear', '--device', device.deviceId, '--wait')).code, 0);

  const reconnects = () => relay.logs.filter((l) => l.msg === 'relay mqtt client reconnected: publishing every desired state and job again').length;
  await broker.restart();
  await waitFor('the relay to reconnect and publish again', () => reconnects() >= 1, 30_000);
  t.pass('the relay said it republished, in one line');
  // A fresh agent process knows nothing but what the broker gives it now.
  await agent.stop();
  agent = await startAgent(t, device);
  await waitFor('the restarted agent serving linear from the republished desired state', async () => (await fetch(`${agent.httpUrl}/v2/models/linear/ready`)).status === 200);
  t.pass('the agent converged after the broker lost its retained messages');
  await waitFor('the device online in the relay', async () => (await relay.api<DeviceView>('GET', `/v1/devices/${device.deviceId}`)).body.online || undefined);
  t.equal((await relay.cli('deploy', 'linear', '--device', device.deviceId, '--wait')).code, 0, 'deployments go on');

  // And restarted in the middle of a staged rollout: its health window waits for the device to
  // be back and heartbeating, then the rollout succeeds on the new version.
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear')).code, 0);
  const dep = await relay.cli('deploy', 'linear:2', '--device', device.deviceId, '--strategy', 'rolling', '--failure-threshold', '0', '--health-window', '2s', '--json');
  const id = (JSON.parse(dep.stdout) as { id: string }).id;
  const rollout = async () => (await relay.api<{ state: string; devices: Array<{ state: string }> }>('GET', `/v1/deployments/${id}`)).body;
  await waitFor('the device serving version 2 inside its health window', async () => (await rollout()).devices[0]?.state === 'serving');
  const before = reconnects();
  await broker.restart();
  await waitFor('the relay to reconnect again', () => reconnects() > before, 30_000);
  const done = await waitFor('the rollout to end', async () => {
    const d = await rollout();
    return d.state === 'in-progress' ? undefined : d;
  }, 60_000);
  t.equal(done.state, 'succeeded', 'the rollout went through the broker restart');
  const res = await agent.infer<{ model_version: string }>('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  t.equal(res.body.model_version, '2', 'the device serves version 2');
});

t.test('status messages out of order: sessions decide, heartbeats prove', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'edge');
  const topic = `outpost/v1/devices/${device.deviceId}/status`;
  const online = async () => (await relay.api<DeviceView>('GET', `/v1/devices/${device.deviceId}`)).body.online;
  const c = await mqtt.connectAsync(relay.mqttUrl, { ...relay.tls, clientId: device.deviceId, username: device.deviceId, password: device.secret, reconnectPeriod: 0 });
  t.teardown(() => c.endAsync());
  const say = (m: object) => c.publishAsync(topic, JSON.stringify({ ts: Date.now(), ...m }), { qos: 1, retain: true });
  await say({ online: true, session: 2000 });
  await waitFor('online', online);
  // The will of the connection before it, published late: it must not take the device offline.
  await say({ online: false, session: 1000 });
  // A message after it, so that once it has arrived the relay has handled the will.
  await say({ online: true, session: 2000 });
  await waitFor('both handled', () => relay.logs.filter((l) => l.deviceId === device.deviceId && l.msg === 'device online').length >= 2);
  t.equal(await online(), true, 'a late will of an old session is ignored');
  await say({ online: false, session: 2000 });
  await waitFor('offline', async () => !(await online()));
  t.pass('the end of the current session counts');
  const heartbeat = { ts: Date.now(), uptimeS: 1, cpuPercent: 1, memory: { rssBytes: 1, usedBytes: 1, totalBytes: 2 }, disk: { freeBytes: 1, totalBytes: 2 }, models: {} };
  await c.publishAsync(`outpost/v1/devices/${device.deviceId}/health`, JSON.stringify(heartbeat), { qos: 1 });
  await waitFor('online again by its heartbeat', online);
  t.ok(relay.logs.some((l) => l.deviceId === device.deviceId && l.msg === 'device online (its heartbeat arrived)'), 'and the log says why');
});
