// Devices by name wherever an id is taken (devices, deploy --device, jobs submit --target,
// targets attach/detach, the API): an exact id wins, then an exact name; a name several devices
// share lists their ids; a typo of a device or model name gets the nearest one suggested.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface DeviceView {
  id: string;
  name: string;
  labels: Record<string, string>;
  online: boolean;
}

t.test('devices by name', async (t) => {
  const relay = await startRelay(t);
  const one = await enrollDevice(t, relay, 'device1');
  const two = await enrollDevice(t, relay, 'device2');
  const camA = await enrollDevice(t, relay, 'cam');
  const camB = await enrollDevice(t, relay, 'cam');
  // A device whose name is another device's id: the id wins.
  const impostor = await enrollDevice(t, relay, one.deviceId);
  const longName = `caméra ${'é'.repeat(120)}`;
  // Enrolled over the API (the agent's own call) rather than the CLI, whose data dir is named after the device.
  const token = (JSON.parse((await relay.cli('tokens', 'enroll', '--json')).stdout) as { token: string }).token;
  const long = (await relay.api<{ deviceId: string }>('POST', '/v1/enroll', { name: longName }, token)).body;
  await startAgent(t, one, ['--accept-training']);
  await waitFor('device1 online', async () => (await relay.api<DeviceView>('GET', `/v1/devices/${one.deviceId}`)).body.online || undefined);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const ambiguous = new RegExp(`^error: OUTPOST_ERR_AMBIGUOUS: 2 devices are named "cam": (${camA.deviceId}, ${camB.deviceId}|${camB.deviceId}, ${camA.deviceId}); name one by its id\\n$`);

  await t.test('devices show, label, remove', async (t) => {
    const show = await relay.cli('devices', 'show', 'device1', '--json');
    t.equal(show.code, 0, show.stderr);
    t.equal((JSON.parse(show.stdout) as DeviceView).id, one.deviceId);
    t.match((await relay.cli('devices', 'show', 'device2')).stdout, new RegExp(`^id {9}${two.deviceId}$`, 'm'));
    const byId = JSON.parse((await relay.cli('devices', 'show', one.deviceId, '--json')).stdout) as DeviceView;
    t.equal(byId.name, 'device1', `an exact id wins over the name of ${impostor.deviceId}`);

    const cam = await relay.cli('devices', 'show', 'cam');
    t.equal(cam.code, 1);
    t.match(cam.stderr, ambiguous, 'a shared name lists the devices that have it');
    const typo = await relay.cli('devices', 'show', 'devce1');
    t.equal(typo.code, 1);
    t.equal(typo.stderr, 'error: OUTPOST_ERR_DEVICE_NOT_FOUND: no device "devce1"; did you mean device1? (list them with outpost-relay devices list)\n');
    t.equal((await relay.cli('devices', 'show', 'device3')).stderr, 'error: OUTPOST_ERR_DEVICE_NOT_FOUND: no device "device3"; did you mean device1 or device2? (list them with outpost-relay devices list)\n');
    t.equal((await relay.cli('devices', 'show', 'zzzzzzzz')).stderr, 'error: OUTPOST_ERR_DEVICE_NOT_FOUND: no device "zzzzzzzz": list them with outpost-relay devices list\n');

    const label = await relay.cli('devices', 'label', 'device2', 'site=lab');
    t.equal(label.code, 0, label.stderr);
    t.equal(label.stdout, `${two.deviceId}: site=lab\n`);
    t.match((await relay.cli('devices', 'label', 'cam', 'site=lab')).stderr, ambiguous);

    t.match((await relay.cli('devices', 'remove', 'cam')).stderr, ambiguous);
    const removed = await relay.cli('devices', 'remove', 'device2', '--json');
    t.equal(removed.code, 0, removed.stderr);
    t.same(JSON.parse(removed.stdout), { removed: two.deviceId });
    t.equal((await relay.api('GET', `/v1/devices/${two.deviceId}`)).status, 404, 'the device itself is gone');
  });

  await t.test('the API takes names too', async (t) => {
    const res = await relay.api<DeviceView>('GET', '/v1/devices/device1');
    t.equal(res.status, 200);
    t.equal(res.body.id, one.deviceId);
    const cam = await relay.api<{ error: { code: string } }>('GET', '/v1/devices/cam');
    t.equal(cam.status, 400);
    t.equal(cam.body.error.code, 'OUTPOST_ERR_AMBIGUOUS');
    const health = await relay.api<{ deviceId: string }>('GET', '/v1/devices/device1/health');
    t.equal(health.body.deviceId, one.deviceId);
    const byLongName = await relay.api<DeviceView>('GET', `/v1/devices/${encodeURIComponent(longName)}`);
    t.equal(byLongName.body.id, long.deviceId, 'a name of 127 characters, percent-encoded, fits');
    t.equal((await relay.api('GET', `/v1/devices/${'x'.repeat(129)}`)).status, 400, 'a ref longer than any name is refused by the schema');
  });

  await t.test('deploy --device NAME, and model typos', async (t) => {
    const dep = await relay.cli('deploy', 'linear', '--device', 'device1', '--device', one.deviceId, '--json');
    t.equal(dep.code, 0, dep.stderr);
    t.same((JSON.parse(dep.stdout) as { devices: Array<{ deviceId: string }> }).devices.map((d) => d.deviceId), [one.deviceId], 'a name and the id of one device are one row');
    t.equal((await relay.cli('deploy', 'linear', '--device', 'devce1')).stderr, 'error: OUTPOST_ERR_DEVICE_NOT_FOUND: no device "devce1"; did you mean device1? (list them with outpost-relay devices list)\n');
    t.match((await relay.cli('deploy', 'linear', '--device', 'cam')).stderr, ambiguous);
    t.equal((await relay.cli('deploy', 'lienar', '--device', 'device1')).stderr, 'error: OUTPOST_ERR_MODEL_NOT_FOUND: no model "lienar"; did you mean linear?\n');
    t.equal((await relay.cli('deploy', 'linear:7', '--device', 'device1')).stderr, 'error: OUTPOST_ERR_MODEL_NOT_FOUND: no version 7 of model "linear": its latest is 1 (outpost-relay models show linear)\n');
    t.equal((await relay.cli('deploy', 'resnet', '--device', 'device1')).stderr, 'error: OUTPOST_ERR_MODEL_NOT_FOUND: no model "resnet": push it first (outpost-relay models push FILE --name resnet)\n');
    t.equal((await relay.cli('models', 'show', 'lienar')).stderr, 'error: OUTPOST_ERR_MODEL_NOT_FOUND: no model "lienar"; did you mean linear?\n');
  });

  await t.test('targets attach/detach NAME and jobs submit --target NAME', async (t) => {
    const bundle = tempDir(t, 'bundle');
    writeFileSync(join(bundle, 'hello.sh'), 'echo hello from $OUTPOST_RANK\n');
    const typo = await relay.cli('jobs', 'submit', bundle, '--target', 'devce1', '--command', 'sh hello.sh');
    t.equal(typo.stderr, 'error: OUTPOST_ERR_DEVICE_NOT_FOUND: no device "devce1"; did you mean device1? (use local, a device id or name, or a selector k=v,...)\n');

    const attach = await relay.cli('targets', 'attach', 'device1', '--training');
    t.equal(attach.code, 0, attach.stderr);
    t.equal(attach.stdout, `${one.deviceId} attached for training\n`);
    const job = await relay.cli('jobs', 'submit', bundle, '--target', 'device1', '--command', 'sh hello.sh', '--follow', '--json');
    t.equal(job.code, 0, job.stderr);
    const done = JSON.parse(job.stdout) as { state: string; target: string; runs: Array<{ target: string }> };
    t.equal(done.state, 'succeeded');
    t.equal(done.runs[0]!.target, one.deviceId, 'the job runs on the device the name resolves to');
    t.match(job.stderr, /hello from 0/);

    const detach = await relay.cli('targets', 'detach', 'device1', '--json');
    t.equal(detach.code, 0, detach.stderr);
    t.match(JSON.parse(detach.stdout), { name: one.deviceId, attached: false });
    t.match((await relay.cli('targets', 'attach', 'cam', '--training')).stderr, ambiguous);
  });
});
