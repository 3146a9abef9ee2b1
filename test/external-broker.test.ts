// The MQTT contract on a broker that is not ours: the relay started with --mqtt-url against a
// real Mosquitto, agents enrolled to it, a deployment served end to end, heartbeats back, and
// each device kept to its own topics: by Mosquitto's pattern ACL (docs/architecture.md), or by
// the accounts the relay keeps in Mosquitto's dynamic security plugin (--mosquitto-dynsec).

import t, { type Test } from 'tap';
import mqtt, { type MqttClient } from 'mqtt';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, RELAY_BIN, enrollDevice, runCli, startAgent, startRelay, tempDir, type Device, type TestRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { needPackage } from './helpers/system-package.js';
import { startMosquitto, withAclFile } from './helpers/mosquitto.js';

const skip = needPackage('mosquitto', 'mosquitto');
const DYNSEC_PLUGIN = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].map((d) => join(d, 'mosquitto_dynamic_security.so'));

/** Connects as a device; rejects with the broker's refusal. */
function connectAs(broker: string, username: string | undefined, password: string | undefined): Promise<MqttClient> {
  return new Promise<MqttClient>((resolve, reject) => {
    const c = mqtt.connect(broker, { clientId: `${username ?? 'anon'}-probe-${Math.random().toString(16).slice(2, 6)}`, username, password, reconnectPeriod: 0 });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

/** Device B subscribes to A's desired state and its own: only its own arrives. */
async function assertOwnTopicsOnly(t: Test, broker: string, a: Device, b: Device): Promise<void> {
  const client = await connectAs(broker, b.deviceId, b.secret);
  t.teardown(() => client.endAsync());
  const seen: string[] = [];
  client.on('message', (topic) => seen.push(topic));
  // Retained messages come back in the order of the subscription: A's first, if it were allowed.
  await client.subscribeAsync([`outpost/v1/devices/${a.deviceId}/desired`, `outpost/v1/devices/${b.deviceId}/desired`], { qos: 1 }).catch(() => undefined);
  await waitFor("the device's own desired state", () => (seen.length > 0 ? true : undefined));
  t.same(seen, [`outpost/v1/devices/${b.deviceId}/desired`], "device B never sees device A's desired state");
}

/** Two enrolled devices with running agents, both online, both serving `linear`. */
async function twoServingDevices(t: Test, relay: TestRelay) {
  const a = await enrollDevice(t, relay, 'dev-a');
  const b = await enrollDevice(t, relay, 'dev-b');
  const agentA = await startAgent(t, a);
  await startAgent(t, b);
  await waitFor('both devices online', async () => {
    const res = await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices');
    return res.body.devices.length === 2 && res.body.devices.every((d) => d.online) ? true : undefined;
  });
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const deploy = await relay.cli('deploy', 'linear', '--device', a.deviceId, '--device', b.deviceId, '--wait');
  t.equal(deploy.code, 0, deploy.stderr);
  const infer = () => agentA.infer<{ outputs: Array<{ shape: number[] }> }>('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  return { a, b, infer };
}

t.test('relay and agents over an external Mosquitto broker', { skip }, async (t) => {
  const broker = (await startMosquitto(t, withAclFile)).url;
  const relay = await startRelay(t, { extraArgs: ['--mqtt-url', broker.replace('mqtt://', 'mqtt://outpost-relay:unused@'), '--advertise-mqtt-url', broker] });
  t.equal(relay.mqttUrl, broker, 'the relay talks to the external broker');
  const { a, b, infer } = await twoServingDevices(t, relay);
  t.equal(a.mqttUrl, broker, 'enrolled devices are told the broker to use');
  const res = await infer();
  t.equal(res.status, 200);
  t.same(res.body.outputs[0]!.shape, [1, 3]);
  await waitFor('a heartbeat through the broker', async () => {
    const d = await relay.api<{ health: unknown }>('GET', `/v1/devices/${a.deviceId}`);
    return d.body.health ? true : undefined;
  });
  const logs = await relay.cli('devices', 'logs', a.deviceId);
  t.equal(logs.code, 0, logs.stderr);
  t.match(logs.stdout, /INFO {2}model serving model=linear version=1/, "the agent's log lines come through the broker too");

  await t.test("the broker's ACL keeps a device to its own topics", (t) => assertOwnTopicsOnly(t, broker, a, b));
});

t.test('--mosquitto-dynsec: the relay keeps device accounts in Mosquitto', { skip }, async (t) => {
  const plugin = DYNSEC_PLUGIN.find((p) => spawnSync('test', ['-f', p]).status === 0);
  if (!plugin) throw new Error("this test needs Mosquitto's dynamic security plugin (Debian's mosquitto package ships it)");
  const broker = await startMosquitto(t, (dir) => {
    // The plugin's own bootstrap: an admin client; the relay sets up everything else itself.
    execFileSync('mosquitto_ctrl', ['dynsec', 'init', join(dir, 'dynsec.json'), 'admin', 'admin-pass'], { stdio: 'ignore' });
    // Mosquitto must write the file as it changes; root keeps the test's temp folder usable.
    return ['allow_anonymous false', 'user root', `plugin ${plugin}`, `plugin_opt_config_file ${join(dir, 'dynsec.json')}`];
  }).then((m) => m.url);
  const wrong = await runCli(RELAY_BIN, ['start', '--data-dir', tempDir(t, 'relay'), '--host', '127.0.0.1', '--http-port', '0', '--mqtt-url', broker.replace('mqtt://', 'mqtt://admin:wrong@'), '--mosquitto-dynsec']);
  t.equal(wrong.code, 1, 'a wrong admin password stops the relay at start');
  t.match(wrong.stderr, /cannot connect to Mosquitto at mqtt:\/\/127\.0\.0\.1:\d+ as "admin" \(the plugin's admin\): .*Not authorized/);
  t.notMatch(wrong.stderr, /wrong/, 'the password is not echoed');
  const relay = await startRelay(t, { extraArgs: ['--mqtt-url', broker.replace('mqtt://', 'mqtt://admin:admin-pass@'), '--mosquitto-dynsec', '--advertise-mqtt-url', broker] });
  const { a, b, infer } = await twoServingDevices(t, relay);
  t.equal((await infer()).status, 200, 'a deployment over the accounts the relay made');

  await t.test('a wrong secret and no credentials are refused', async (t) => {
    await t.rejects(connectAs(broker, a.deviceId, `${a.secret}x`), /Not authorized/);
    await t.rejects(connectAs(broker, undefined, undefined), /Not authorized/);
    await t.rejects(connectAs(broker, 'dev_000000000000', a.secret), /Not authorized/, "another device's secret under an unknown id");
  });

  await t.test('each device reaches only its own topics', (t) => assertOwnTopicsOnly(t, broker, a, b));

  await t.test('a removed device loses its account at once', async (t) => {
    const removed = await relay.cli('devices', 'remove', b.deviceId);
    t.equal(removed.code, 0, removed.stderr);
    await t.rejects(connectAs(broker, b.deviceId, b.secret), /Not authorized/);
    const connected = () => (JSON.parse(readFileSync(join(b.dataDir, 'agent-state.json'), 'utf8')) as { connected: boolean }).connected;
    await waitFor('the removed agent to lose its connection', () => (connected() ? undefined : true));
    t.equal((await infer()).status, 200, 'the other device serves on');
  });

  await t.test('a restarted relay names the devices that have no Mosquitto account', async (t) => {
    await relay.stop();
    // As if A had been enrolled before --mosquitto-dynsec was turned on.
    const port = new URL(broker).port;
    execFileSync('mosquitto_ctrl', ['-h', '127.0.0.1', '-p', port, '-u', 'admin', '-P', 'admin-pass', 'dynsec', 'deleteClient', a.deviceId], { stdio: 'ignore' });
    // Ready means its own client connected again, with the new password it set for itself.
    const again = await startRelay(t, { dataDir: relay.dataDir, extraArgs: ['--mqtt-url', broker.replace('mqtt://', 'mqtt://admin:admin-pass@'), '--mosquitto-dynsec'] });
    const warning = again.logs.find((l) => Array.isArray(l.devices));
    t.same(warning?.devices, [a.deviceId]);
    t.match(warning?.msg, /no Mosquitto account.*enroll them again/);
  });
});

t.test('--mosquitto-dynsec without --mqtt-url is a usage error', async (t) => {
  const res = await runCli(RELAY_BIN, ['start', '--mosquitto-dynsec', '--data-dir', tempDir(t, 'relay'), '--http-port', '0', '--mqtt-port', '0', '--host', '127.0.0.1']);
  t.equal(res.code, 1);
  t.match(res.stderr, /--mosquitto-dynsec needs --mqtt-url/);
});
