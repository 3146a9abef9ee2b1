// Two relays on one NATS cluster and one PostgreSQL store: device messages reach the relays
// through a NATS queue group (each handled by one of them), both see the whole fleet, and when
// the leader is killed mid-rollout the other takes the lead, asks every device to report again
// (a report the dead relay took from the group is not lost) and carries the rollout to its end.

import t from 'tap';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir, type TestAgent, type TestRelay } from '../helpers/programs.js';
import { createDatabase, postgresMissing, startPostgres } from '../helpers/postgres.js';
import { needPackage } from '../helpers/system-package.js';
import { startNatsCluster } from '../helpers/nats.js';
import { relayMetric } from '../helpers/hostile.js';
import { waitFor } from '../helpers/wait.js';

const skip = needPackage('nats-server', 'nats-server') || postgresMissing();

interface Deployment {
  id: string;
  state: string;
  devices: Array<{ deviceId: string; state: string }>;
}

// The waits below add up past tap's default: a slow failure names its wait, not a tap timeout.
t.test('two relays on a NATS cluster: one fleet, and the leader dies mid-rollout', { skip, timeout: 360_000 }, async (t) => {
  const pg = (await startPostgres())!;
  t.teardown(() => pg.stop());
  const store = await createDatabase(pg.url, 'nats_workspace');
  const cluster = await startNatsCluster(t, 3);
  const shared = ['--store', store, ...cluster.relayArgs, '--artifacts-dir', tempDir(t, 'shared-artifacts'), '--ca-dir', tempDir(t, 'shared-ca')];
  const a = await startRelay(t, { extraArgs: shared });
  const bDir = tempDir(t, 'relay-b');
  copyFileSync(join(a.dataDir, 'admin.token'), join(bDir, 'admin.token'));
  const b = await startRelay(t, { dataDir: bDir, extraArgs: shared });
  t.equal(await relayMetric(a, 'outpost_relay_leading'), 1, 'the first relay leads');
  t.equal(await relayMetric(b, 'outpost_relay_leading'), 0);

  // Devices enroll through the relay that stays: it is where they download models from.
  const devices = [await enrollDevice(t, b, 'n-1', 'site=lab'), await enrollDevice(t, b, 'n-2', 'site=lab'), await enrollDevice(t, b, 'n-3', 'site=lab')];
  const agents: TestAgent[] = [];
  for (const d of devices) agents.push(await startAgent(t, d));
  const everyOnline = (relay: TestRelay) => waitFor(`every device online, seen by ${relay === a ? 'a' : 'b'}`, async () => {
    const res = await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices');
    return res.body.devices.length === 3 && res.body.devices.every((d) => d.online) ? true : undefined;
  }, 30_000);
  await everyOnline(a);
  await everyOnline(b);

  await t.test('both relays take device messages from the cluster', async (t) => {
    // Agents beat every second; the queue group hands each beat to one of them (that no beat is
    // handled twice shows in bench/fleet's heartbeats ingested against those sent).
    const handled = async (relay: TestRelay) => (await relayMetric(relay, 'outpost_mqtt_messages_in_total')) ?? 0;
    const [a0, b0] = [await handled(a), await handled(b)];
    await waitFor('both relays handling device messages', async () => ((await handled(a)) > a0 + 3 && (await handled(b)) > b0 + 3) || undefined, 30_000);
    t.pass('both relays take device messages from the group');
  });

  t.equal((await a.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const first = await b.cli('deploy', 'linear:1', '--selector', 'site=lab', '--wait');
  t.equal(first.code, 0, `a deployment made on the follower reaches every device: ${first.stderr}`);
  t.equal((await b.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear')).code, 0);

  const res = await a.cli('deploy', 'linear:2', '--selector', 'site=lab', '--strategy', 'rolling', '--batch', '1', '--health-window', '2s', '--json');
  t.equal(res.code, 0, res.stderr);
  const deployment = JSON.parse(res.stdout) as Deployment;
  const get = async () => (await b.api<Deployment>('GET', `/v1/deployments/${deployment.id}`)).body;
  const midway = await waitFor('the canary serving version 2', async () => {
    const d = await get();
    return d.devices.some((r) => r.state === 'serving' || r.state === 'healthy') ? d : undefined;
  }, 30_000);
  // Batches of one with a 2 s health window each: two devices are still to go.
  t.equal(midway.state, 'in-progress', 'the rollout is under way when the leader dies');
  t.ok(midway.devices.some((r) => r.state !== 'serving' && r.state !== 'healthy'), 'some devices have not had version 2 yet');

  await a.kill();
  await waitFor('b to lead', () => b.logs.some((l) => l.msg === 'this relay leads: it runs the job scheduler and the rollouts') || undefined, 20_000);
  await waitFor('b to ask every device to report again', () => b.logs.some((l) => l.msg === 'asked every device to report again') || undefined, 20_000);
  const done = await waitFor('the rollout to finish on b', async () => {
    const d = await get();
    return d.state !== 'in-progress' ? d : undefined;
  }, 90_000).catch(async (err: unknown) => {
    throw new Error(`${(err as Error).message}; the deployment: ${JSON.stringify(await get())}`);
  });
  t.equal(done.state, 'succeeded', 'the rollout ended well');
  t.same(done.devices.map((r) => r.state), ['healthy', 'healthy', 'healthy']);
  const x = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
  const versions = await Promise.all(agents.map(async (agent) => (await agent.infer<{ model_version: string }>('linear', x)).body.model_version));
  t.same(versions, ['2', '2', '2'], 'every device serves version 2');
});
