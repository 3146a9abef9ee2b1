// Staged rollouts: a canary that fails its self-test stops the rollout and rolls it back;
// a rolling deployment releases one batch at a time, each after the previous one stayed
// healthy; cancel stops it where it is; a relay killed mid-rollout resumes it.

import t from 'tap';
import { join } from 'node:path';
import type { StreamMessage } from '@outpost/shared';
import { FIXTURES, enrollDevice, startAgent, startRelay, type TestAgent } from './helpers/programs.js';
import { openStream } from './helpers/stream.js';
import { waitFor } from './helpers/wait.js';

interface Deployment {
  id: string;
  state: string;
  devices: Array<{ deviceId: string; state: string; reason: string | null }>;
}

t.test('staged rollouts', async (t) => {
  let relay = await startRelay(t);
  const devices = await Promise.all(['r1', 'r2', 'r3'].map((n) => enrollDevice(t, relay, n, 'site=lab')));
  const agents: TestAgent[] = [];
  for (const d of devices) agents.push(await startAgent(t, d));
  await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  const broken = JSON.parse((await relay.cli('models', 'push', join(FIXTURES, 'fails-at-runtime.onnx'), '--name', 'linear', '--json')).stdout) as { version: number };
  const good = JSON.parse((await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear', '--json')).stdout) as { version: number };
  t.equal((await relay.cli('deploy', 'linear:1', '--selector', 'site=lab', '--wait')).code, 0);
  const x = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
  const versions = async () => Promise.all(agents.map(async (a) => (await a.infer<{ model_version: string }>('linear', x)).body.model_version));
  const get = async (id: string) => (await relay.api<Deployment>('GET', `/v1/deployments/${id}`)).body;

  await t.test('a failing canary stops the rollout and rolls it back', async (t) => {
    const res = await relay.cli('deploy', `linear:${broken.version}`, '--selector', 'site=lab', '--strategy', 'rolling', '--canary', '1', '--force', '--wait');
    t.equal(res.code, 1, 'deploy --wait exits 1');
    t.match(res.stderr, /was rolled back: dev_\w+: self-test inference failed/);
    const id = /deployment (dep_\w+)/.exec(res.stderr)![1]!;
    const d = await get(id);
    t.equal(d.state, 'rolled-back');
    t.equal(d.devices.filter((r) => r.reason?.startsWith('self-test')).length, 1, 'only the canary ever got it');
    t.same(await versions(), ['1', '1', '1'], 'every device serves what it had');
  });

  await t.test('rolling: one device at a time, each after the previous stayed healthy', async (t) => {
    const stream = await openStream(relay.httpUrl, relay.token);
    t.teardown(() => stream.close());
    const res = await relay.cli('deploy', `linear:${good.version}`, '--selector', 'site=lab', '--strategy', 'rolling', '--batch', '1', '--health-window', '1s', '--wait', '--json');
    t.equal(res.code, 0, res.stderr);
    const d = JSON.parse(res.stdout) as Deployment;
    t.equal(d.state, 'succeeded');
    t.same(d.devices.map((r) => r.state), ['healthy', 'healthy', 'healthy']);
    const steps = stream.messages.filter((m): m is Extract<StreamMessage, { type: 'deployment.progress' }> => m.type === 'deployment.progress' && m.deploymentId === d.id);
    const released = steps.filter((m) => m.state === 'pending').map((m) => m.deviceId);
    t.equal(released.length, 3);
    for (let i = 1; i < released.length; i++) {
      const releasedAt = steps.findIndex((m) => m.state === 'pending' && m.deviceId === released[i]);
      const healthyAt = steps.findIndex((m) => m.state === 'healthy' && m.deviceId === released[i - 1]);
      t.ok(healthyAt >= 0 && healthyAt < releasedAt, `device ${i + 1} was released after device ${i} was healthy`);
    }
    t.same(await versions(), [String(good.version), String(good.version), String(good.version)]);
    // A healthy device still follows the deployment (it once fell back to the older one).
    const follows = (await relay.api<{ follows: Array<{ deploymentId: string }> }>('GET', `/v1/devices/${devices[0]!.deviceId}`)).body.follows;
    t.match(follows, [{ deploymentId: d.id }], 'a healthy device follows the deployment that made it healthy');
  });

  await t.test('cancel stops a rollout where it is', async (t) => {
    const res = JSON.parse((await relay.cli('deploy', 'linear:1', '--selector', 'site=lab', '--strategy', 'rolling', '--batch', '1', '--health-window', '30s', '--json')).stdout) as Deployment;
    await waitFor('the first device serving', async () => (await get(res.id)).devices.some((r) => r.state === 'serving') || undefined);
    const canceled = JSON.parse((await relay.cli('deployments', 'cancel', res.id, '--json')).stdout) as Deployment;
    t.equal(canceled.state, 'canceled');
    t.same(canceled.devices.map((r) => r.state).sort(), ['canceled', 'canceled', 'serving']);
    const v = await versions();
    t.equal(v.filter((s) => s === '1').length, 1, 'the device that had it keeps it');
    t.equal(v.filter((s) => s === String(good.version)).length, 2, 'the others never got it');
  });

  await t.test('a relay killed mid-rollout resumes it', async (t) => {
    const res = JSON.parse((await relay.cli('deploy', 'linear:1', '--selector', 'site=lab', '--strategy', 'rolling', '--batch', '1', '--health-window', '1s', '--json')).stdout) as Deployment;
    await waitFor('the first device serving', async () => (await get(res.id)).devices.some((r) => r.state === 'serving' || r.state === 'healthy') || undefined);
    const ports = ['--http-port', new URL(relay.httpUrl).port, '--mqtt-port', new URL(relay.mqttUrl).port];
    await relay.kill();
    relay = await startRelay(t, { dataDir: relay.dataDir, extraArgs: ports });
    const done = await waitFor('the rollout to finish after the restart', async () => {
      const d = await get(res.id);
      return d.state !== 'in-progress' ? d : undefined;
    }, 60_000);
    t.equal(done.state, 'succeeded');
    t.same(await versions(), ['1', '1', '1']);
  });
});
