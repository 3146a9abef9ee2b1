// What a token holder or a local user could take: labels an enrolling device picks for itself
// (and with them selector deployments and jobs), the agent's inference token from the process
// list, the relay's database and artifacts read by other users of the host.

import t from 'tap';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_BIN, runCli, startAgent, startRelay, tempDir, enrollDevice } from '../helpers/programs.js';
import { tlsFetch } from '@outpost/shared';
import { TEST_STORE } from '../helpers/test-store.js';

const mode = (file: string) => statSync(file).mode & 0o777;

t.test('labels come from the admin', async (t) => {
  const relay = await startRelay(t);
  const enroll = async (tokenArgs: string[], agentArgs: string[]) => {
    const tok = JSON.parse((await relay.cli('tokens', 'enroll', '--json', ...tokenArgs)).stdout) as { token: string; allowDeviceLabels: boolean };
    const dir = tempDir(t, 'agent');
    const res = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', tok.token, '--data-dir', dir, '--json', ...agentArgs]);
    return { res, tok };
  };
  const refused = await enroll(['--labels', 'site=lab'], ['--labels', 'site=prod,gpu=yes']);
  t.equal(refused.res.code, 1, 'a device may not pick labels with a plain token');
  t.match(refused.res.stderr, /^error: OUTPOST_ERR_FORBIDDEN: this enrollment token does not let the device choose labels \(asked for (?:gpu=yes,site=prod|site=prod,gpu=yes)\): enroll without --labels \(the token gives site=lab\), or ask the admin for a token made with --allow-device-labels/m);
  const plain = await enroll(['--labels', 'site=lab'], []);
  t.equal(plain.res.code, 0, plain.res.stderr);
  t.same((JSON.parse(plain.res.stdout) as { labels: unknown }).labels, { site: 'lab' }, 'the token\'s labels');
  const allowed = await enroll(['--labels', 'site=lab', '--allow-device-labels'], ['--labels', 'site=prod,camera=front']);
  t.equal(allowed.res.code, 0, allowed.res.stderr);
  t.equal(allowed.tok.allowDeviceLabels, true);
  t.same((JSON.parse(allowed.res.stdout) as { labels: unknown }).labels, { site: 'lab', camera: 'front' }, 'the device adds labels, the token\'s win');
  const devices = (await relay.api<{ devices: unknown[] }>('GET', '/v1/devices')).body.devices;
  t.equal(devices.length, 2, 'the refused enrollment made no device');
});

t.test('secrets stay off the command line, and the relay\'s files are its own', async (t) => {
  const relay = await startRelay(t);
  // On PostgreSQL (OUTPOST_TEST_STORE=postgres) the database is not in the data dir.
  const dbFiles = TEST_STORE === 'sqlite' ? ['relay.db', 'relay.db-wal', 'relay.db-shm'] : [];
  for (const f of [...dbFiles, 'admin.token']) t.equal(mode(join(relay.dataDir, f)), 0o600, `${f} is 0600`);
  t.equal(mode(join(relay.dataDir, 'artifacts')), 0o700, 'artifacts/ is 0700');
  t.equal(mode(relay.dataDir), 0o700, 'the data dir is 0700');

  const device = await enrollDevice(t, relay, 'edge');
  const tokenFile = join(tempDir(t, 'tok'), 'inference.token');
  writeFileSync(tokenFile, 'infer-secret-123\n', { mode: 0o600 });
  const agent = await startAgent(t, device, ['--token-file', tokenFile]);
  const cmdline = readFileSync(`/proc/${agent.proc.pid}/cmdline`, 'utf8');
  t.notMatch(cmdline, /infer-secret-123/, 'the token is not in /proc/PID/cmdline');
  t.equal((await fetch(`${agent.httpUrl}/v2/health/ready`)).status, 401, 'the token is required');
  t.equal((await fetch(`${agent.httpUrl}/v2/health/ready`, { headers: { authorization: 'Bearer infer-secret-123' } })).status, 200, 'the file\'s token works');
  await agent.stop();
  const missing = await runCli(AGENT_BIN, ['start', '--data-dir', device.dataDir, '--port', '0', '--token-file', join(tokenFile, 'nope')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read --token-file .*nope: (ENOTDIR|ENOENT)/);
});

t.test('a device renewing its certificate in a loop is told to wait', async (t) => {
  const relay = await startRelay(t);
  const d = await enrollDevice(t, relay, 'loop');
  const x509 = await import('@outpost/shared/x509');
  const asDevice = tlsFetch(d.tls);
  const renew = async () => {
    const csr = await x509.makeCsr(await x509.newKeyPair(), 'x');
    return asDevice(`${relay.httpUrl}/v1/devices/me/certificate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr }) });
  };
  // Its first certificate stays good as the one renewed from, so each call may use it.
  for (let i = 0; i < 5; i++) t.equal((await renew()).status, 200, `renewal ${i + 1} of a burst`);
  const refused = await renew();
  t.equal(refused.status, 429);
  t.equal(refused.headers.get('retry-after'), '10');
  t.match(((await refused.json()) as { error: { code: string; message: string } }).error, { code: 'OUTPOST_ERR_RATE_LIMITED', message: /at most one renewal every 10 s/ });
  t.equal((await renew()).status, 429, 'and again');
  const audit = await relay.api<{ entries: Array<{ action: string; outcome: string }> }>('GET', '/v1/audit?limit=100');
  const renewals = audit.body.entries.filter((e) => e.action === 'device.renew-certificate');
  t.equal(renewals.filter((e) => e.outcome === 'ok').length, 5, 'five certificates signed');
  t.equal(renewals.filter((e) => e.outcome === 'failed').length, 1, "the refusals, in one entry (a device's failures are throttled in the log)");
});
