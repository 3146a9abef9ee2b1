// Two relays serving one workspace: one PostgreSQL store, one Mosquitto, one artifacts folder and
// one CA folder. Any relay answers any call; fleet stream clients on either see every event with
// the same seqs; the leader (scheduler, rollouts) is killed with SIGKILL mid-rollout and the other
// relay carries the rollout on to the end, every device on the right version.

import t from 'tap';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StreamMessage } from '@outpost/shared';
import { FIXTURES, RELAY_BIN, enrollDevice, runCli, startAgent, startRelay, tempDir, type TestAgent, type TestRelay } from '../helpers/programs.js';
import { startHaproxy } from '../helpers/haproxy.js';
import { createDatabase, postgresMissing, startPostgres } from '../helpers/postgres.js';
import { needPackage } from '../helpers/system-package.js';
import { startMosquitto, withAclFile } from '../helpers/mosquitto.js';
import { openStream } from '../helpers/stream.js';
import { waitFor } from '../helpers/wait.js';
import { relayMetric } from '../helpers/hostile.js';

const skip = needPackage('mosquitto', 'mosquitto') || needPackage('haproxy', 'haproxy') || postgresMissing();

interface Deployment {
  id: string;
  state: string;
  devices: Array<{ deviceId: string; state: string }>;
}

t.test('two relays, one workspace: any relay answers, streams agree, the leader dies mid-rollout', { skip }, async (t) => {
  const pg = (await startPostgres())!;
  const store = await createDatabase(pg.url, 'workspace');
  const broker = (await startMosquitto(t, withAclFile)).url;
  const artifacts = tempDir(t, 'shared-artifacts');
  const ca = tempDir(t, 'shared-ca');
  const shared = ['--store', store, '--mqtt-url', broker.replace('mqtt://', 'mqtt://outpost-relay:unused@'), '--advertise-mqtt-url', broker, '--artifacts-dir', artifacts, '--ca-dir', ca];

  const a = await startRelay(t, { extraArgs: shared });
  t.ok(a.logs.some((l) => l.msg === 'relay ready' && l.leading === true), 'the first relay leads');
  // The workspace has one admin token, made by the first relay: the second one is handed it.
  const bDir = tempDir(t, 'relay-b');
  copyFileSync(join(a.dataDir, 'admin.token'), join(bDir, 'admin.token'));
  const b = await startRelay(t, { dataDir: bDir, extraArgs: shared });
  t.ok(b.logs.some((l) => l.msg === 'relay ready' && l.leading === false), 'the second relay follows');
  t.equal(await relayMetric(a, 'outpost_relay_leading'), 1, '/metrics says which leads');
  t.equal(await relayMetric(b, 'outpost_relay_leading'), 0);
  t.notOk(b.stderr().includes('Admin token (shown once'), 'the second relay makes no admin token of its own');
  t.equal(b.ca, a.ca, 'both relays are one CA');

  // People and devices reach the relays through a load balancer.
  const lb = (await startHaproxy(t, [a, b].map((r) => Number(new URL(r.httpUrl).port)))).url('https');
  const cli = (...args: string[]) => runCli(RELAY_BIN, args, { ...a.env, OUTPOST_RELAY_URL: lb });
  const devices = [await enrollDevice(t, a, 'dev-1', 'site=lab', lb), await enrollDevice(t, b, 'dev-2', 'site=lab', lb), await enrollDevice(t, a, 'dev-3', 'site=lab', lb)];
  const agents: TestAgent[] = [];
  for (const d of devices) agents.push(await startAgent(t, d, d === devices[1] ? ['--accept-training'] : []));
  for (const relay of [a, b]) {
    await waitFor('every device online, seen by each relay', async () => {
      const res = await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices');
      return res.body.devices.length === 3 && res.body.devices.every((d) => d.online) ? true : undefined;
    });
  }

  const streamA = await openStream(a.httpUrl, a.token);
  const streamB = await openStream(b.httpUrl, b.token);
  await streamA.next('snapshot');
  await streamB.next('snapshot');

  // Pushed through the follower (the file lands in the shared folder), deployed through the leader,
  // then through the load balancer.
  t.equal((await b.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const first = await a.cli('deploy', 'linear:1', '--selector', 'site=lab', '--wait');
  t.equal(first.code, 0, first.stderr);
  t.equal((await cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear')).code, 0);

  // A staged rollout of version 2, one device at a time with a health window.
  const res = await cli('deploy', 'linear:2', '--selector', 'site=lab', '--strategy', 'rolling', '--batch', '1', '--health-window', '2s', '--json');
  t.equal(res.code, 0, res.stderr);
  const deployment = JSON.parse(res.stdout) as Deployment;
  const get = async (relay: TestRelay) => (await relay.api<Deployment>('GET', `/v1/deployments/${deployment.id}`)).body;
  await waitFor('the canary serving version 2', async () => ((await get(b)).devices.some((r) => r.state === 'serving' || r.state === 'healthy') ? true : undefined), 30_000);

  await t.test('both streams send the same events with the same seqs', async (t) => {
    const progress = (s: typeof streamA) => s.messages.filter((m) => m.type === 'deployment.progress' && m.deploymentId === deployment.id);
    await waitFor('the canary progress on both streams', () => (progress(streamA).length > 0 && progress(streamB).length > 0 ? true : undefined));
    const bySeq = new Map(streamA.messages.filter((m) => m.type !== 'snapshot').map((m) => [m.seq, JSON.stringify(m)]));
    const common = streamB.messages.filter((m) => m.type !== 'snapshot' && bySeq.has(m.seq));
    t.ok(common.length >= progress(streamB).length, 'the events of this rollout are on both');
    for (const m of common) t.equal(JSON.stringify(m), bySeq.get(m.seq), `seq ${m.seq} is the same event on both`);
    const seqs = streamB.messages.map((m) => m.seq);
    t.same(seqs, [...seqs].sort((x, y) => x - y), "B's seqs only grow");
  });

  // A job on dev-2 prints 100 lines, waits for a file, prints 100 more; it counts its starts.
  t.equal((await cli('targets', 'attach', devices[1]!.deviceId, '--training')).code, 0);
  const jobDir = tempDir(t, 'job');
  const control = tempDir(t, 'job-control');
  writeFileSync(join(jobDir, 'run.sh'), [
    `echo started >> ${join(control, 'starts')}`,
    'for i in $(seq 1 100); do echo "line $i"; done',
    `while [ ! -f ${join(control, 'go')} ]; do sleep 0.1; done`,
    'for i in $(seq 101 200); do echo "line $i"; done',
    '',
  ].join('\n'));
  const submitted = await cli('jobs', 'submit', jobDir, '--target', devices[1]!.deviceId, '--command', 'sh run.sh', '--json');
  t.equal(submitted.code, 0, submitted.stderr);
  const jobId = (JSON.parse(submitted.stdout) as { id: string }).id;
  await waitFor('the first 100 lines stored', async () => ((await b.cli('jobs', 'logs', jobId)).stdout.includes('line 100\n') ? true : undefined), 30_000);

  // The leader dies; the follower takes the lead and carries the rollout and the job on.
  const lastOnA = streamA.messages.at(-1)!.seq;
  await a.kill();
  await waitFor('the second relay to lead', () => (b.logs.some((l) => l.msg === 'this relay leads: it runs the job scheduler and the rollouts') ? true : undefined), 20_000);
  t.equal(await relayMetric(b, 'outpost_relay_leading'), 1, 'and its /metrics says so');
  // A report the dead relay took from the group and never handled is still retained: the new
  // leader reads every device's retained reports again.
  const reread = await waitFor('the new leader to read the retained reports again', () => b.logs.find((l) => l.msg === "read the devices' retained reports again" && l.why === 'this relay took the lead'));
  t.ok((reread.messages as number) >= 3, `every device's report was read (${String(reread.messages)})`);
  const done = await waitFor('the rollout to finish on the second relay', async () => {
    const d = await get(b);
    return d.state !== 'in-progress' ? d : undefined;
  }, 60_000).catch(async (err: unknown) => {
    throw new Error(`${(err as Error).message}; the deployment: ${JSON.stringify(await get(b))}`);
  });
  t.equal(done.state, 'succeeded', 'the rollout ended well');
  t.same(done.devices.map((r) => r.state), ['healthy', 'healthy', 'healthy']);
  const x = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
  const versions = await Promise.all(agents.map(async (agent) => (await agent.infer<{ model_version: string }>('linear', x)).body.model_version));
  t.same(versions, ['2', '2', '2'], 'every device serves version 2');

  await t.test('the job goes on to its end, run once, every line stored once', async (t) => {
    writeFileSync(join(control, 'go'), '');
    const job = await waitFor('the job to end', async () => {
      const j = (await b.api<{ state: string }>('GET', `/v1/jobs/${jobId}`)).body;
      return j.state === 'running' ? undefined : j;
    }, 60_000);
    t.equal(job.state, 'succeeded');
    t.equal(readFileSync(join(control, 'starts'), 'utf8'), 'started\n', 'the command ran once');
    const lines = (await b.cli('jobs', 'logs', jobId)).stdout.trim().split('\n');
    t.same(lines, Array.from({ length: 200 }, (_, i) => `line ${i + 1}`), 'each line once, in order');
    t.ok(existsSync(join(control, 'go')));
  });

  await t.test('a stream client of the dead relay catches up on the other with ?since=', async (t) => {
    const resumed = await openStream(b.httpUrl, b.token, `?since=${lastOnA}`);
    t.teardown(() => resumed.close());
    await resumed.next('deployment.state', (m) => m.deploymentId === deployment.id && m.state === 'succeeded');
    t.notOk(resumed.messages.some((m) => m.type === 'snapshot'), 'no snapshot: the events since are there');
    t.ok(resumed.messages.every((m: StreamMessage) => m.seq > lastOnA), 'only what came after');
  });

  await streamA.close();
  await streamB.close();
  t.equal(readFileSync(join(b.dataDir, 'tls/ca.crt'), 'utf8'), readFileSync(join(ca, 'ca.crt'), 'utf8'), "the CLI's copy of the CA is the shared one");
});
