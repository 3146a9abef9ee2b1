// The MQTT contract on a broker that is not ours: the relay started with --mqtt-url against a
// real Mosquitto, agents enrolled to it, a deployment served end to end, heartbeats back, and
// Mosquitto's pattern ACL (docs/architecture.md) keeping each device to its own topics.

import t, { type Test } from 'tap';
import mqtt, { type MqttClient } from 'mqtt';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, closedPort, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

if (spawnSync('mosquitto', ['-h']).error) throw new Error('this test needs Mosquitto: apt-get install -y mosquitto');

/** Starts Mosquitto on a free loopback port with the ACL the docs give; resolves with its URL. */
async function startMosquitto(t: Test): Promise<string> {
  const dir = tempDir(t, 'mosquitto');
  chmodSync(dir, 0o755); // started as root, Mosquitto drops to its own user before reading the ACL
  const port = await closedPort();
  writeFileSync(join(dir, 'acl'), ['user outpost-relay', 'topic readwrite outpost/#', '', 'pattern readwrite outpost/v1/devices/%u/#', ''].join('\n'));
  writeFileSync(join(dir, 'mosquitto.conf'), [`listener ${port} 127.0.0.1`, 'allow_anonymous true', `acl_file ${join(dir, 'acl')}`, 'persistence false', 'log_dest stderr', ''].join('\n'));
  const proc = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exited = new Promise((r) => proc.once('exit', r));
  t.teardown(async () => {
    proc.kill('SIGTERM');
    await exited;
  });
  let gone = false;
  void exited.then(() => (gone = true));
  await waitFor(`Mosquitto listening on ${port}`, () => {
    if (gone) throw new Error(`Mosquitto exited: ${log}`);
    return /mosquitto version \S+ running/.test(log) ? true : undefined;
  }, 10_000);
  return `mqtt://127.0.0.1:${port}`;
}

t.test('relay and agents over an external Mosquitto broker', async (t) => {
  const broker = await startMosquitto(t);
  const relay = await startRelay(t, { extraArgs: ['--mqtt-url', broker.replace('mqtt://', 'mqtt://outpost-relay:unused@'), '--advertise-mqtt-url', broker] });
  t.equal(relay.mqttUrl, broker, 'the relay talks to the external broker');
  const a = await enrollDevice(t, relay, 'ext-a');
  const b = await enrollDevice(t, relay, 'ext-b');
  t.equal(a.mqttUrl, broker, 'enrolled devices are told the broker to use');
  const agentA = await startAgent(t, a);
  await startAgent(t, b);
  await waitFor('both devices online', async () => {
    const res = await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices');
    return res.body.devices.length === 2 && res.body.devices.every((d) => d.online) ? true : undefined;
  });

  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const deploy = await relay.cli('deploy', 'linear', '--device', a.deviceId, '--device', b.deviceId, '--wait');
  t.equal(deploy.code, 0, deploy.stderr);
  const res = await agentA.infer<{ outputs: Array<{ shape: number[] }> }>('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  t.equal(res.status, 200);
  t.same(res.body.outputs[0]!.shape, [1, 3]);
  await waitFor('a heartbeat through the broker', async () => {
    const d = await relay.api<{ health: unknown }>('GET', `/v1/devices/${a.deviceId}`);
    return d.body.health ? true : undefined;
  });

  await t.test("the broker's ACL keeps a device to its own topics", async (t) => {
    const client = await new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(broker, { clientId: `${b.deviceId}-probe`, username: b.deviceId, password: b.secret, reconnectPeriod: 0 });
      c.once('connect', () => resolve(c));
      c.once('error', reject);
    });
    t.teardown(() => client.endAsync());
    const seen: string[] = [];
    client.on('message', (topic) => seen.push(topic));
    // Retained messages come back in the order of the subscription: A's first, if it were allowed.
    await client.subscribeAsync([`outpost/v1/devices/${a.deviceId}/desired`, `outpost/v1/devices/${b.deviceId}/desired`], { qos: 1 });
    await waitFor("the device's own desired state", () => (seen.length > 0 ? true : undefined));
    t.same(seen, [`outpost/v1/devices/${b.deviceId}/desired`], "device B never sees device A's desired state");
  });
});
