// A person's first hour with Outpost: start a relay, enroll two devices, push models, deploy,
// get predictions, and see each kind of bad input refused without breaking anything.

import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_BIN, FIXTURES, enrollDevice, runCli, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { referenceInfer, type JsonTensor } from './helpers/reference.js';
import { waitFor } from './helpers/wait.js';

interface InferResponse {
  model_name: string;
  model_version: string;
  outputs: JsonTensor[];
}
interface ErrorResponse {
  error: string;
  code: string;
}
interface DeviceView {
  id: string;
  online: boolean;
  models: Array<{ name: string; version: number; state: string; reason?: string; serving?: { version: number } }>;
  health: { models: Record<string, { requests: number; errors: number; rejected?: number }> } | null;
}
interface DeploymentView {
  id: string;
  state: string;
  devices: Array<{ deviceId: string; state: string; reason: string | null }>;
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

t.test('enroll two devices, push, deploy, infer', async (t) => {
  // No scheduled file check: the corrupt-file step below is about the check on load (a check
  // after start, 30 s in, would find it first; test/faults/corrupt-artifact covers that one).
  const relay = await startRelay(t, { extraArgs: ['--artifact-check-interval', '0'] });
  const a = await enrollDevice(t, relay, 'alpha', 'site=lab');
  const b = await enrollDevice(t, relay, 'beta');
  const agentA = await startAgent(t, a);
  const agentB = await startAgent(t, b);

  await t.test('devices come online with their labels', async (t) => {
    await waitFor('both devices online', async () => {
      const res = await relay.api<{ devices: DeviceView[] }>('GET', '/v1/devices');
      return res.body.devices.filter((d) => d.online).length === 2 || undefined;
    });
    const list = await relay.cli('devices', 'list', '--json');
    t.equal(list.code, 0);
    const devices = JSON.parse(list.stdout) as Array<{ id: string; name: string; labels: Record<string, string> }>;
    t.same(devices.map((d) => d.name).sort(), ['alpha', 'beta']);
    t.same(devices.find((d) => d.name === 'alpha')!.labels, { site: 'lab' });
  });

  await t.test('models push reads the signature and refuses what is not ONNX', async (t) => {
    const linear = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear', '--json');
    t.equal(linear.code, 0, linear.stderr);
    const lv = JSON.parse(linear.stdout) as { version: number; sha256: string; signature: unknown };
    t.equal(lv.version, 1);
    t.equal(lv.sha256, sha256(join(FIXTURES, 'linear.onnx')));
    t.same(lv.signature, { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }] });

    const multi = await relay.cli('models', 'push', join(FIXTURES, 'multi.onnx'), '--name', 'multi', '--json');
    t.equal(multi.code, 0, multi.stderr);
    t.same((JSON.parse(multi.stdout) as { signature: { inputs: unknown[] } }).signature.inputs, [
      { name: 'a', datatype: 'FP32', shape: [-1, 3] },
      { name: 'b', datatype: 'FP32', shape: [-1, 3] },
      { name: 'k', datatype: 'INT64', shape: [] },
    ]);

    const junk = join(tempDir(t, 'junk'), 'model.onnx');
    writeFileSync(junk, 'this is not a model at all');
    const bad = await relay.cli('models', 'push', junk, '--name', 'linear');
    t.not(bad.code, 0);
    t.match(bad.stderr, /^error: OUTPOST_ERR_MODEL_INVALID: not a loadable ONNX model/m);
    t.notMatch(bad.stderr, /staging/, 'the message does not leak server paths');

    const empty = join(tempDir(t, 'empty'), 'empty.onnx');
    writeFileSync(empty, '');
    t.match((await relay.cli('models', 'push', empty, '--name', 'linear')).stderr, /OUTPOST_ERR_MODEL_INVALID: the file is empty/);

    const show = await relay.cli('models', 'show', 'linear', '--json');
    t.equal((JSON.parse(show.stdout) as { versions: unknown[] }).versions.length, 1, 'refused uploads registered nothing');
    const again = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear', '--json');
    t.equal((JSON.parse(again.stdout) as { version: number; created: boolean }).created, false, 'the same bytes do not make a new version');
  });

  await t.test('deploy --wait, then inference equals in-process onnxruntime', async (t) => {
    const d1 = await relay.cli('deploy', 'linear', '--device', a.deviceId, '--wait', '--json');
    t.equal(d1.code, 0, d1.stderr);
    t.equal((JSON.parse(d1.stdout) as DeploymentView).state, 'succeeded');
    const d2 = await relay.cli('deploy', 'multi:1', '--device', a.deviceId, '--device', b.deviceId, '--wait', '--json');
    t.equal(d2.code, 0, d2.stderr);
    const dep = JSON.parse(d2.stdout) as DeploymentView;
    t.same(dep.devices.map((x) => x.state), ['serving', 'serving']);

    const x: JsonTensor = { name: 'x', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, -0.5, 0.25, 8, -3] };
    const res = await agentA.infer<InferResponse>('linear', { id: 'req-1', inputs: [x] });
    t.equal(res.status, 200);
    t.equal(res.body.model_version, '1');
    t.same(res.body.outputs, await referenceInfer(join(FIXTURES, 'linear.onnx'), [x]));

    const inputs: JsonTensor[] = [
      { name: 'a', shape: [1, 3], datatype: 'FP32', data: [1.5, -2, 3] },
      { name: 'b', shape: [1, 3], datatype: 'FP32', data: [0.5, 0.5, 0.5] },
      { name: 'k', shape: [], datatype: 'INT64', data: [7] },
    ];
    const m = await agentB.infer<InferResponse>('multi', { inputs });
    t.equal(m.status, 200);
    t.same(m.body.outputs, await referenceInfer(join(FIXTURES, 'multi.onnx'), inputs));
    t.same(m.body.outputs.find((o) => o.name === 'k_next'), { name: 'k_next', datatype: 'INT64', shape: [], data: [8] });

    const only = await agentB.infer<InferResponse>('multi', { inputs, outputs: [{ name: 'sum' }] });
    t.same(only.body.outputs.map((o) => o.name), ['sum'], 'requested outputs only');

    const meta = await (await fetch(`${agentB.httpUrl}/v2/models/multi`)).json();
    t.same(meta, {
      name: 'multi',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [-1, 3] },
        { name: 'b', datatype: 'FP32', shape: [-1, 3] },
        { name: 'k', datatype: 'INT64', shape: [] },
      ],
      outputs: [
        { name: 'sum', datatype: 'FP32', shape: [-1, 3] },
        { name: 'scaled', datatype: 'FP32', shape: [-1, 3] },
        { name: 'k_next', datatype: 'INT64', shape: [] },
      ],
    });
    t.equal((await fetch(`${agentB.httpUrl}/v2/models/multi/ready`)).status, 200);
    t.equal((await fetch(`${agentB.httpUrl}/v2/health/ready`)).status, 200);
    t.equal((await fetch(`${agentB.httpUrl}/v2/health/live`)).status, 200);
    t.equal((await fetch(`${agentB.httpUrl}/v2/models/linear/ready`)).status, 404, 'linear is not deployed to beta');
  });

  await t.test('bad tensors get a 400 naming the problem, and serving goes on', async (t) => {
    const good = { name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] };
    const cases: Array<[string, unknown, RegExp]> = [
      ['wrong shape', { inputs: [{ ...good, shape: [1, 3], data: [1, 2, 3] }] }, /input "x": shape \[1,3\] does not match the model's \[-1,4\] at dimension 1/],
      ['wrong rank', { inputs: [{ ...good, shape: [4] }] }, /has rank 1, the model expects \[-1,4\]/],
      ['wrong datatype', { inputs: [{ ...good, datatype: 'INT64' }] }, /datatype "INT64" does not match the model's FP32/],
      ['wrong length', { inputs: [{ ...good, data: [1, 2, 3] }] }, /shape \[1,4\] needs 4 elements, got 3/],
      ['non-numbers', { inputs: [{ ...good, data: [1, 2, 'three', 4] }] }, /element 2 is "three", FP32 data must be numbers/],
      ['unknown input', { inputs: [good, { ...good, name: 'z' }] }, /unknown input "z"/],
      ['missing input', { inputs: [] }, /missing input "x"/],
      ['no inputs', { foo: 1 }, /"inputs" must be an array/],
      ['negative dim', { inputs: [{ ...good, shape: [-1, 4] }] }, /non-negative integers/],
    ];
    for (const [what, body, message] of cases) {
      const res = await agentA.infer<ErrorResponse>('linear', body);
      t.equal(res.status, 400, what);
      t.equal(res.body.code, 'OUTPOST_ERR_TENSOR_INVALID', what);
      t.match(res.body.error, message, what);
    }
    const scalar = await agentA.infer<ErrorResponse>('multi', {
      inputs: [
        { name: 'a', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] },
        { name: 'b', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] },
        { name: 'k', shape: [], datatype: 'INT64', data: [1.5] },
      ],
    });
    t.equal(scalar.status, 400);
    t.match(scalar.body.error, /element 0 is 1.5, not an integer in the INT64 range/);

    const notJson = await agentA.infer<ErrorResponse>('linear', '{"inputs": [');
    t.equal(notJson.status, 400, 'malformed JSON');
    const unknown = await agentA.infer<ErrorResponse>('nope', { inputs: [good] });
    t.equal(unknown.status, 404);
    t.equal(unknown.body.code, 'OUTPOST_ERR_MODEL_NOT_FOUND');
    t.match(unknown.body.error, /no model "nope" on this device; it serves "linear", "multi"/);
    const wrongVersion = await fetch(`${agentA.httpUrl}/v2/models/linear/versions/9/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [good] }) });
    t.equal(wrongVersion.status, 404);
    const rightVersion = await fetch(`${agentA.httpUrl}/v2/models/linear/versions/1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [good] }) });
    t.equal(rightVersion.status, 200, 'after all that, the model still serves');

    const health = await waitFor('a heartbeat counting the refused requests', async () => {
      const d = (await relay.api<DeviceView>('GET', `/v1/devices/${a.deviceId}`)).body;
      const stats = d.health?.models.linear;
      return stats && (stats.rejected ?? 0) >= cases.length ? stats : undefined;
    });
    t.equal(health.errors, 0, "malformed requests are the caller's mistake, not the model's failures");
    t.ok(health.requests >= 1, 'the good requests are counted');
  });

  await t.test('a new version swaps in; a corrupt one fails and the old one keeps serving', async (t) => {
    const v2 = await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear', '--json');
    const v2sha = (JSON.parse(v2.stdout) as { sha256: string }).sha256;
    const dep = await relay.cli('deploy', 'linear:2', '--device', a.deviceId, '--wait');
    t.equal(dep.code, 0, dep.stderr);
    const x: JsonTensor = { name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 1, 1, 1] };
    const res = await agentA.infer<InferResponse>('linear', { inputs: [x] });
    t.equal(res.body.model_version, '2');
    t.same(res.body.outputs, await referenceInfer(join(FIXTURES, 'linear-v2.onnx'), [x]));

    // A model that is valid when pushed, then its stored bytes rot on the relay's disk (one no
    // device fetched yet): the relay finds it when it loads the file to serve it, quarantines
    // it and tells the device to retry; the device keeps serving what it has.
    const v3 = JSON.parse((await relay.cli('models', 'push', join(FIXTURES, 'rowsum.onnx'), '--name', 'linear-copy', '--json')).stdout) as { sha256: string };
    t.not(v3.sha256, v2sha);
    const stored = join(relay.dataDir, 'artifacts', v3.sha256);
    const bytes = readFileSync(stored);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    writeFileSync(stored, bytes);
    t.equal(statSync(stored).size, bytes.length);
    const deploy3 = await relay.cli('deploy', 'linear-copy', '--device', a.deviceId, '--json');
    t.equal(deploy3.code, 0, deploy3.stderr);
    const dep3 = JSON.parse(deploy3.stdout) as { id: string };
    const waiting = await waitFor('the device told to retry the quarantined file', async () => {
      const d = (await relay.api<DeviceView>('GET', `/v1/devices/${a.deviceId}`)).body;
      const m = d.models.find((x) => x.name === 'linear-copy');
      return m?.state === 'downloading' && /OUTPOST_ERR_ARTIFACT_CORRUPT/.test(m.reason ?? '') ? m : undefined;
    });
    t.match(waiting.reason, /retrying in \d+ s/, 'it waits and retries: not a failure of the model');
    t.match((await relay.cli('models', 'show', 'linear-copy')).stdout, /quarantined/, 'models show names the bad file');
    t.equal((await relay.cli('deployments', 'cancel', dep3.id)).code, 0);
    const still = await agentA.infer<InferResponse>('linear', { inputs: [x] });
    t.equal(still.status, 200, 'other models keep serving');
    t.equal(still.body.model_version, '2');
  });

  await t.test('a killed agent shows offline; status and deployments read back', async (t) => {
    const status = await runCli(AGENT_BIN, ['status', '--data-dir', b.dataDir, '--json']);
    t.equal(status.code, 0);
    t.match(JSON.parse(status.stdout), { deviceId: b.deviceId, running: true, connected: true, certificateExpiresAt: /^\d{4}-/, models: [{ name: 'multi', state: 'serving' }] });

    await agentB.kill();
    await waitFor('beta offline', async () => {
      const d = (await relay.api<DeviceView>('GET', `/v1/devices/${b.deviceId}`)).body;
      return d.online === false || undefined;
    });
    const show = await relay.cli('devices', 'show', b.deviceId);
    t.match(show.stdout, /online\s+no/);
    const after = await runCli(AGENT_BIN, ['status', '--data-dir', b.dataDir]);
    t.equal(after.code, 1, 'status exits 1 when the agent is not running');
    t.match(after.stdout, /not running/);
    t.match(after.stdout, /identity\s+certificate until \d{4}-.* \(renewed by the agent\)/);

    const list = await relay.cli('deployments', 'list', '--json');
    t.equal((JSON.parse(list.stdout) as unknown[]).length, 4);
    const human = await relay.cli('deployments', 'list');
    t.match(human.stdout, /linear:2\s+succeeded/);
  });
});
