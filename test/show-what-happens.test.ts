// What a person looks for when something is off: `deployments show` explains a staged rollout
// (strategy, stage, canary, the health window left per device, device names, why a device
// waits); `devices show` gives each model's last error with its time, and an offline device's
// models as what it last reported.

import t from 'tap';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface Detail {
  id: string;
  stage?: string;
  canary?: string[];
  devices: Array<{ deviceId: string; name: string | null; state: string; why?: string; healthWindowLeftMs?: number }>;
}

t.test('deployments show and devices show explain what is going on', async (t) => {
  const relay = await startRelay(t);
  const first = await enrollDevice(t, relay, 'kiosk-1', 'site=lab');
  const second = await enrollDevice(t, relay, 'kiosk-2', 'site=lab');
  const agentA = await startAgent(t, first);
  await startAgent(t, second);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);

  await t.test('a staged rollout: stage, canary, window left, why the other device waits', async (t) => {
    const dep = JSON.parse((await relay.cli('deploy', 'linear', '--device', first.deviceId, '--device', second.deviceId, '--strategy', 'rolling', '--canary', '1', '--health-window', '1m', '--json')).stdout) as { id: string };
    const detail = await waitFor('the canary serving in its window', async () => {
      const d = (await relay.api<Detail>('GET', `/v1/deployments/${dep.id}`)).body;
      return d.devices.some((x) => x.healthWindowLeftMs !== undefined) ? d : undefined;
    });
    t.equal(detail.stage, 'canary');
    t.equal(detail.canary?.length, 1, 'one device is the canary');
    const canaryId = detail.canary![0]!;
    const [canaryName, otherName, otherId] = canaryId === first.deviceId ? ['kiosk-1', 'kiosk-2', second.deviceId] : ['kiosk-2', 'kiosk-1', first.deviceId];
    const canary = detail.devices.find((x) => x.deviceId === canaryId)!;
    t.equal(canary.name, canaryName, 'devices are named');
    t.ok(canary.healthWindowLeftMs! > 0 && canary.healthWindowLeftMs! <= 60_000, `${canary.healthWindowLeftMs} ms of the window left`);
    const other = detail.devices.find((x) => x.deviceId === otherId)!;
    t.equal(other.state, 'waiting');
    t.match(other.why, /waiting for the canary: 1 device\(s\) not yet serving through their health window/);
    const show = await relay.cli('deployments', 'show', dep.id);
    t.match(show.stdout, /strategy rolling, batch 1, canary 1, failure threshold 0, health window 60s/);
    t.match(show.stdout, new RegExp(`stage    canary \\(canary: ${canaryId}\\)`));
    t.match(show.stdout, new RegExp(`${canaryName}\\s+serving .*\\d+s of its health window left`));
    t.match(show.stdout, new RegExp(`${otherName}\\s+waiting .*waiting for the canary`));
    t.equal((await relay.cli('deployments', 'cancel', dep.id)).code, 0);
  });

  await t.test("devices show: each model's last error with its time; an offline device's last report", async (t) => {
    // Reshape to [3, -1] fails on one row: a model that serves but fails some requests.
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'fails-at-runtime.onnx'), '--name', 'brittle')).code, 0);
    t.equal((await relay.cli('deploy', 'brittle', '--device', first.deviceId, '--self-test', 'off', '--wait')).code, 0);
    const bad = await agentA.infer('brittle', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    t.equal(bad.status, 500);
    const shown = await waitFor('the heartbeat with the last error', async () => {
      const out = (await relay.cli('devices', 'show', first.deviceId)).stdout;
      return /last inference error/.test(out) ? out : undefined;
    });
    t.match(shown, /brittle:1 serving.*1 errors.*\n\s+last inference error \d{4}-\d\d-\d\dT[\d:.]+Z: onnxruntime failed: .*Reshape/, 'the error, its time and what onnxruntime said');
    await agentA.kill();
    await waitFor('the device offline', async () => !(await relay.api<{ online: boolean }>('GET', `/v1/devices/${first.deviceId}`)).body.online);
    const offline = (await relay.cli('devices', 'show', first.deviceId)).stdout;
    t.match(offline, /brittle:1 last reported serving, last seen \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+s ago\)/, 'an offline device shows what it last reported, with the time');
    t.notMatch(offline, /^\s+brittle:1 serving/m, 'not as if it were serving now');
  });
});
