// Device traffic on a 3-node NATS cluster (Debian's nats-server, configured by `outpost-relay
// broker nats-config`): the relay speaks NATS, agents MQTT to different nodes. A deployment
// reaches devices on every node; NATS itself keeps each device to its own subjects (its user
// JWT), refuses the JWT outside MQTT, and drops a removed device at once; a node killed with
// SIGKILL mid-rollout costs nothing (its devices fail over to another node and converge); and a
// cluster whose MQTT streams were deleted still brings devices to the right version, through
// the desired state they read over HTTPS.

import t from 'tap';
import mqtt from 'mqtt';
import { connect as tcpConnect } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as natsConnect, credsAuthenticator } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { FIXTURES, RELAY_BIN, enrollDevice, runCli, startAgent, startRelay, tempDir, type Device, type TestAgent } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';
import { needPackage } from '../helpers/system-package.js';
import { startNatsCluster, waitServing } from '../helpers/nats.js';

const skip = needPackage('nats-server', 'nats-server');

/** Points the device's agent at these nodes, in this order (the first is where it connects). */
function useNodes(device: Device, urls: string[]): void {
  const file = join(device.dataDir, 'device.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), mqttUrl: urls[0], mqttUrls: urls }), { mode: 0o600 });
}
const devicePassword = (device: Device) => (JSON.parse(readFileSync(join(device.dataDir, 'device.json'), 'utf8')) as { mqttPassword: string }).mqttPassword;

async function serves(agent: TestAgent, version: number): Promise<true | undefined> {
  const res = await fetch(`${agent.httpUrl}/v2/models/linear`).catch(() => undefined);
  if (res?.status !== 200) return undefined;
  return (await res.json() as { versions: string[] }).versions.includes(String(version)) || undefined;
}

/** The broker node the agent connected to last. */
const connectedTo = (agent: TestAgent) => agent.logs.filter((l) => l.msg === 'connected to the relay broker').at(-1)?.url;

/** What a NATS server answers a CONNECT with this user JWT over its own protocol (not MQTT). */
function natsConnectAnswer(url: string, jwt: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tcpConnect(Number(port), hostname);
    let text = '';
    let sent = false;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
      if (!sent && text.includes('\r\n')) {
        sent = true;
        s.write(`CONNECT ${JSON.stringify({ jwt, verbose: false, pedantic: false, protocol: 1 })}\r\nPING\r\n`);
      }
      if (/-ERR|PONG/.test(text.split('\r\n').slice(1).join('\n'))) {
        s.destroy();
        resolve(text.split('\r\n').slice(1).join(' ').trim());
      }
    });
    s.once('error', reject);
    s.setTimeout(10_000, () => reject(new Error(`no answer from ${url}: ${text}`)));
  });
}

t.test('a 3-node NATS cluster carries the fleet, MQTT over TLS', { skip }, async (t) => {
  // The nodes serve MQTT with a certificate from the relay's CA, made before the relay starts.
  const relayDir = tempDir(t, 'relay');
  const certs = tempDir(t, 'nats-certs');
  const issued = await runCli(RELAY_BIN, ['ca', 'issue', '--server', '127.0.0.1', '--out', certs, '--data-dir', relayDir]);
  t.equal(issued.code, 0, issued.stderr);
  const cluster = await startNatsCluster(t, 3, { mqttTls: { cert: join(certs, 'server.crt'), key: join(certs, 'server.key') } });
  const [n1, n2, n3] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
  // A short silence window, for the node-death case below (agents beat every second here).
  const relay = await startRelay(t, { dataDir: relayDir, extraArgs: [...cluster.relayArgs, '--device-silence', '5s'] });
  t.match(cluster.nodes[0]!.mqttUrl, /^mqtts:/);
  const mqttAs = (url: string, opts: mqtt.IClientOptions) => mqtt.connect(url, { ...relay.tls, reconnectPeriod: 0, ...opts });
  const a = await enrollDevice(t, relay, 'alpha', 'site=lab');
  const b = await enrollDevice(t, relay, 'beta', 'site=lab');
  t.match(devicePassword(a), /^eyJ/, 'enrollment hands the device a NATS user JWT');
  const given = [a, b].map((d) => (JSON.parse(readFileSync(join(d.dataDir, 'device.json'), 'utf8')) as { mqttUrls: string[] }).mqttUrls);
  for (const urls of given) t.same([...urls].sort(), cluster.nodes.map((n) => n.mqttUrl).sort(), 'and every node to fail over through (in an order of its own, so a fleet spreads)');
  useNodes(a, [n1.mqttUrl, n2.mqttUrl, n3.mqttUrl]);
  useNodes(b, [n2.mqttUrl, n3.mqttUrl, n1.mqttUrl]);
  // A new cluster refuses MQTT logins while it makes the account's MQTT streams (over 30 s on a
  // loaded machine): an agent refused by its first node goes to its next, and the two would
  // share one. Every node takes a login first.
  for (const [i, node] of cluster.nodes.entries()) {
    await waitFor(`node ${i + 1} takes MQTT logins`, () =>
      new Promise<true | undefined>((resolve) => {
        const c = mqttAs(node.mqttUrl, { clientId: `${a.deviceId}-ready`, username: a.deviceId, password: devicePassword(a), connectTimeout: 5_000 });
        c.once('connect', () => (c.end(true), resolve(true)));
        c.once('error', () => (c.end(true), resolve(undefined)));
        c.once('close', () => resolve(undefined));
      }), 90_000, 500);
  }
  const agentA = await startAgent(t, a);
  const agentB = await startAgent(t, b);
  const onlineBoth = async () => {
    const { body } = await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices');
    return body.devices.filter((d) => d.online).length === 2 || undefined;
  };
  await waitFor('both devices online through NATS', onlineBoth, 60_000);
  // Each tries its first node first; on a new cluster a first connect may be refused while the
  // account's MQTT streams are made, and then it is on its next node: still apart.
  t.ok(connectedTo(agentA) && connectedTo(agentB) && connectedTo(agentA) !== connectedTo(agentB), `alpha and beta are on different nodes (${connectedTo(agentA)}, ${connectedTo(agentB)})`);
  // Nodes up for the subtests after the one that kills alpha's node.
  let [x, y] = [n2, n3];

  await t.test('a deployment reaches devices on different nodes', async (t) => {
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
    const res = await relay.cli('deploy', 'linear:1', '--selector', 'site=lab', '--wait');
    t.equal(res.code, 0, res.stderr);
    await waitFor('both serve linear:1', async () => ((await serves(agentA, 1)) && (await serves(agentB, 1))) || undefined);
    const metrics = await (await relay.fetch(`${relay.httpUrl}/metrics`, { headers: { authorization: `Bearer ${relay.token}` } })).text();
    t.ok(Number(/^outpost_mqtt_messages_out_total (\d+)/m.exec(metrics)?.[1]) > 0, 'what the relay published over NATS is counted');
    t.ok(relay.logs.some((l) => l.msg === 'asked every device to report again'), 'taking the lead on NATS, the relay asked devices to report again');
  });

  await t.test("NATS keeps a device to its own subjects, and its JWT to MQTT", async (t) => {
    const spy = mqttAs(n3.mqttUrl, { clientId: `${a.deviceId}-probe`, username: a.deviceId, password: devicePassword(a), reconnectPeriod: 0 });
    await new Promise((resolve, reject) => (spy.once('connect', resolve), spy.once('error', reject)));
    t.teardown(() => spy.end(true));
    // MQTT.js rejects a SUBSCRIBE the broker refused, with the SUBACK's return codes.
    const grantedFor = (filter: string) => spy.subscribeAsync(filter, { qos: 1 }).then((x) => x.map((y) => y.qos)).catch((err: { packet?: { granted?: number[] } }) => err.packet?.granted);
    t.same(await grantedFor(`outpost/v1/devices/${b.deviceId}/#`), [128], "another device's subjects: refused in the SUBACK");
    for (const filter of ['#', 'outpost/#', '$MQTT/sub/#']) t.same(await grantedFor(filter), [128], `${filter}: refused`);
    // A forged report for beta goes nowhere: beta's state at the relay stays as beta said.
    await spy.publishAsync(`outpost/v1/devices/${b.deviceId}/reported`, JSON.stringify({ revision: 999, models: [] }), { qos: 1 }).catch(() => undefined);
    const { body } = await relay.api<{ models: Array<{ state: string }> }>('GET', `/v1/devices/${b.deviceId}`);
    t.same(body.models.map((m) => m.state), ['serving'], "beta's reported state is beta's");
    t.match(await natsConnectAnswer(n1.clientUrl, devicePassword(a)), /-ERR/, 'the JWT does not open a NATS session');
  });

  await t.test('kill -9 a node mid-rollout: its device moves to another node and the rollout ends right', async (t) => {
    const push = await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear', '--json');
    t.equal(push.code, 0, push.stderr);
    const v2 = (JSON.parse(push.stdout) as { version: number }).version;
    const dep = await relay.cli('deploy', `linear:${v2}`, '--selector', 'site=lab', '--strategy', 'rolling', '--batch', '1', '--health-window', '2s', '--json');
    t.equal(dep.code, 0, dep.stderr);
    const id = (JSON.parse(dep.stdout) as { id: string }).id;
    const victim = cluster.nodes.find((n) => n.mqttUrl === connectedTo(agentA))!;
    [x, y] = cluster.nodes.filter((n) => n !== victim) as [typeof n1, typeof n1];
    await victim.kill('SIGKILL');
    await waitFor('the deployment succeeds', async () => {
      const { body } = await relay.api<{ state: string }>('GET', `/v1/deployments/${id}`);
      if (body.state === 'failed' || body.state === 'rolled-back') throw new Error(`deployment ${body.state}`);
      return body.state === 'succeeded' || undefined;
    }, 120_000);
    await waitFor(`both serve linear:${v2}`, async () => ((await serves(agentA, v2)) && (await serves(agentB, v2))) || undefined);
    t.not(connectedTo(agentA), victim.mqttUrl, 'alpha failed over to another node');
    // Back, for the streams made again below (3 replicas need 3 nodes). It catches up its old
    // streams in the background (minutes, at times, on NATS 2.9): only its server is waited for.
    await victim.start();
    await waitServing(victim);
  });

  await t.test("a cluster that lost its MQTT streams: devices still converge through HTTPS", async (t) => {
    const creds = JSON.parse(readFileSync(cluster.credentialsFile, 'utf8')) as { relayCreds: string };
    const nc = await natsConnect({ servers: x.clientUrl, authenticator: credsAuthenticator(new TextEncoder().encode(creds.relayCreds)) });
    t.teardown(() => nc.close());
    await agentB.stop();
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const s of jsm.streams.list()) names.push(s.config.name);
    t.ok(names.includes('$MQTT_rmsgs'), 'the retained messages stream was there');
    for (const name of names.filter((n) => n.startsWith('$MQTT_'))) await jsm.streams.delete(name);
    t.equal((await relay.cli('deploy', 'linear:1', '--device', b.deviceId)).code, 0);
    const again = await startAgent(t, b);
    await waitFor('beta serves linear:1 again, read over HTTPS', () => serves(again, 1), 60_000);
  });

  await t.test('a device without its JWT (enrolled before NATS) is refused, asks the relay for a login, and connects', async (t) => {
    const c = await enrollDevice(t, relay, 'gamma');
    const file = join(c.dataDir, 'device.json');
    const { mqttPassword: _p, mqttSubscribeQos: _q, ...before } = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify(before), { mode: 0o600 });
    const agentC = await startAgent(t, c);
    await waitFor('gamma online', async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${c.deviceId}`)).body.online || undefined, 60_000);
    t.ok(agentC.logs.some((l) => /new MQTT login/.test(String(l.msg))), 'the agent says it took a new login');
    t.match(devicePassword(c), /^eyJ/, 'and keeps it in device.json');
    await agentC.stop();
  });

  await t.test('devices remove revokes the JWT on every node at once', async (t) => {
    const probe = mqttAs(x.mqttUrl, { clientId: `${a.deviceId}-probe2`, username: a.deviceId, password: devicePassword(a), reconnectPeriod: 0 });
    await new Promise((resolve, reject) => (probe.once('connect', resolve), probe.once('error', reject)));
    const closed = new Promise<void>((r) => probe.once('close', () => r()));
    const removed = await relay.cli('devices', 'remove', a.deviceId);
    t.equal(removed.code, 0, removed.stderr);
    await closed;
    t.pass('the open session on another node was closed');
    const again = mqttAs(y.mqttUrl, { clientId: `${a.deviceId}-probe3`, username: a.deviceId, password: devicePassword(a), reconnectPeriod: 0 });
    const refusal = await new Promise<Error>((resolve) => again.once('error', resolve));
    again.end(true);
    t.match(refusal.message, /Not authorized|Bad username or password/i, 'a new connect with the JWT is refused');
    await waitFor('the agent says it was refused', () => agentA.logs.some((l) => /refused this device/.test(String(l.msg))) || undefined, 30_000);
  });

  await t.test('a device whose node died with it (no will from a dead node) is marked offline after the silence window', async (t) => {
    const d = await enrollDevice(t, relay, 'delta');
    const session = Date.now();
    const status = (online: boolean) => JSON.stringify({ online, ts: Date.now(), session, instance: 'abcdef0123456789', agentVersion: 'probe', training: false, datasets: [] });
    const probe = mqttAs(y.mqttUrl, { clientId: d.deviceId, username: d.deviceId, password: devicePassword(d), reconnectPeriod: 0, will: { topic: `outpost/v1/devices/${d.deviceId}/status`, payload: Buffer.from(status(false)), qos: 1, retain: true } });
    probe.on('error', () => {});
    await new Promise((resolve, reject) => (probe.once('connect', resolve), probe.once('error', reject)));
    await probe.publishAsync(`outpost/v1/devices/${d.deviceId}/status`, status(true), { qos: 1, retain: true });
    const online = async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${d.deviceId}`)).body.online;
    await waitFor('delta online', async () => (await online()) || undefined);
    await y.kill('SIGKILL');
    const killed = Date.now();
    await waitFor('delta offline', async () => ((await online()) ? undefined : true), 30_000);
    t.ok(Date.now() - killed >= 3000, 'not before the window (no will came)');
    t.ok(relay.logs.some((l) => l.deviceId === d.deviceId && /nothing heard from it/.test(String(l.msg))), 'the relay says why');
    probe.end(true);
    // Left down: the cluster goes on with two nodes (a node restarted after the streams were
    // deleted and made again catches up slowly on NATS 2.9, which is not this test's concern).
  });
});
