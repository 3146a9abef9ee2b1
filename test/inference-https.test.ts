// `outpost-agent start --https`: the inference port serves HTTPS with the device's certificate,
// which clients check against the relay's CA under the device id's name; a renewal is served
// without a restart. With a token from a file, as a device owner would run it.

import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enrollDevice, runCommand, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { servedSerial } from './helpers/served-certificate.js';
import { needPackage } from './helpers/system-package.js';

/** GET over HTTPS trusting only `ca`, checking the certificate's name against `servername`. */
function httpsGet(url: string, opts: { ca: string; servername?: string; token?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: opts.ca, servername: opts.servername, headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

t.test('the inference port over HTTPS with the device certificate', async (t) => {
  const relay = await startRelay(t);
  const d = await enrollDevice(t, relay, 'cam');
  const tokenFile = join(tempDir(t, 'token'), 'inference.token');
  writeFileSync(tokenFile, 'inference-secret\n', { mode: 0o600 });
  const agent = await startAgent(t, d, ['--https', '--token-file', tokenFile]);
  t.match(agent.httpUrl, /^https:\/\//, 'the agent says it serves HTTPS');
  const ready = `${agent.httpUrl}/v2/health/ready`;
  const ca = relay.ca!;

  const ok = await httpsGet(ready, { ca, servername: d.deviceId, token: 'inference-secret' });
  t.equal(ok.status, 200, "trusted by the relay's CA under the device id's name");
  t.equal((await httpsGet(ready, { ca, servername: d.deviceId })).status, 401, 'the token is still required');
  await t.rejects(httpsGet(ready, { ca }), /altnames|does not match|IP: 127\.0\.0\.1 is not in the cert's list/i, 'the certificate names the device, not an address');
  await t.rejects(fetch(ready.replace('https:', 'http:')), 'plain HTTP gets no answer');

  await t.test('curl, as a person would call it', { skip: needPackage('curl', 'curl') }, async (t) => {
    const port = new URL(agent.httpUrl).port;
    const res = await runCommand('curl', ['-sS', '--fail', '--cacert', relay.caFile!, '--connect-to', `${d.deviceId}:${port}:127.0.0.1:${port}`, '-H', 'authorization: Bearer inference-secret', `https://${d.deviceId}:${port}/v2/health/ready`], { env: process.env });
    t.equal(res.code, 0, res.stderr);
  });

  await t.test('a renewed certificate is served without a restart', async (t) => {
    const before = new X509Certificate(readFileSync(join(d.dataDir, 'device.crt'))).serialNumber.toLowerCase();
    t.equal(await servedSerial(agent.httpUrl), before);
    const res = await relay.cli('devices', 'rotate', 'cam');
    t.equal(res.code, 0, res.stderr);
    await waitFor('the agent renews', () => (agent.logs.some((l) => l.msg === 'device certificate renewed') ? true : undefined));
    const after = new X509Certificate(readFileSync(join(d.dataDir, 'device.crt'))).serialNumber.toLowerCase();
    t.not(after, before);
    t.equal(await servedSerial(agent.httpUrl), after, 'new connections get the new certificate');
    t.equal((await httpsGet(ready, { ca, servername: d.deviceId, token: 'inference-secret' })).status, 200);
  });
});

t.test('--https on a device enrolled without TLS is a one-line error', async (t) => {
  const relay = await startRelay(t, { extraArgs: ['--insecure'] });
  const d = await enrollDevice(t, relay, 'plain');
  await t.rejects(startAgent(t, d, ['--https']), /--https needs a device certificate/);
});
