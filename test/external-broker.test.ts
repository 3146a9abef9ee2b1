// The MQTT contract on a broker that is not ours: the relay started with --mqtt-url against a
// real Mosquitto, agents enrolled to it, a deployment served end to end, heartbeats back, and
// each device kept to its own topics: by Mosquitto's pattern ACL (docs/architecture.md), or by
// the accounts the relay keeps in Mosquitto's dynamic security plugin (--mosquitto-dynsec).

import t, { type Test } from 'tap';
import mqtt, { type MqttClient } from 'mqtt';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tlsConnectOptions, type TlsClientOptions } from '@outpost/shared';
import { join } from 'node:path';
import { FIXTURES, RELAY_BIN, enrollDevice, runCli, startAgent, startRelay, tempDir, type Device, type TestRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { needPackage } from './helpers/system-package.js';
import { startMosquitto, withAclFile } from './helpers/mosquitto.js';

const skip = needPackage('mosquitto', 'mosquitto');
const DYNSEC_PLUGIN = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].map((d) => join(d, 'mosquitto_dynamic_security.so'));

/** Connects as a device; rejects with the broker's refusal. */
function connectAs(broker: string, clientId: string, username: string | undefined, password: string | undefined, tls: TlsClientOptions = {}): Promise<MqttClient> {
  return new Promise<MqttClient>((resolve, reject) => {
    const c = mqtt.connect(broker, { clientId, username, password, reconnectPeriod: 0, connectTimeout: 5000, ...tls });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
    c.once('close', () => reject(new Error('connection closed')));
  });
}

const probeId = (username: string | undefined) => `${username ?? 'anon'}-probe-${Math.random().toString(16).slice(2, 6)}`;

/**
 * Subscribes to another device's retained desired state and to a retained topic of the client's
 * own, in that order: retained messages come back in the order of the subscription, so once its
 * own has arrived the other would have too, were it allowed. (Mosquitto's ACL file grants every
 * SUBSCRIBE and filters what it delivers; dynamic security refuses in the SUBACK.)
 */
async function assertOnlyOwnArrives(t: Test, client: MqttClient, foreign: string, own: string): Promise<void> {
  const seen: string[] = [];
  client.on('message', (topic) => seen.push(topic));
  await client.subscribeAsync([foreign, own], { qos: 1 }).catch(() => undefined);
  await waitFor('the retained message on its own topic', () => (seen.length > 0 ? true : undefined));
  t.same(seen, [own], `${foreign} never arrives`);
}

/** Device B subscribes to A's desired state and its own: only its own arrives. */
async function assertOwnTopicsOnly(t: Test, broker: string, a: Device, b: Device): Promise<void> {
  const client = await connectAs(broker, probeId(b.deviceId), b.deviceId, b.secret);
  t.teardown(() => client.endAsync());
  await assertOnlyOwnArrives(t, client, `outpost/v1/devices/${a.deviceId}/desired`, `outpost/v1/devices/${b.deviceId}/desired`);
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

/** Mosquitto's dynamic security plugin: Debian's mosquitto package ships it. */
const dynsecPlugin = () => DYNSEC_PLUGIN.find((p) => spawnSync('test', ['-f', p]).status === 0);
const needDynsec = () => (dynsecPlugin() ? false : "Mosquitto's dynamic security plugin is missing (Debian's mosquitto package ships it)");

t.test('--mosquitto-dynsec: the relay keeps device accounts in Mosquitto', { skip: skip || needDynsec() }, async (t) => {
  const plugin = dynsecPlugin()!;
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
    await t.rejects(connectAs(broker, probeId(a.deviceId), a.deviceId, `${a.secret}x`), /Not authorized/);
    await t.rejects(connectAs(broker, probeId(undefined), undefined, undefined), /Not authorized/);
    await t.rejects(connectAs(broker, probeId('dev_000000000000'), 'dev_000000000000', a.secret), /Not authorized/, "another device's secret under an unknown id");
  });

  await t.test('each device reaches only its own topics', (t) => assertOwnTopicsOnly(t, broker, a, b));

  await t.test('a removed device loses its account at once', async (t) => {
    const removed = await relay.cli('devices', 'remove', b.deviceId);
    t.equal(removed.code, 0, removed.stderr);
    await t.rejects(connectAs(broker, probeId(b.deviceId), b.deviceId, b.secret), /Not authorized/);
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

/** Connects with a certificate (or none) to a Mosquitto over mutual TLS; rejects with the refusal. */
function connectWithCert(broker: string, tls: { ca: string; cert?: string; key?: string }, clientId = `probe-${Math.random().toString(16).slice(2, 6)}`): Promise<MqttClient> {
  return connectAs(broker, clientId, undefined, undefined, tlsConnectOptions({ ...tls, systemRoots: false }));
}

/** Subscribes and reports the granted QoS of each filter (128: refused by the broker). */
async function grantedQos(client: MqttClient, filters: string[]): Promise<number[]> {
  // MQTT.js rejects when any filter was refused, with the SUBACK on the error.
  const granted = await client.subscribeAsync(filters, { qos: 1 }).then(
    (g) => g.map((x) => x.qos as number),
    (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
  );
  if (!granted) throw new Error('no SUBACK');
  return granted;
}

/** Mosquitto's listener over mutual TLS, as the README gives it: the relay CA for clients. */
const mutualTls = (files: { ca: string; cert: string; key: string }) => [
  `cafile ${files.ca}`,
  `certfile ${files.cert}`,
  `keyfile ${files.key}`,
  'require_certificate true',
  'use_identity_as_username true',
  'use_username_as_clientid true',
  'allow_anonymous false',
  // The key is 0600 and the test's: Mosquitto must not drop to its own user to read it.
  'user root',
];

t.test('Mosquitto over mutual TLS: the relay CA issues its certificate, devices and the relay show theirs', { skip: skip || needDynsec() }, async (t) => {
  const dataDir = tempDir(t, 'relay');
  const out = tempDir(t, 'broker-tls');
  const issued = await runCli(RELAY_BIN, ['ca', 'issue', '--data-dir', dataDir, '--server', '127.0.0.1', '--out', out, '--json']);
  t.equal(issued.code, 0, issued.stderr);
  const files = JSON.parse(issued.stdout) as { ca: string; cert: string; key: string; expiresAt: string };
  t.equal(statSync(files.key).mode & 0o777, 0o600, "the broker's key is private");
  t.ok(new X509Certificate(readFileSync(files.cert)).checkIP('127.0.0.1'), 'the server certificate names the address given');
  const mosquitto = await startMosquitto(t, (dir) => {
    execFileSync('mosquitto_ctrl', ['dynsec', 'init', join(dir, 'dynsec.json'), 'admin', 'admin-pass'], { stdio: 'ignore' });
    return [...mutualTls(files), `plugin ${dynsecPlugin()}`, `plugin_opt_config_file ${join(dir, 'dynsec.json')}`];
  });
  const broker = mosquitto.url.replace('mqtt://', 'mqtts://');
  // No password: the relay shows a certificate from its CA for "admin" (and for its own client).
  const relay = await startRelay(t, { dataDir, extraArgs: ['--mqtt-url', broker.replace('mqtts://', 'mqtts://admin@'), '--mosquitto-dynsec', '--advertise-mqtt-url', broker] });
  const { a, b, infer } = await twoServingDevices(t, relay);
  t.equal(a.mqttUrl, broker);
  t.equal((await infer()).status, 200, 'a deployment through Mosquitto over mutual TLS');
  const ca = relay.ca!;

  await t.test('no certificate, or one from another CA, is refused in the handshake', async (t) => {
    await t.rejects(connectWithCert(broker, { ca }), /certificate required|alert/i);
    const x509 = await import('@outpost/shared/x509');
    const otherKeys = await x509.newKeyPair();
    const other = await x509.makeCa(otherKeys, 'not the relay', 86_400_000);
    const keys = await x509.newKeyPair();
    const forged = await x509.makeClientCert({ certPem: other.pem, keys: otherKeys }, keys, a.deviceId, 86_400_000);
    await t.rejects(connectWithCert(broker, { ca, cert: forged.pem, key: keys.privateKeyPem }), /unknown ca|alert|closed/i, "a certificate naming A from another CA");
  });

  await t.test("a device's certificate reaches only its own topics, whatever client id it asks for", async (t) => {
    const client = await connectWithCert(broker, { ca, ...b.tls! }, a.deviceId);
    t.teardown(() => client.endAsync());
    t.same(await grantedQos(client, [`outpost/v1/devices/${a.deviceId}/desired`, `outpost/v1/devices/${b.deviceId}/desired`]), [128, 1], "B's certificate is refused A's topic, given its own");
    await assertOnlyOwnArrives(t, client, `outpost/v1/devices/${a.deviceId}/desired`, `outpost/v1/devices/${b.deviceId}/desired`);
    t.equal((await infer()).status, 200, 'A was not pushed off by a client asking for its id');
    const desired = await relay.api<{ devices: Array<{ id: string; online: boolean }> }>('GET', '/v1/devices');
    t.ok(desired.body.devices.find((d) => d.id === a.deviceId)?.online, 'A stays online');
  });

  await t.test('a removed device loses its topics at once', async (t) => {
    const removed = await relay.cli('devices', 'remove', b.deviceId);
    t.equal(removed.code, 0, removed.stderr);
    // Mosquitto takes the user from the certificate, so it still connects until the
    // certificate ends; with its dynamic-security client gone it may touch nothing.
    const client = await connectWithCert(broker, { ca, ...b.tls! });
    t.teardown(() => client.endAsync());
    t.same(await grantedQos(client, [`outpost/v1/devices/${b.deviceId}/desired`]), [128]);
    t.equal((await infer()).status, 200, 'the other device serves on');
  });
});

t.test('--mqtt-ca: a broker whose certificate comes from its own CA, devices told to trust it', { skip: skip || needPackage('openssl', 'openssl') }, async (t) => {
  const dataDir = tempDir(t, 'relay');
  const dir = tempDir(t, 'broker-ca');
  // The broker's own CA and server certificate, as a site's PKI would make them.
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'site-ca.key', '-out', 'site-ca.crt', '-subj', '/CN=site CA', '-days', '2');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=broker');
  writeFileSync(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'site-ca.crt', '-CAkey', 'site-ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext', '-out', 'server.crt');
  // Clients still prove who they are with the relay's CA, made here before the broker starts
  // (with a certificate for a user that is not a device, tried below).
  t.equal((await runCli(RELAY_BIN, ['ca', 'issue', '--data-dir', dataDir, '--client', 'probe', '--out', join(dir, 'relay')])).code, 0);
  const mosquitto = await startMosquitto(t, (mdir) => [
    ...withAclFile(mdir).filter((l) => !l.startsWith('allow_anonymous')),
    ...mutualTls({ ca: join(dir, 'relay/ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') }),
  ]);
  const broker = mosquitto.url.replace('mqtt://', 'mqtts://');

  const refused = await runCli(RELAY_BIN, ['start', '--data-dir', tempDir(t, 'other'), '--host', '127.0.0.1', '--http-port', '0', '--mqtt-url', broker]);
  t.equal(refused.code, 1, "without --mqtt-ca the relay does not trust the broker's certificate");
  t.match(refused.stderr, /cannot connect to the MQTT broker at mqtts:\/\/127\.0\.0\.1:\d+: .*(self-signed|unable to|issuer).*: .*trust its CA with --mqtt-ca FILE/i);

  const relay = await startRelay(t, { dataDir, extraArgs: ['--mqtt-url', broker, '--mqtt-ca', join(dir, 'site-ca.crt'), '--advertise-mqtt-url', broker] });
  const a = await enrollDevice(t, relay, 'dev-a');
  t.equal(readFileSync(join(a.dataDir, 'mqtt-ca.crt'), 'utf8'), readFileSync(join(dir, 'site-ca.crt'), 'utf8'), "the device keeps the broker's CA from enrollment");
  const agent = await startAgent(t, a);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const deploy = await relay.cli('deploy', 'linear', '--device', a.deviceId, '--wait');
  t.equal(deploy.code, 0, deploy.stderr);
  const res = await agent.infer('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  t.equal(res.status, 200, 'deployed over the broker the device trusts by --mqtt-ca');

  const siteCa = readFileSync(join(dir, 'site-ca.crt'), 'utf8');
  const stranger = await connectWithCert(broker, { ca: siteCa, cert: readFileSync(join(dir, 'relay/probe.crt'), 'utf8'), key: readFileSync(join(dir, 'relay/probe.key'), 'utf8') });
  t.teardown(() => stranger.endAsync());
  // Its own prefix (the pattern ACL on %u) is the one it may use.
  await stranger.publishAsync('outpost/v1/devices/probe/desired', '{}', { qos: 1, retain: true });
  await assertOnlyOwnArrives(t, stranger, `outpost/v1/devices/${a.deviceId}/desired`, 'outpost/v1/devices/probe/desired');
});

t.test('--mosquitto-dynsec without --mqtt-url is a usage error', async (t) => {
  const res = await runCli(RELAY_BIN, ['start', '--mosquitto-dynsec', '--data-dir', tempDir(t, 'relay'), '--http-port', '0', '--mqtt-port', '0', '--host', '127.0.0.1']);
  t.equal(res.code, 1);
  t.match(res.stderr, /--mosquitto-dynsec needs --mqtt-url/);
});
