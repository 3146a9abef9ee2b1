// The relay's data dir on a small tmpfs, filled up. New work is refused with 507
// OUTPOST_ERR_DISK_FULL and one log line; reads, the fleet stream, the broker and the devices
// keep working; nothing half-written is left behind; a job that ends meanwhile is recorded once
// space returns; once space is freed the relay takes work again by itself, without a restart.

import t from 'tap';
import { join } from 'node:path';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from '../helpers/programs.js';
import { LINEAR_REQUEST, relayMetric } from '../helpers/hostile.js';
import { openStream } from '../helpers/stream.js';
import { fillUp, mountTmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';
import { TEST_STORE } from '../helpers/test-store.js';

const mount = mountTmpfs(t, 64);

// On PostgreSQL (OUTPOST_TEST_STORE=postgres) the database is not on the full disk, and the
// database writes this test fills it with succeed.
const onPostgres = TEST_STORE === 'postgres' && 'the database is in PostgreSQL, not on the full disk (OUTPOST_TEST_STORE=postgres)';

t.test('a full disk costs new work, never the relay', { skip: 'skip' in mount ? mount.skip : onPostgres }, async (t) => {
  const dataDir = join((mount as { dir: string }).dir, 'relay');
  const relay = await startRelay(t, { dataDir });
  const device = await enrollDevice(t, relay, 'edge');
  const agent = await startAgent(t, device);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  t.equal((await relay.cli('deploy', 'linear', '--device', device.deviceId, '--wait')).code, 0);
  // A local job that runs through the full disk and ends while it is full.
  const gateDir = tempDir(t, 'gate');
  writeFileSync(join(gateDir, 'wait.sh'), 'while [ ! -f "$GATE" ]; do sleep 0.05; done\n');
  const job = JSON.parse((await relay.cli('jobs', 'submit', gateDir, '--target', 'local', '--command', 'sh wait.sh', '--env', `GATE=${join(gateDir, 'open')}`, '--json')).stdout) as { id: string };
  const jobState = async () => (await relay.api<{ state: string }>('GET', `/v1/jobs/${job.id}`)).body.state;
  await waitFor('the job running', async () => (await jobState()) === 'running');
  const filler = join((mount as { dir: string }).dir, 'filler');
  const filled = fillUp(filler);
  t.ok(filled > 0, `the disk filled up (${(filled / 2 ** 20).toFixed(1)} MiB of filler)`);

  await t.test('new work is refused with 507 and a line that says why', async (t) => {
    const push = await relay.cli('models', 'push', join(FIXTURES, 'rowsum.onnx'), '--name', 'rowsum');
    t.equal(push.code, 1, 'a push fails');
    t.match(push.stderr, /^error: OUTPOST_ERR_DISK_FULL: the relay's disk is full: free space in its data dir and retry/, push.stderr);
    t.same(readdirSync(join(dataDir, 'artifacts', '.staging')), [], 'nothing half-written is left in .staging');

    const big = await relay.fetch(`${relay.httpUrl}/v1/models/big/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${relay.token}`, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(2 * 1024 * 1024),
    });
    t.equal(big.status, 507, 'an upload that cannot fit is refused from its Content-Length');
    t.match(await big.text(), /does not fit on the relay's disk/);

    // SQLite finds the disk full once its write-ahead log must grow: each write is a 507, never a 500.
    const statuses = new Set<number>();
    for (let i = 0; i < 400 && !statuses.has(507); i++) statuses.add((await relay.api('POST', '/v1/tokens/enroll', { ttlSeconds: 3600 })).status);
    t.ok(statuses.has(507), `database writes are refused with 507 (${[...statuses].join(', ')})`);
    t.notOk(statuses.has(500), 'never a 500');
    t.equal(relay.logs.filter((l) => String(l.msg).startsWith("the relay's disk is full")).length, 1, 'one log line says it');
    t.equal(await relayMetric(relay, 'outpost_relay_disk_full'), 1, '/metrics shows it');
    const submit = await relay.cli('jobs', 'submit', gateDir, '--target', 'local', '--command', 'true');
    t.equal(submit.code, 1, 'a new job is refused');
    t.match(submit.stderr, /OUTPOST_ERR_DISK_FULL/);
  });

  await t.test('a job that ends while the disk is full is not lost', async (t) => {
    writeFileSync(join(gateDir, 'open'), '');
    const how = await waitFor('the end of the job written or kept', async () => {
      if (relay.logs.some((l) => l.msg === 'the disk is full: job state changes are kept and written once space returns')) return 'kept for later';
      return (await jobState()) === 'succeeded' ? 'written at once' : undefined;
    });
    t.pass(`the end of the run was ${how}`);
  });

  await t.test('reads, the stream, the broker and the devices keep working', async (t) => {
    t.equal((await relay.api('GET', '/v1/devices')).status, 200, 'devices list');
    t.equal((await relay.cli('models', 'show', 'linear')).code, 0, 'models show');
    const stream = await openStream(relay.httpUrl, relay.token);
    t.teardown(() => stream.close());
    t.ok((await stream.next('snapshot')).devices.some((d) => d.id === device.deviceId), 'a new fleet stream gets its snapshot');
    const before = await relayMetric(relay, 'outpost_mqtt_messages_in_total');
    await waitFor('a heartbeat through the broker', async () => (await relayMetric(relay, 'outpost_mqtt_messages_in_total')) > before);
    t.pass('device messages still arrive');
    t.equal((await agent.infer('linear', LINEAR_REQUEST)).status, 200, 'the device serves');
    t.equal(relay.proc.exitCode, null, 'the relay is up');
  });

  await t.test('space freed: the relay takes work again by itself', async (t) => {
    rmSync(filler);
    await waitFor('the relay to say space is back', () => relay.logs.some((l) => l.msg === 'disk space is back: the relay takes new work again'));
    t.equal(await relayMetric(relay, 'outpost_relay_disk_full'), 0);
    const push = await relay.cli('models', 'push', join(FIXTURES, 'rowsum.onnx'), '--name', 'rowsum');
    t.equal(push.code, 0, `the push works (${push.stderr})`);
    t.equal((await relay.cli('deploy', 'rowsum', '--device', device.deviceId, '--wait')).code, 0, 'and deploys');
    t.equal((await relay.api('POST', '/v1/tokens/enroll', { ttlSeconds: 3600 })).status, 201, 'database writes work');
    await waitFor('the job that ended while the disk was full recorded as succeeded', async () => (await jobState()) === 'succeeded');
    t.pass('the job that ended while the disk was full is recorded as succeeded');
  });
});
