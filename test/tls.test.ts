// TLS by default, with real TLS on loopback: the relay makes its CA and certificates on first
// start, serves only HTTPS and MQTT over TLS, enrollment checks the CA against the token's
// fingerprint before anything is sent, each device gets its own certificate (its key never
// leaves it) that can act only as that device, and removing a device revokes it at once.

import t from 'tap';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { caFingerprint, tlsFetch } from '@outpost/shared';
import { AGENT_BIN, FIXTURES, RELAY_BIN, enrollDevice, runCli, runCommand, startAgent, startRelay, tempDir, type TestRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { certClient, connectAs } from './helpers/mqtt-client.js';
import { needPackage } from './helpers/system-package.js';

async function newToken(relay: TestRelay): Promise<string> {
  const res = await relay.cli('tokens', 'enroll', '--json');
  return (JSON.parse(res.stdout) as { token: string }).token;
}

t.test('first start: a CA, a server certificate for every address, files private', async (t) => {
  const relay = await startRelay(t);
  t.match(relay.httpUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.match(relay.mqttUrl, /^mqtts:\/\/127\.0\.0\.1:\d+$/);
  const dir = join(relay.dataDir, 'tls');
  t.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600, 'the CA key is 0600');
  t.equal(statSync(join(dir, 'server.key')).mode & 0o777, 0o600, 'the server key is 0600');
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
  t.ok(ca.ca, 'a CA certificate');
  t.match(ca.publicKey.asymmetricKeyDetails, { namedCurve: 'prime256v1' }, 'ECDSA P-256');
  const server = new X509Certificate(readFileSync(join(dir, 'server.crt')));
  t.ok(server.checkIssued(ca), 'the server certificate is from that CA');
  for (const name of ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']) t.match(server.subjectAltName, name, `it covers ${name}`);

  const shown = await relay.cli('ca', '--data-dir', relay.dataDir, '--json');
  t.equal(shown.code, 0, shown.stderr);
  const printed = JSON.parse(shown.stdout) as { certificate: string; fingerprint: string; sha256: string };
  t.equal(printed.fingerprint, caFingerprint(readFileSync(join(dir, 'ca.crt'))), 'outpost-relay ca prints the fingerprint');
  t.equal(printed.sha256, ca.fingerprint256, 'and the sha256 openssl prints');
  const token = await newToken(relay);
  t.ok(token.endsWith(`.${printed.fingerprint}`), 'enrollment tokens carry it');

  await t.test('a restart keeps the CA and the certificate', async (t) => {
    const before = readFileSync(join(dir, 'server.crt'), 'utf8');
    await relay.stop();
    const again = await startRelay(t, { dataDir: relay.dataDir });
    t.equal(readFileSync(join(dir, 'server.crt'), 'utf8'), before);
    t.equal((await again.api('GET', '/v1/devices')).status, 200);
  });

  await t.test('--advertise-host adds a name; the certificate is remade for it', async (t) => {
    const other = await startRelay(t, { dataDir: relay.dataDir, extraArgs: ['--advertise-host', 'relay.factory.example', '--advertise-host', '10.9.8.7'] });
    const cert = new X509Certificate(readFileSync(join(dir, 'server.crt')));
    t.match(cert.subjectAltName, 'DNS:relay.factory.example');
    t.match(cert.subjectAltName, 'IP Address:10.9.8.7');
    t.ok(cert.checkIssued(ca), 'from the same CA: enrolled devices still trust it');
    await other.stop();
    const bad = await runCli(RELAY_BIN, ['start', '--data-dir', relay.dataDir, '--advertise-host', 'not a host!']);
    t.not(bad.code, 0);
    t.match(bad.stderr, /--advertise-host "not a host!" is not a host name or an IP address/);
  });
});

t.test('plaintext is refused on both ports', async (t) => {
  const relay = await startRelay(t);
  const httpPort = new URL(relay.httpUrl).port;
  await t.rejects(fetch(`http://127.0.0.1:${httpPort}/v1/health`), 'plain HTTP to the HTTPS port gets no answer');
  await t.rejects(connectAs(relay.mqttUrl.replace('mqtts:', 'mqtt:'), { clientId: 'x' }), 'plain MQTT to the TLS port gets no CONNACK');
  // A raw TCP client that sends a CONNECT in the clear: the TLS server reads it as a bad handshake and closes.
  const closed = await new Promise<boolean>((resolve) => {
    const socket = netConnect(Number(new URL(relay.mqttUrl).port), '127.0.0.1', () => socket.write(Buffer.from('101000044d5154540402003c0004616e6f6e', 'hex')));
    socket.on('data', (d) => (d[0] === 0x20 ? resolve(false) : undefined));
    socket.on('close', () => resolve(true));
    socket.on('error', () => undefined);
  });
  t.ok(closed, 'no CONNACK to a plaintext CONNECT');
  const cli = await runCli(RELAY_BIN, ['devices', 'list'], { OUTPOST_RELAY_URL: relay.httpUrl.replace('https:', 'http:'), OUTPOST_TOKEN: relay.token });
  t.not(cli.code, 0);
  t.match(cli.stderr, /serves HTTPS unless started with --insecure; use https:\/\/|closed the connection/);
  t.equal((await relay.api('GET', '/v1/devices')).status, 200, 'the relay serves on');

  await t.test('a CLI without the CA is told how to trust it', async (t) => {
    const res = await runCli(RELAY_BIN, ['devices', 'list', '--data-dir', tempDir(t, 'elsewhere')], { OUTPOST_RELAY_URL: relay.httpUrl, OUTPOST_TOKEN: relay.token });
    t.not(res.code, 0);
    t.match(res.stderr, /has a certificate this host does not trust \(SELF_SIGNED_CERT_IN_CHAIN\): pass --ca FILE or set OUTPOST_CA_FILE \(outpost-relay ca on the relay host prints it\)/);
    const withCa = await runCli(RELAY_BIN, ['devices', 'list', '--ca', relay.caFile!, '--data-dir', tempDir(t, 'elsewhere')], { OUTPOST_RELAY_URL: relay.httpUrl, OUTPOST_TOKEN: relay.token });
    t.equal(withCa.code, 0, withCa.stderr);
  });

  await t.test('openssl verifies the relay against its CA, on both ports', async (t) => {
    const missing = needPackage('openssl', 'openssl');
    if (missing) {
      t.comment(missing);
      return;
    }
    for (const port of [httpPort, new URL(relay.mqttUrl).port]) {
      const res = await runCommand('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', relay.caFile!, '-verify_ip', '127.0.0.1', '-verify_return_error', '-brief'], { env: process.env });
      t.match(res.stderr + res.stdout, /Verification: OK/, `port ${port}: ${res.stderr.split('\n')[0]}`);
    }
  });
});

t.test('enrollment checks the relay against the token before sending anything', async (t) => {
  const relay = await startRelay(t);
  const token = await newToken(relay);
  const forged = token.replace(/\.[A-Za-z0-9_-]{43}$/, `.${'A'.repeat(43)}`);
  const dir = tempDir(t, 'agent');
  const refused = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', forged, '--data-dir', dir]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /showed a CA whose fingerprint is [A-Za-z0-9_-]{43}, but the token expects A{43}: this may not be your relay \(something between could be intercepting\); nothing was sent/);
  t.notOk(existsSync(join(dir, 'device.json')), 'no identity written');
  // Nothing was sent: the same token (with its real fingerprint) is still unused.
  const ok = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', token, '--data-dir', dir, '--name', 'cam']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /relay verified against the token's CA fingerprint; device certificate until \d{4}-/);
  t.equal(statSync(join(dir, 'device.key')).mode & 0o777, 0o600, 'the device key is 0600');
  const cert = new X509Certificate(readFileSync(join(dir, 'device.crt')));
  const device = JSON.parse(readFileSync(join(dir, 'device.json'), 'utf8')) as { deviceId: string; mqttUrl: string };
  t.equal(cert.subject, `CN=${device.deviceId}`, 'the certificate names the device id (whatever the CSR said)');
  t.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'device.key')))), 'for the key made on the device');
  t.match(device.mqttUrl, /^mqtts:\/\//);
  const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
  t.ok(days > 29 && days <= 30, `30 days by default (${days.toFixed(2)})`);

  const plainUrl = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl.replace('https:', 'http:'), '--token', await newToken(relay), '--data-dir', tempDir(t, 'agent2')]);
  t.match(plainUrl.stderr, /the token says the relay serves TLS: use https:\/\/ in --relay/);

  await t.test('a bad CSR is a 400 and spends nothing', async (t) => {
    const tok = (await newToken(relay)).replace(/\.[^.]+$/, '');
    for (const csr of ['not a csr', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', 'x'.repeat(5000)]) {
      const res = await relay.fetch(`${relay.httpUrl}/v1/enroll`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: JSON.stringify({ csr }) });
      t.equal(res.status, 400);
      t.match(((await res.json()) as { error: { message: string } }).error.message, /csr/i);
    }
    const res = await relay.fetch(`${relay.httpUrl}/v1/enroll`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: '{}' });
    t.equal(res.status, 201, 'the token still works');
  });
});

t.test('a man in the middle who shows the real CA with his own after it gets nothing', async (t) => {
  const relay = await startRelay(t);
  const token = await newToken(relay);
  // The attacker's own CA and a server certificate from it for 127.0.0.1.
  const x509 = await import('@outpost/shared/x509');
  const caKeys = await x509.newKeyPair();
  const evilCa = await x509.makeCa(caKeys, 'evil', 86_400_000);
  const serverKeys = await x509.newKeyPair();
  const serverCert = await x509.makeServerCert({ certPem: evilCa.pem, keys: caKeys }, serverKeys, ['127.0.0.1'], 86_400_000);
  const received: string[] = [];
  const { createServer } = await import('node:https');
  const server = createServer({ cert: serverCert.pem + evilCa.pem, key: serverKeys.privateKeyPem }, (req, res) => {
    received.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    res.setHeader('content-type', 'application/json');
    // The real CA first (its fingerprint is the token's), then the attacker's.
    res.end(req.url === '/v1/ca' ? JSON.stringify({ certificate: relay.ca! + evilCa.pem }) : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  const dir = tempDir(t, 'agent');
  const res = await runCli(AGENT_BIN, ['enroll', '--relay', `https://127.0.0.1:${port}`, '--token', token, '--data-dir', dir]);
  t.equal(res.code, 1);
  t.match(res.stderr, /sent no usable CA certificate \(one, marked as a CA\)/);
  t.same(received.map((r) => r.split(' ').slice(0, 2).join(' ')), ['GET /v1/ca'], 'it asked for the CA and sent nothing else');
  t.notOk(received.some((r) => r.includes('ope_')), 'not the token');
  t.notOk(existsSync(join(dir, 'ca.crt')), 'and trusts nothing');
});

t.test('a device certificate acts only as its device, and stops with it', async (t) => {
  const relay = await startRelay(t);
  const a = await enrollDevice(t, relay, 'a');
  const b = await enrollDevice(t, relay, 'b');
  t.ok(a.tls?.cert && b.tls?.cert, 'both have certificates');
  const agentB = await startAgent(t, b);
  await waitFor('b online', async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${b.deviceId}`)).body.online);
  t.notOk(agentB.logs.some((l) => JSON.stringify(l).includes(b.secret)), 'the agent never logs its secret');

  await t.test('at the broker', async (t) => {
    const own = await certClient(relay, a);
    await own.endAsync();
    t.pass("a's certificate, a's id, no secret: accepted");
    await t.rejects(certClient(relay, a, { clientId: b.deviceId }), /Identifier rejected/i, "a's certificate as b's client id");
    await t.rejects(certClient(relay, a, { clientId: b.deviceId, username: b.deviceId }), /Bad username or password/i, "a's certificate with b's username");
    await t.rejects(certClient(relay, a, { clientId: b.deviceId, username: b.deviceId, password: b.secret }), /Bad username or password/i, "a's certificate with b's secret too");
    // a's certificate may publish only its own topics: b's is a disconnect.
    const spy = await certClient(relay, a);
    const closed = new Promise<void>((resolve) => spy.once('close', () => resolve()));
    spy.publish(`outpost/v1/devices/${b.deviceId}/reported`, JSON.stringify({ models: [] }), { qos: 1 });
    await closed;
    t.pass("publishing to b's topic ends a's connection");
    spy.end(true);
  });

  await t.test('over HTTP', async (t) => {
    const asA = tlsFetch(a.tls);
    const pushed = JSON.parse((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear', '--json')).stdout) as { sha256: string };
    t.equal((await relay.cli('deploy', 'linear', '--device', b.deviceId, '--wait')).code, 0);
    t.equal((await asA(`${relay.httpUrl}/v1/artifacts/${pushed.sha256}`)).status, 404, "a's certificate cannot fetch b's model (as if there were none)");
    const asB = tlsFetch(b.tls);
    t.equal((await asB(`${relay.httpUrl}/v1/artifacts/${pushed.sha256}`)).status, 200, "b's certificate can");
    t.equal((await asB(`${relay.httpUrl}/v1/devices`)).status, 403, 'a device certificate is not an API token');
  });

  await t.test('removed: revoked at once, everywhere', async (t) => {
    const before = tlsFetch(b.tls);
    t.equal((await relay.cli('devices', 'remove', 'b')).code, 0);
    await waitFor('b disconnected', async () => agentB.logs.some((l) => /refused this device's certificate/.test(String(l.msg))));
    await t.rejects(certClient(relay, b), 'its certificate gets no MQTT session');
    const res = await before(`${relay.httpUrl}/v1/artifacts/${'0'.repeat(64)}`);
    t.equal(res.status, 401, 'and HTTPS calls with it are refused');
    t.match(((await res.json()) as { error: { message: string } }).error.message, /the device certificate is refused: device dev_\w+ no longer exists \(removed\): its certificate is revoked/);
    const stillA = await certClient(relay, a);
    await stillA.endAsync();
    t.pass('a is untouched');
  });
});

t.test('--insecure: plain HTTP and MQTT, with a warning; tokens carry no fingerprint', async (t) => {
  const relay = await startRelay(t, { extraArgs: ['--insecure'] });
  t.match(relay.httpUrl, /^http:\/\//);
  t.match(relay.mqttUrl, /^mqtt:\/\//);
  t.ok(relay.logs.some((l) => l.level === 40 && /running with --insecure/.test(String(l.msg))), 'it warns');
  const token = await newToken(relay);
  t.notMatch(token, /\./, 'no fingerprint in the token');
  const d = await enrollDevice(t, relay, 'plain');
  t.notOk(d.tls, 'no certificate');
  const agent = await startAgent(t, d);
  await waitFor('online', async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${d.deviceId}`)).body.online);
  t.ok(agent.httpUrl);
  const https = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl.replace('http:', 'https:'), '--token', await newToken(relay), '--data-dir', tempDir(t, 'agent')]);
  t.match(https.stderr, /this token carries no CA fingerprint/);
  const ca = await relay.cli('ca', '--data-dir', relay.dataDir);
  t.match(ca.stderr, /no CA in .*: start the relay once without --insecure/);
});

t.test('a TLS socket that never finishes its handshake costs nothing lasting', async (t) => {
  const relay = await startRelay(t);
  const port = Number(new URL(relay.mqttUrl).port);
  const sockets = Array.from({ length: 50 }, () => {
    const s = tlsConnect({ port, host: '127.0.0.1', ...relay.tls, servername: 'localhost' });
    s.on('error', () => undefined);
    return s;
  });
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  const d = await enrollDevice(t, relay, 'cam');
  const c = await certClient(relay, d);
  await c.endAsync();
  t.pass('a device connects meanwhile');
});
