// The agent keeps serving: restarted while the relay is down, or after an update that failed,
// it serves the version it served last from its cache before the relay answers.

import t from 'tap';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';

const X = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };

t.test('a restarted agent serves its last good version from the cache', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'edge');
  let agent = await startAgent(t, device);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  t.equal((await relay.cli('deploy', 'linear', '--device', device.deviceId, '--wait')).code, 0);

  await t.test('after an update that failed', async (t) => {
    // Version 2 loads but fails its self-test: version 1 keeps serving.
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'fails-at-runtime.onnx'), '--name', 'linear')).code, 0);
    t.equal((await relay.cli('deploy', 'linear:2', '--device', device.deviceId, '--force', '--wait')).code, 1, 'the update fails');
    await agent.stop();
    agent = await startAgent(t, device);
    await waitFor('linear serving again', async () => (await fetch(`${agent.httpUrl}/v2/models/linear/ready`)).status === 200);
    const res = await agent.infer<{ model_version: string }>('linear', X);
    t.equal(res.status, 200, `served after the restart (${JSON.stringify(res.body)})`);
    t.equal(res.body.model_version, '1', 'the last good version');
    await waitFor('version 2 tried again and failed', async () => {
      const d = (await relay.api<{ models: Array<{ name: string; version: number; state: string }> }>('GET', `/v1/devices/${device.deviceId}`)).body;
      return d.models.some((m) => m.name === 'linear' && m.version === 2 && m.state === 'failed') || undefined;
    });
    const after = await agent.infer<{ model_version: string }>('linear', X);
    t.equal(after.body.model_version, '1', `and version 1 still serves (${JSON.stringify(after.body)})`);
    t.equal((await fetch(`${agent.httpUrl}/v2/health/ready`)).status, 200, 'ready: every model that can serve, serves');
    t.equal((await relay.cli('deploy', 'linear:1', '--device', device.deviceId, '--wait')).code, 0, 'back on version 1');
  });

  await t.test('while the relay is down', async (t) => {
    await relay.kill();
    await agent.stop();
    agent = await startAgent(t, device);
    await waitFor('linear serving from the cache', async () => (await fetch(`${agent.httpUrl}/v2/models/linear/ready`)).status === 200);
    const res = await agent.infer<{ model_version: string }>('linear', X);
    t.equal(res.status, 200, 'serves with no relay to ask');
    t.equal(res.body.model_version, '1');
    t.equal((await fetch(`${agent.httpUrl}/v2/health/ready`)).status, 200);
  });
});
