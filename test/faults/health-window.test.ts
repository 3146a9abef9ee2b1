// Faults inside a rollout's health window. The device reaches the broker through a proxy:
// cut off mid-window it is not taken for healthy (its window starts again when it is back);
// a relay killed mid-window picks the rollout up where it was. Each rollout succeeds with no
// device on a wrong version and nothing rolled back.

import t from 'tap';
import { join } from 'node:path';
import { FIXTURES, closedPort, enrollDevice, startAgent, startRelay, type TestRelay } from '../helpers/programs.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { holdsFor, waitFor } from '../helpers/wait.js';

interface Deployment {
  id: string;
  state: string;
  devices: Array<{ deviceId: string; state: string; updatedAt: string | null }>;
}

const WINDOW_MS = 3000;
const X = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };

t.test('faults inside a health window', async (t) => {
  // The broker port is chosen first so that the proxy (and the relay, restarted) keep it.
  const mqttPort = await closedPort();
  const proxy = await startProxy(t, mqttPort);
  const relayArgs = ['--mqtt-port', String(mqttPort), '--advertise-mqtt-url', proxy.url('mqtts')];
  let relay: TestRelay = await startRelay(t, { extraArgs: relayArgs });
  const device = await enrollDevice(t, relay, 'edge');
  const agent = await startAgent(t, device);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear')).code, 0);
  const deploy = async (version: number) => {
    const res = await relay.cli('deploy', `linear:${version}`, '--device', device.deviceId, '--strategy', 'rolling', '--failure-threshold', '0', '--health-window', `${WINDOW_MS / 1000}s`, '--json');
    t.equal(res.code, 0, res.stderr);
    return (JSON.parse(res.stdout) as Deployment).id;
  };
  const deployment = async (id: string) => (await relay.api<Deployment>('GET', `/v1/deployments/${id}`)).body;
  const member = async (id: string) => (await deployment(id)).devices[0]!;
  const online = async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${device.deviceId}`)).body.online;
  const serves = async (version: string) => (await agent.infer<{ model_version: string }>('linear', X)).body.model_version === version;

  await t.test('a device cut off from the broker mid-window is not healthy until a whole window after its return', async (t) => {
    const id = await deploy(1);
    await waitFor('the device serving, its window started', async () => (await member(id)).state === 'serving');
    proxy.cut();
    await waitFor('the relay to see the device offline', async () => !(await online()));
    const checks = await holdsFor('the device not taken for healthy while cut off', async () => (await member(id)).state === 'serving', WINDOW_MS + 1500);
    t.pass(`not healthy through ${checks} checks over more than its window while cut off`);
    const restoredAt = Date.now();
    proxy.restore();
    await waitFor('the device back online', online);
    const done = await waitFor('the rollout to end', async () => {
      const d = await deployment(id);
      return d.state === 'succeeded' || d.state === 'rolled-back' || d.state === 'failed' ? d : undefined;
    });
    t.equal(done.state, 'succeeded', 'the rollout succeeded');
    const healthyAt = Date.parse(done.devices[0]!.updatedAt!);
    t.ok(healthyAt >= restoredAt + WINDOW_MS, `healthy ${healthyAt - restoredAt} ms after its return: a whole window of heartbeats after it`);
    t.ok(await serves('1'), 'the device serves version 1');
  });

  await t.test('the relay killed mid-window resumes the rollout', async (t) => {
    const id = await deploy(2);
    await waitFor('the device serving version 2, its window started', async () => (await member(id)).state === 'serving');
    await relay.kill();
    relay = await startRelay(t, { dataDir: relay.dataDir, extraArgs: relayArgs });
    const done = await waitFor('the rollout to end', async () => {
      const d = await deployment(id);
      return d.state === 'succeeded' || d.state === 'rolled-back' || d.state === 'failed' ? d : undefined;
    }, 30_000);
    t.equal(done.state, 'succeeded', 'the rollout succeeded after the restart, not rolled back');
    t.ok(await serves('2'), 'the device serves version 2');
  });
});
