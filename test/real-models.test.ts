// Real models deploy: a model whose input carries meaning (audio that must be longer than its
// padding) cannot run on the synthetic input a signature gives; with a sample pushed beside it,
// the relay and the devices run their self-test on that sample instead, and the model serves.
// Around it, the mistakes a person makes: a sample that does not fit, a signature that changed,
// a version that was rolled back, a selector that matches nothing.

import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface Deployment {
  id: string;
  state: string;
  serving: Record<string, unknown> | null;
  devices: Array<{ deviceId: string; state: string; reason: string | null }>;
}

const CLIP = { inputs: [{ name: 'samples', shape: [1, 8], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }] };

t.test('models with meaningful inputs, and the mistakes around deploying them', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'edge');
  const agent = await startAgent(t, device);
  const dir = tempDir(t, 'samples');
  const write = (name: string, body: unknown) => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(body));
    return file;
  };
  const clip = write('clip.json', CLIP);
  const audio = join(FIXTURES, 'padded-audio.onnx');
  const reported = async (model: string) =>
    (await relay.api<{ models: Array<{ name: string; state: string; selfTest?: string; reason?: string }> }>('GET', `/v1/devices/${device.deviceId}`)).body.models.find((m) => m.name === model);

  await t.test('without a sample it is pushed with a warning and cannot be deployed by accident', async (t) => {
    const push = await relay.cli('models', 'push', audio, '--name', 'audio');
    t.equal(push.code, 0, 'the push is taken');
    t.match(push.stdout, /self-test FAILED on a synthetic input built from its signature: .*Pad reflect/, 'it says the self-test failed, on what, and why');
    t.match(push.stdout, /--sample REQUEST\.json/, 'and how to give a sample');
    t.match(push.stderr, /warning: audio:1 failed its self-test; deploying it needs --self-test off .* or --force/);
    const deploy = await relay.cli('deploy', 'audio', '--device', device.deviceId);
    t.equal(deploy.code, 1, 'a deploy is refused');
    t.match(deploy.stderr, /OUTPOST_ERR_SELF_TEST_FAILED: audio:1 failed its self-test at push .*push it again with --sample REQUEST\.json, or deploy with --self-test off/);
  });

  await t.test('with a sample the relay and the device test it on the sample, and it serves', async (t) => {
    const push = await relay.cli('models', 'push', audio, '--name', 'audio', '--sample', clip);
    t.equal(push.code, 0, push.stderr);
    t.match(push.stdout, /unchanged: these bytes are already audio:1/, 'the same bytes: the version gains the sample');
    t.match(push.stdout, /self-test passed on its sample/);
    const shown = (await relay.api<{ sample: { sha256: string } | null; selfTest: { input: string; ok: boolean } }>('GET', '/v1/models/audio/versions/1')).body;
    t.ok(shown.sample, 'the version keeps its sample');
    t.same(shown.selfTest, { input: 'sample', ok: true });
    const deploy = await relay.cli('deploy', 'audio', '--device', device.deviceId, '--wait');
    t.equal(deploy.code, 0, deploy.stderr);
    t.equal((await reported('audio'))?.selfTest, 'sample', 'the device reports its self-test ran on the sample');
    const res = await agent.infer<{ outputs: Array<{ data: number[] }> }>('audio', CLIP);
    t.equal(res.status, 200);
    // 1..8 padded by reflection: 5 4 3 2 | 1 … 8 | 7 6 5 4.
    t.same(res.body.outputs[0]!.data, [72], 'and answers real clips');
  });

  await t.test('a sample that does not fit the model is refused at push', async (t) => {
    const push = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'lin', '--sample', clip);
    t.equal(push.code, 1);
    t.match(push.stderr, /OUTPOST_ERR_TENSOR_INVALID: the sample does not fit the model: unknown input "samples"/);
    t.equal((await relay.api('GET', '/v1/models/lin')).status, 404, 'nothing was registered');
    const notJson = join(dir, 'broken.json');
    writeFileSync(notJson, '{"inputs": [');
    const broken = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'lin', '--sample', notJson);
    t.equal(broken.code, 1);
    t.match(broken.stderr, /the sample is not JSON/);
  });

  await t.test('--self-test off deploys a model no sample is given for, and shows it', async (t) => {
    t.equal((await relay.cli('models', 'push', audio, '--name', 'audio-raw')).code, 0);
    const deploy = await relay.cli('deploy', 'audio-raw', '--device', device.deviceId, '--self-test', 'off', '--wait', '--json');
    t.equal(deploy.code, 0, deploy.stderr);
    t.same((JSON.parse(deploy.stdout) as Deployment).serving, { selfTest: 'off' }, 'the deployment shows it');
    t.equal((await reported('audio-raw'))?.selfTest, 'off');
    t.equal((await agent.infer('audio-raw', CLIP)).status, 200, 'and it serves');
    t.equal((await relay.cli('deploy', 'audio-raw', '--device', device.deviceId, '--self-test', 'maybe')).code, 1, 'a wrong value is refused');
  });

  await t.test('a model that fails on its own sample still fails its canary', async (t) => {
    // Reshape to [3, -1] needs a multiple of 3 rows: this one-row sample makes it fail.
    const oneRow = write('one-row.json', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    const push = await relay.cli('models', 'push', join(FIXTURES, 'fails-at-runtime.onnx'), '--name', 'brittle', '--sample', oneRow);
    t.equal(push.code, 0);
    t.match(push.stdout, /self-test FAILED on its sample: the model fails on the version's sample/);
    const deploy = await relay.cli('deploy', 'brittle', '--device', device.deviceId, '--force', '--strategy', 'rolling', '--canary', '1', '--wait', '--json');
    t.equal(deploy.code, 1, 'the rollout does not succeed');
    const d = (await relay.api<Deployment[]>('GET', '/v1/deployments')).body as unknown as { deployments: Deployment[] };
    const last = d.deployments[0]!;
    t.match(last.state, /^(rolled-back|failed)$/, `the canary failed: the rollout ended ${last.state}`);
    t.equal(last.devices[0]!.state, 'failed', 'on the canary device');
    t.match(last.devices[0]!.reason, /fails on the version's sample/, 'the device says it failed on the sample');
    t.equal((await agent.infer('audio', CLIP)).status, 200, 'the device still serves its other models');
  });

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
