// The mistakes a person makes when deploying, each refused or explained in one line: a new
// version whose signature changed, `deploy NAME` after a rollback, a selector that matches no
// device.

import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface Deployment {
  id: string;
  state: string;
}

t.test('deploy mistakes', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'edge');
  await startAgent(t, device);
  const dir = tempDir(t, 'samples');
  const clip = join(dir, 'clip.json');
  writeFileSync(clip, JSON.stringify({ inputs: [{ name: 'samples', shape: [1, 8], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }] }));
  const audio = join(FIXTURES, 'padded-audio.onnx');

  await t.test('a new version whose signature differs needs --allow-signature-change', async (t) => {
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'sig')).code, 0);
    const push = await relay.cli('models', 'push', audio, '--name', 'sig', '--sample', clip);
    t.equal(push.code, 1);
    t.match(push.stderr, /OUTPOST_ERR_SIGNATURE_CHANGED: the new version's signature differs from sig:1's: input x \(FP32\[\?,4\]\) is gone; input samples \(FP32\[1,\?\]\) is new/);
    t.match(push.stderr, /--allow-signature-change/);
    const allowed = await relay.cli('models', 'push', audio, '--name', 'sig', '--sample', clip, '--allow-signature-change');
    t.equal(allowed.code, 0, allowed.stderr);
    t.match(allowed.stdout, /^sig:2 /m);
  });

  await t.test('deploy NAME after a rollback does not send the rolled-back version again', async (t) => {
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'lin')).code, 0);
    t.equal((await relay.cli('deploy', 'lin', '--device', device.deviceId, '--wait')).code, 0);
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'lin')).code, 0);
    const v2 = JSON.parse((await relay.cli('deploy', 'lin', '--device', device.deviceId, '--wait', '--json')).stdout) as Deployment;
    t.equal((await relay.cli('deployments', 'rollback', v2.id)).code, 0, 'version 2 rolled back');
    const again = await relay.cli('deploy', 'lin', '--device', device.deviceId, '--wait', '--json');
    t.equal(again.code, 0, again.stderr);
    t.match(again.stderr, new RegExp(`deploying lin:1, the newest version not rolled back: lin:2 \\(rolled back in ${v2.id}\\); to send one of those again, name it`), 'it says which version it picked and why');
    t.equal((JSON.parse(again.stdout) as { version: number }).version, 1);
    const named = await relay.cli('deploy', 'lin:2', '--device', device.deviceId, '--wait', '--json');
    t.equal(named.code, 0, 'named explicitly, the rolled-back version goes out');
    t.equal((JSON.parse(named.stdout) as { version: number }).version, 2);
  });

  await t.test('a selector that matches no device is not a success', async (t) => {
    const none = await relay.cli('deploy', 'lin', '--selector', 'site=mars');
    t.equal(none.code, 1);
    t.match(none.stderr, /OUTPOST_ERR_NO_MATCHING_DEVICES: no device has the labels site=mars: .* --allow-empty/);
    const waiting = await relay.cli('deploy', 'lin', '--selector', 'site=mars', '--allow-empty', '--json');
    t.equal(waiting.code, 0, waiting.stderr);
    const d = JSON.parse(waiting.stdout) as Deployment;
    t.equal(d.state, 'waiting-for-devices', 'the deployment says it waits for devices');
    // A device that matches arrives: the deployment reaches it and succeeds.
    const rover = await enrollDevice(t, relay, 'rover', 'site=mars');
    await startAgent(t, rover);
    await waitFor('the waiting deployment to reach the new device', async () => (await relay.api<Deployment>('GET', `/v1/deployments/${d.id}`)).body.state === 'succeeded', 60_000);
    t.pass('it succeeds once a device matches');
  });
});
