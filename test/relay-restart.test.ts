// Desired state, not commands: a relay that restarts (its broker's retained messages gone)
// republishes every device's desired state, and agents reconnect and carry on serving.

import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface DeviceView {
  online: boolean;
  models: Array<{ name: string; state: string }>;
}

t.test('a restarted relay and its agents converge again', async (t) => {
  const first = await startRelay(t);
  const d = await enrollDevice(t, first, 'steady');
  const agent = await startAgent(t, d);
  await first.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  t.equal((await first.cli('deploy', 'linear', '--device', d.deviceId, '--wait')).code, 0);

  await first.stop();
  const httpPort = new URL(first.httpUrl).port;
  const mqttPort = new URL(first.mqttUrl).port;
  const relay = await startRelay(t, { dataDir: first.dataDir, extraArgs: ['--http-port', httpPort, '--mqtt-port', mqttPort] });
  t.equal(relay.token, first.token, 'the admin token survives');
  t.match(first.stderr(), /Admin token \(shown once/, 'the first start printed it');
  t.notMatch(relay.stderr(), /Admin token/, 'and the second does not print it again');

  const device = await waitFor('the agent back online', async () => {
    const res = await relay.api<DeviceView>('GET', `/v1/devices/${d.deviceId}`);
    return res.body.online ? res.body : undefined;
  });
  t.match(device.models, [{ name: 'linear', state: 'serving' }]);
  const res = await agent.infer('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  t.equal(res.status, 200);

  // A new deployment after the restart reaches the agent through the new broker.
  await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear');
  const dep = await relay.cli('deploy', 'linear:2', '--device', d.deviceId, '--wait');
  t.equal(dep.code, 0, dep.stderr);
  const v2 = await agent.infer<{ model_version: string }>('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  t.equal(v2.body.model_version, '2');
});

t.test('the job queue survives a relay restart', async (t) => {
  const first = await startRelay(t);
  const dir = tempDir(t, 'gate');
  writeFileSync(join(dir, 'wait.sh'), 'while [ ! -f "$GATE" ]; do sleep 0.05; done\n');
  const blocker = JSON.parse((await first.cli('jobs', 'submit', dir, '--target', 'local', '--command', 'sh wait.sh', '--env', `GATE=${join(dir, 'never')}`, '--json')).stdout) as { id: string };
  const queued = JSON.parse((await first.cli('jobs', 'submit', dir, '--target', 'local', '--command', 'echo after-restart', '--json')).stdout) as { id: string; state: string };
  t.equal(queued.state, 'queued');
  await first.stop();
  const relay = await startRelay(t, { dataDir: first.dataDir });
  const done = await waitFor('the queued job to run after the restart', async () => {
    const j = (await relay.api<{ state: string }>('GET', `/v1/jobs/${queued.id}`)).body;
    return j.state === 'succeeded' ? j : undefined;
  });
  t.equal(done.state, 'succeeded');
  t.equal((await relay.cli('jobs', 'logs', queued.id)).stdout, 'after-restart\n');
  const lost = (await relay.api<{ state: string; runs: Array<{ error: string }> }>('GET', `/v1/jobs/${blocker.id}`)).body;
  t.equal(lost.state, 'failed');
  t.match(lost.runs[0]!.error, /the relay shut down while this run was going/);
});
