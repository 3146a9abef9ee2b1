// Device certificates have short lives: the agent renews its own after two thirds of one, with
// a new key, while it keeps serving and reporting; `devices rotate` asks for a renewal now; and
// a certificate past its end is refused. Real relay, agent and TLS on loopback, a 30 s lifetime.

import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, deviceTls, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { certClient } from './helpers/mqtt-client.js';

t.test('an expired certificate is refused; the agent renews long before that, serving on', async (t) => {
  // Two-thirds of 30 s: the agent renews after about 20 s.
  const relay = await startRelay(t, { extraArgs: ['--device-cert-ttl', '30s'] });
  const d = await enrollDevice(t, relay, 'cam');
  const first = new X509Certificate(d.tls!.cert!);
  const firstTls = deviceTls(d);
  const agent = await startAgent(t, d);
  const pushed = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  t.equal(pushed.code, 0, pushed.stderr);
  t.equal((await relay.cli('deploy', 'linear', '--device', 'cam', '--wait')).code, 0);
  const body = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };

  let served = 0;
  let failed = 0;
  await waitFor(
    'the agent renews its certificate',
    async () => {
      const res = await agent.infer('linear', body);
      if (res.status === 200) served++;
      else failed++;
      return agent.logs.some((l) => l.msg === 'device certificate renewed');
    },
    45_000,
  );
  t.equal(failed, 0, `inference never failed while it renewed (${served} served)`);
  const renewed = new X509Certificate(readFileSync(join(d.dataDir, 'device.crt')));
  t.not(renewed.serialNumber, first.serialNumber, 'a new certificate');
  t.equal(renewed.subject, first.subject, 'for the same device');
  t.not(renewed.publicKey.export({ format: 'pem', type: 'spki' }), first.publicKey.export({ format: 'pem', type: 'spki' }), 'with a new key');
  await waitFor('health says when the new one ends', async () => {
    const view = (await relay.api<{ health: { certificate?: { expiresAt: number } } | null }>('GET', '/v1/devices/cam')).body;
    return view.health?.certificate?.expiresAt === Date.parse(renewed.validTo);
  });

  // The first certificate, once past its end, is refused in the handshake's check.
  await waitFor('the first certificate expires', async () => Date.now() > Date.parse(first.validTo) + 1000, 40_000);
  await t.rejects(certClient(relay, d, firstTls), /Not authorized/i, 'the expired certificate gets no session');
  const status = (await relay.api<{ online: boolean }>('GET', '/v1/devices/cam')).body;
  t.ok(status.online, 'the agent stayed online');
  t.equal((await agent.infer('linear', body)).status, 200, 'and serving');

  await t.test('devices rotate: a renewal now', async (t) => {
    const before = readFileSync(join(d.dataDir, 'device.crt'), 'utf8');
    const beforeKey = readFileSync(join(d.dataDir, 'device.key'), 'utf8');
    const renewals = agent.logs.filter((l) => l.msg === 'device certificate renewed').length;
    const res = await relay.cli('devices', 'rotate', 'cam');
    t.equal(res.code, 0, res.stderr);
    t.match(res.stdout, /asked dev_\w+ to renew its certificate/);
    await waitFor('renewed again', async () => agent.logs.filter((l) => l.msg === 'device certificate renewed').length > renewals);
    t.not(readFileSync(join(d.dataDir, 'device.crt'), 'utf8'), before);
    // A rotation keeps no old certificate good: a copy of the old key is worth nothing now.
    await t.rejects(certClient(relay, d, deviceTls({ ...d, tls: { ca: d.tls!.ca, cert: before, key: beforeKey } })), /Not authorized/i, 'the certificate from before the rotation is refused');
    await waitFor('the agent back online with the new one', async () => (await relay.api<{ online: boolean }>('GET', '/v1/devices/cam')).body.online);
    t.equal(agent.logs.filter((l) => l.msg === 'device certificate renewed').length, renewals + 1, 'renewed once, not again');
  });

  await t.test('a device away past its certificate\'s end comes back (it renews with its secret)', async (t) => {
    await agent.stop();
    // As if it had been off since enrollment: its first certificate, ended and replaced since.
    writeFileSync(join(d.dataDir, 'device.crt'), d.tls!.cert!);
    writeFileSync(join(d.dataDir, 'device.key'), d.tls!.key!, { mode: 0o600 });
    await waitFor('the device offline', async () => !(await relay.api<{ online: boolean }>('GET', '/v1/devices/cam')).body.online);
    const back = await startAgent(t, d);
    await waitFor('renewed', async () => back.logs.some((l) => l.msg === 'device certificate renewed'));
    await waitFor('online again', async () => (await relay.api<{ online: boolean }>('GET', '/v1/devices/cam')).body.online, 30_000);
    t.not(readFileSync(join(d.dataDir, 'device.crt'), 'utf8'), d.tls!.cert, 'with a new certificate');
    await waitFor('serving again', async () => (await back.infer('linear', body)).status === 200);
  });
});
