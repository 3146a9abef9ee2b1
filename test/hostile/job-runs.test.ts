// A device through the jobs it runs, and jobs that try to outlive their run: per-run quotas of
// log lines and metric points, nothing taken for a run that has ended (MQTT or HTTP), children
// that setsid(2) away from their process group on `local` and on a device (a cgroup on one,
// environment tracking on the other), and bundles whose links leave the job folder.

import t from 'tap';
import mqtt from 'mqtt';
import { request } from 'node:https';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packBundle } from '@outpost/shared';
import { LINEAR_REQUEST, fleetStillWorks, relayMetric, relayWithBystander } from '../helpers/hostile.js';
import { enrollDevice, startAgent, tempDir } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';
import { alive } from '../helpers/processes.js';

interface Job {
  id: string;
  state: string;
  error: string | null;
  metrics: Record<string, { latest: number }>;
}


t.test('hostile job runs', async (t) => {
  const { relay, agent } = await relayWithBystander(t, ['--run-log-lines', '100', '--run-metric-points', '50']);
  const trainer = await enrollDevice(t, relay, 'trainer');
  const top = t; // programs started inside a subtest must outlive it
  // The device holds its jobs by environment tracking; `local` (the relay, root in CI) by a cgroup.
  let trainerAgent = await startAgent(t, trainer, ['--accept-training'], undefined, { OUTPOST_JOB_CONTAINMENT: 'tracking' });
  t.equal((await relay.cli('targets', 'attach', trainer.deviceId, '--training')).code, 0);
  await waitFor('the trainer accepts jobs', async () => {
    const res = await relay.api<{ targets: Array<{ name: string; trains: boolean; online: boolean }> }>('GET', '/v1/targets');
    return res.body.targets.find((x) => x.name === trainer.deviceId)?.trains || undefined;
  });
  const work = tempDir(t, 'bundle');
  writeFileSync(join(work, 'chatty.sh'), 'i=0; while [ $i -lt 500 ]; do echo "outpost:metric loss=$i step=$i"; i=$((i+1)); done\n');
  writeFileSync(join(work, 'detach.sh'), 'setsid sleep 1000 & echo $! > "$PIDFILE"\n(setsid sh -c \'sleep 1001\' &)\nsleep 1000\n');
  writeFileSync(join(work, 'leave.sh'), 'setsid sleep 1002 & echo $! > "$PIDFILE"\nexit 0\n');

  let endedJob = '';
  await t.test('per-run quotas: 500 lines and 500 metric points keep 100 and 50, and say so', async (t) => {
    for (const target of ['local', trainer.deviceId]) {
      const res = await relay.cli('jobs', 'submit', work, '--target', target, '--command', 'sh chatty.sh', '--follow', '--json');
      t.equal(res.code, 0, res.stderr);
      const job = JSON.parse(res.stdout) as Job;
      const logs = (await relay.api<{ lines: Array<{ text: string }> }>('GET', `/v1/jobs/${job.id}/logs?limit=10000`)).body.lines;
      t.equal(logs.filter((l) => !l.text.startsWith('[outpost]')).length, 100, `${target}: 100 log lines kept`);
      t.ok(logs.some((l) => /reached its quota of 100 log lines/.test(l.text)), `${target}: the log says the rest were dropped`);
      const points = (await relay.api<{ points: unknown[] }>('GET', `/v1/jobs/${job.id}/metrics`)).body.points;
      t.equal(points.length, 50, `${target}: 50 metric points kept`);
      t.equal(job.metrics.loss!.latest, 49, `${target}: the summary is of what was kept`);
      endedJob = job.id;
    }
    t.ok((await relayMetric(relay, 'outpost_device_quota_events_total', 'quota="run-logLines"')) >= 1, 'the device passing its quota is counted');
  });

  await t.test('nothing is taken for a run that has ended, over MQTT or HTTP', async (t) => {
    const before = (await relay.api<{ lines: unknown[] }>('GET', `/v1/jobs/${endedJob}/logs?limit=10000`)).body.lines.length;
    // The device itself, its agent stopped: a compromised one replaying its old run.
    await trainerAgent.stop();
    const c = await mqtt.connectAsync(relay.mqttUrl, { ...relay.tls, clientId: trainer.deviceId, username: trainer.deviceId, password: trainer.secret, reconnectPeriod: 0 });
    const lines = Array.from({ length: 1000 }, (_, i) => ({ ts: Date.now(), stream: 'stdout', text: `outpost:metric loss=${i}` }));
    for (let i = 0; i < 5; i++) await c.publishAsync(`outpost/v1/devices/${trainer.deviceId}/job-log`, JSON.stringify({ jobId: endedJob, rank: 0, lines }), { qos: 1 });
    await c.publishAsync(`outpost/v1/devices/${trainer.deviceId}/status`, JSON.stringify({ online: true, ts: Date.now() }), { qos: 1 });
    await waitFor('the refusal in the log', () => relay.logs.some((l) => l.msg === 'device message dropped' && l.deviceId === trainer.deviceId && /has ended/.test(String(l.reason))));
    await c.endAsync();
    t.equal((await relay.api<{ lines: unknown[] }>('GET', `/v1/jobs/${endedJob}/logs?limit=10000`)).body.lines.length, before, 'no line stored');
    t.equal((await relay.api<{ points: unknown[] }>('GET', `/v1/jobs/${endedJob}/metrics`)).body.points.length, 50, 'no point stored');
    // An output upload to the ended run: refused before its gigabyte is read.
    const answer = await new Promise<{ status: number; connection: string | undefined; sent: number }>((resolve, reject) => {
      const url = new URL(`${relay.httpUrl}/v1/jobs/${endedJob}/outputs?rank=0&path=big.bin`);
      let sent = 0;
      const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${trainer.secret}`, 'content-type': 'application/octet-stream', 'content-length': 1024 ** 3 }, ...relay.tls }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, connection: res.headers.connection, sent });
        req.destroy();
      });
      req.on('error', (err) => (sent > 0 ? resolve({ status: 0, connection: undefined, sent }) : reject(err)));
      const chunk = Buffer.alloc(1024 * 1024);
      const pump = () => {
        // At most 64 MiB: the answer must come long before the gigabyte.
        while (sent < 64 * 1024 ** 2 && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
      };
      pump();
    });
    // The relay answers 409 and closes; a client still writing may see the reset before the answer.
    t.ok(answer.sent < 64 * 1024 ** 2, `the relay stopped reading after ${answer.sent / 1024 ** 2} MiB of the declared gigabyte`);
    if (answer.status !== 0) {
      t.equal(answer.status, 409, 'an ended run takes no output');
      t.equal(answer.connection, 'close', 'and the rest of the body is not read');
    }
    trainerAgent = await startAgent(top, trainer, ['--accept-training'], undefined, { OUTPOST_JOB_CONTAINMENT: 'tracking' });
    await waitFor('the trainer back', async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${trainer.deviceId}`)).body.online || undefined);
  });

  await t.test('children that setsid away end with the run: cancel, timeout and a normal exit', async (t) => {
    for (const target of ['local', trainer.deviceId]) {
      const pidFile = join(tempDir(t, 'pid'), 'pid');
      // Cancel.
      const sub = await relay.cli('jobs', 'submit', work, '--target', target, '--command', 'sh detach.sh', '--env', `PIDFILE=${pidFile}`, '--json');
      t.equal(sub.code, 0, sub.stderr);
      const id = (JSON.parse(sub.stdout) as Job).id;
      const pid = await waitFor('the detached child', async () => {
        try {
          return Number(readFileSync(pidFile, 'utf8')) || undefined;
        } catch {
          const job = (await relay.api<Job>('GET', `/v1/jobs/${id}`)).body;
          throw new Error(`no pid file yet; the job is ${job.state}`);
        }
      });
      t.ok(alive(pid), `${target}: the setsid child runs`);
      t.equal((await relay.cli('jobs', 'cancel', id)).code, 0);
      await waitFor(`${target}: the detached child gone after cancel`, () => !alive(pid));
      t.pass(`${target}: cancel ended the child that left the process group`);
      // Timeout.
      writeFileSync(pidFile, '');
      const timed = await relay.cli('jobs', 'submit', work, '--target', target, '--command', 'sh detach.sh', '--env', `PIDFILE=${pidFile}`, '--timeout', '2s', '--follow', '--json');
      t.equal(timed.code, 1, 'the job timed out');
      const pid2 = Number(readFileSync(pidFile, 'utf8'));
      await waitFor(`${target}: the detached child gone after the timeout`, () => !alive(pid2));
      t.pass(`${target}: the timeout ended it`);
      // A run that exits, leaving a child behind.
      writeFileSync(pidFile, '');
      const left = await relay.cli('jobs', 'submit', work, '--target', target, '--command', 'sh leave.sh', '--env', `PIDFILE=${pidFile}`, '--follow', '--json');
      t.equal(left.code, 0, left.stderr);
      const pid3 = Number(readFileSync(pidFile, 'utf8'));
      t.notOk(alive(pid3), `${target}: a run that exited took its detached child with it (before it was reported)`);
    }
  });

  await t.test('a bundle whose links leave the folder is refused, however the links are chained', async (t) => {
    for (const [name, links] of [
      ['chain', [['q', '.'], ['up1', 'q/..']]],
      ['loop', [['a', 'b'], ['b', 'a']]],
      ['absolute', [['etc', '/etc']]],
    ] as const) {
      const dir = tempDir(t, `evil-${name}`);
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'run.sh'), 'true\n');
      for (const [from, to] of links) symlinkSync(to, join(dir, from));
      const file = join(tempDir(t, 'tgz'), 'b.tar.gz');
      await packBundle(dir, file);
      const res = await relay.fetch(`${relay.httpUrl}/v1/bundles`, { method: 'POST', headers: { authorization: `Bearer ${relay.token}`, 'content-type': 'application/octet-stream' }, body: readFileSync(file) });
      const body = (await res.json()) as { error: { code: string; message: string } };
      t.equal(res.status, 400, `${name}: ${body.error.message}`);
      t.equal(body.error.code, 'OUTPOST_ERR_BUNDLE_INVALID');
      const cli = await relay.cli('jobs', 'submit', dir, '--target', 'local', '--command', 'sh run.sh');
      t.equal(cli.code, 1, `${name}: jobs submit exits 1`);
      t.match(cli.stderr, /OUTPOST_ERR_BUNDLE_INVALID: refused bundle: link "[^"]+" points outside the job folder/);
    }
  });

  await t.test('afterwards', async (t) => fleetStillWorks(t, relay, agent, 'linear', LINEAR_REQUEST));
});
