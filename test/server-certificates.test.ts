// The relay's server certificates over time: an operator's own (--tls-cert/--tls-key) on the
// HTTPS side while MQTT keeps the relay's, files read again on SIGHUP (a renewed certificate
// served without a restart, a broken pair refused and the old one kept), and the relay's own
// certificate remade and served on both ports when it nears its end.

import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RELAY_BIN, runCli, startRelay, tempDir, type TestRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { servedSerial } from './helpers/served-certificate.js';
import { loadRelayCa, issueServerCert } from '../packages/relay/dist/tls/relay-tls.js';
import { createLogger } from '@outpost/shared';

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase();

/** A site CA and a server certificate from it for 127.0.0.1, as an operator brings them. */
async function operatorPair(dir: string, name: string) {
  const x509 = await import('@outpost/shared/x509');
  const caKeys = await x509.newKeyPair();
  const ca = await x509.makeCa(caKeys, 'site CA', 86_400_000);
  const keys = await x509.newKeyPair();
  const cert = await x509.makeServerCert({ certPem: ca.pem, keys: caKeys }, keys, ['127.0.0.1', 'localhost'], 86_400_000);
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(dir, `${name}-ca.crt`) };
  writeFileSync(files.cert, cert.pem + ca.pem);
  writeFileSync(files.key, keys.privateKeyPem);
  writeFileSync(files.ca, ca.pem);
  return { ...files, serial: serialOf(cert.pem) };
}

/** Sends SIGHUP and waits for the relay's answer on stderr (`nth` answer, counting from 1). */
async function hangUp(relay: TestRelay, nth: number): Promise<string> {
  relay.proc.kill('SIGHUP');
  const answers = () => relay.stderr().match(/^(serving the new certificate|the certificates are unchanged|--tls-cert\/--tls-key not taken.*)$/gm) ?? [];
  return waitFor(`answer ${nth} to SIGHUP`, () => answers()[nth - 1]);
}

t.test('--tls-cert: the operator certificate on HTTPS, the relay\'s on MQTT, read again on SIGHUP', async (t) => {
  const dir = tempDir(t, 'operator-tls');
  const first = await operatorPair(dir, 'first');
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  writeFileSync(live.cert, readFileSync(first.cert));
  writeFileSync(live.key, readFileSync(first.key));
  const relay = await startRelay(t, { extraArgs: ['--tls-cert', live.cert, '--tls-key', live.key] });
  t.equal(await servedSerial(relay.httpUrl), first.serial, 'HTTPS shows the operator certificate');
  const relayServer = readFileSync(join(relay.dataDir, 'tls/server.crt'), 'utf8');
  t.equal(await servedSerial(relay.mqttUrl), serialOf(relayServer), "MQTT shows the relay's own (device certificates come from its CA)");
  const cli = await relay.cli('devices', 'list', '--ca', first.ca);
  t.equal(cli.code, 0, `a CLI trusting the operator's CA: ${cli.stderr}`);

  await t.test('SIGHUP with the same files changes nothing', async (t) => {
    t.equal(await hangUp(relay, 1), 'the certificates are unchanged');
  });

  await t.test('a renewed certificate is served after SIGHUP, no restart', async (t) => {
    const second = await operatorPair(dir, 'second');
    writeFileSync(live.cert, readFileSync(second.cert));
    writeFileSync(live.key, readFileSync(second.key));
    t.equal(await hangUp(relay, 2), 'serving the new certificate');
    t.equal(await servedSerial(relay.httpUrl), second.serial, 'new connections get the new certificate');
    const cli = await relay.cli('devices', 'list', '--ca', second.ca);
    t.equal(cli.code, 0, cli.stderr);
  });

  await t.test('a key that does not go with the certificate is refused; the served pair stays', async (t) => {
    const before = await servedSerial(relay.httpUrl);
    writeFileSync(live.key, readFileSync(first.key));
    t.match(await hangUp(relay, 3), /^--tls-cert\/--tls-key not taken, the served pair kept: .*key values mismatch/);
    t.equal(await servedSerial(relay.httpUrl), before);
    t.equal(relay.proc.exitCode, null, 'the relay runs on');
  });
});

t.test("the relay's own certificate is remade when it nears its end and served on both ports", async (t) => {
  const relay = await startRelay(t);
  const original = serialOf(readFileSync(join(relay.dataDir, 'tls/server.crt'), 'utf8'));
  t.equal(await servedSerial(relay.httpUrl), original);
  // As if a year had passed: the stored certificate has ten days left (the check remakes it
  // at thirty). The daily check does what SIGHUP does here.
  const ca = await loadRelayCa(relay.dataDir, createLogger({ name: 'test', level: 'silent' }));
  const ending = await issueServerCert(ca, ['127.0.0.1', 'localhost'], 10 * 86_400_000);
  writeFileSync(join(relay.dataDir, 'tls/server.crt'), ending.cert);
  writeFileSync(join(relay.dataDir, 'tls/server.key'), ending.key);
  t.equal(await hangUp(relay, 1), 'serving the new certificate');
  const remade = readFileSync(join(relay.dataDir, 'tls/server.crt'), 'utf8');
  t.not(serialOf(remade), serialOf(ending.cert), 'remade, not the one near its end');
  t.ok(Date.parse(new X509Certificate(remade).validTo) - Date.now() > 300 * 86_400_000, 'for another year');
  t.equal(await servedSerial(relay.httpUrl), serialOf(remade), 'HTTPS serves it');
  t.equal(await servedSerial(relay.mqttUrl), serialOf(remade), 'MQTT serves it');
  const devices = await relay.api('GET', '/v1/devices');
  t.equal(devices.status, 200, 'clients trusting the relay CA go on');
});

t.test('ca issue: certificates from the relay CA for a broker and its clients, files private', async (t) => {
  const dataDir = tempDir(t, 'relay');
  const out = tempDir(t, 'issued');
  const issue = (...args: string[]) => runCli(RELAY_BIN, ['ca', 'issue', '--data-dir', dataDir, '--out', out, ...args]);
  const server = await issue('--server', 'broker.example', '--server', '10.0.0.7', '--json');
  t.equal(server.code, 0, server.stderr);
  const files = JSON.parse(server.stdout) as { ca: string; cert: string; key: string; caFingerprint: string };
  const cert = new X509Certificate(readFileSync(files.cert));
  t.ok(cert.checkHost('broker.example') && cert.checkIP('10.0.0.7'), 'names every --server');
  t.ok(cert.verify(new X509Certificate(readFileSync(join(dataDir, 'tls/ca.crt'))).publicKey), 'signed by the relay CA, made in the data dir');
  t.equal(statSync(files.key).mode & 0o777, 0o600);
  t.equal((await issue('--server', 'broker.example')).code, 1, 'existing files are kept without --force');
  t.equal((await issue('--server', 'broker.example', '--force')).code, 0);
  t.not(new X509Certificate(readFileSync(files.cert)).serialNumber, cert.serialNumber, '--force replaced it');
  t.equal(statSync(files.key).mode & 0o777, 0o600, 'still private');

  const admin = await issue('--client', 'admin', '--valid', '7d', '--force');
  t.equal(admin.code, 0, admin.stderr);
  const adminCert = new X509Certificate(readFileSync(join(out, 'admin.crt')));
  t.match(adminCert.subject, /CN=admin/);
  t.ok(Date.parse(adminCert.validTo) - Date.now() < 8 * 86_400_000, '--valid bounds it');
  for (const [args, why] of [
    [['--client', 'dev_0123456789ab'], /device names \(dev_…\) and outpost-relay are the relay's to issue/],
    [['--client', 'outpost-relay'], /are the relay's to issue/],
    [['--server', 'bad_name'], /"bad_name" is not a host name/],
    [['--server', 'a.example', '--client', 'x'], /one of the two/],
    [['--client', 'x', '--valid', '500d'], /at most 398d/],
  ] as const) {
    const res = await issue(...args, '--force');
    t.equal(res.code, 1, args.join(' '));
    t.match(res.stderr, why);
  }
});

t.test('--mqtt-ca hands devices CA certificates only', async (t) => {
  const dir = tempDir(t, 'mqtt-ca');
  const x509 = await import('@outpost/shared/x509');
  const keys = await x509.newKeyPair();
  const ca = await x509.makeCa(keys, 'site CA', 86_400_000);
  const start = (file: string, url = 'mqtts://127.0.0.1:1') => runCli(RELAY_BIN, ['start', '--data-dir', tempDir(t, 'relay'), '--host', '127.0.0.1', '--http-port', '0', '--mqtt-url', url, '--mqtt-ca', file]);
  writeFileSync(join(dir, 'with-key.pem'), ca.pem + keys.privateKeyPem);
  const withKey = await start(join(dir, 'with-key.pem'));
  t.equal(withKey.code, 1);
  t.match(withKey.stderr, /holds a private key: give a file with the CA's certificate alone/);
  const leafKeys = await x509.newKeyPair();
  const leaf = await x509.makeServerCert({ certPem: ca.pem, keys }, leafKeys, ['broker.example'], 86_400_000);
  writeFileSync(join(dir, 'leaf.pem'), leaf.pem);
  const notCa = await start(join(dir, 'leaf.pem'));
  t.equal(notCa.code, 1);
  t.match(notCa.stderr, /is not a CA certificate: give the CA that signed the broker's certificate/);
  writeFileSync(join(dir, 'ca.pem'), ca.pem);
  const plain = await start(join(dir, 'ca.pem'), 'mqtt://127.0.0.1:1');
  t.equal(plain.code, 1);
  t.match(plain.stderr, /--mqtt-ca is for an external broker over TLS/);
});
