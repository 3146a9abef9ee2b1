// Real models deploy: a model whose input carries meaning (audio that must be longer than its
// padding) cannot run on the synthetic input a signature gives; with a sample pushed beside it,
// the relay and the devices run their self-test on that sample instead, and the model serves.
// Around it, the mistakes a person makes with samples (one that does not fit, a model that
// fails on its own) and the self-test switched off. test/deploy-mistakes.test.ts has the rest.

import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';

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
    const absurd = write('absurd.json', { inputs: [{ name: 'samples', shape: [1, 1e12], datatype: 'FP32', data: [1] }] });
    const huge = await relay.cli('models', 'push', audio, '--name', 'audio-absurd', '--sample', absurd);
    t.equal(huge.code, 1, 'a sample claiming a trillion elements is refused');
    t.match(huge.stderr, /OUTPOST_ERR_TENSOR_INVALID: the sample does not fit the model/);
    const oversized = await relay.fetch(`${relay.httpUrl}/v1/samples`, {
      method: 'POST',
      headers: { authorization: `Bearer ${relay.token}`, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(17 * 1024 * 1024, 0x20),
    });
    t.equal(oversized.status, 413, 'a sample over 16 MiB is refused');
    const many = await Promise.all(Array.from({ length: 20 }, () => relay.fetch(`${relay.httpUrl}/v1/samples`, { method: 'POST', headers: { authorization: `Bearer ${relay.token}`, 'content-type': 'application/octet-stream' }, body: '{"inputs": [' })));
    t.same([...new Set(many.map((r) => r.status))], [400], 'a flood of broken samples gets a 400 each');
    t.equal((await relay.api('GET', '/v1/health')).status, 200, 'and the relay carries on');
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
});
