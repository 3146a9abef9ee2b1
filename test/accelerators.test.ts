// CPU and GPU targets, with a real relay and two real agents on loopback: one declares a CUDA
// GPU (--accelerator cuda), the other has none. Targets list both with what they compute on; a
// selector accelerator=cuda reaches only the first (no label of that name can be set); a deployment's
// execution providers are tried in order on the device and fall back to cpu, which the device
// reports with why cuda was skipped; jobs that require an accelerator run only where it is, and
// one nobody has waits, saying so.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface Target {
  name: string;
  online: boolean;
  accelerators: string[];
  executionProviders: string[];
}
interface Job {
  id: string;
  state: string;
  require: string[];
  waiting: string | null;
  runs: Array<{ rank: number; target: string; state: string }>;
}

t.test('accelerators: targets, selectors, execution provider fallback, job requirements', async (t) => {
  const relay = await startRelay(t);
  const gpu = await enrollDevice(t, relay, 'gpu-box', 'pool=edge');
  const cpu = await enrollDevice(t, relay, 'cpu-box', 'pool=edge');
  for (const d of [gpu, cpu]) t.equal((await relay.cli('targets', 'attach', d.deviceId, '--training')).code, 0);
  const gpuAgent = await startAgent(t, gpu, ['--accept-training', '--accelerator', 'cuda']);
  const cpuAgent = await startAgent(t, cpu, ['--accept-training']);

  const targets = async () => {
    const res = await relay.cli('targets', 'list', '--json');
    t.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as Target[];
  };
  const listed = await waitFor('both agents online with their reports', async () => {
    const list = await targets();
    const g = list.find((x) => x.name === gpu.deviceId);
    const c = list.find((x) => x.name === cpu.deviceId);
    return g?.online && c?.online && g.accelerators.length > 0 && c.executionProviders.length > 0 ? { g, c } : undefined;
  }, 30_000);
  t.same(listed.g.accelerators, ['cuda'], 'the declared accelerator (this machine has no GPU to find)');
  t.same(listed.c.accelerators, [], 'none on the other');
  t.equal(listed.g.executionProviders[0], 'cpu', 'cpu is always usable');
  t.notOk(listed.g.executionProviders.includes('cuda'), 'declaring cuda does not make the CUDA provider usable without its library');
  const text = await relay.cli('targets', 'list');
  t.match(text.stdout, /ACCELERATORS\s+PROVIDERS/);
  t.match(text.stdout, new RegExp(`${gpu.deviceId} \\(gpu-box\\).*\\bcuda\\b`));
  t.match((await relay.cli('devices', 'show', 'gpu-box')).stdout, /compute\s+accelerators cuda \(execution providers cpu/);

  await t.test('the accelerator key is reserved: no label of that name can be set', async (t) => {
    const res = await relay.cli('devices', 'label', 'cpu-box', 'accelerator=cuda');
    t.equal(res.code, 1);
    t.match(res.stderr, /"accelerator" is reserved/);
    const token = await relay.api('POST', '/v1/tokens/enroll', { labels: { accelerator: 'cuda' } });
    t.equal(token.status, 400, 'nor an enrollment token');
  });

  await t.test('accelerator=cuda reaches only the device that reports it; cuda falls back to cpu there', async (t) => {
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
    const res = await relay.cli('deploy', 'linear', '--selector', 'accelerator=cuda', '--execution-provider', 'cuda', '--execution-provider', 'cpu', '--wait', '--json');
    t.equal(res.code, 0, res.stderr);
    const d = JSON.parse(res.stdout) as { id: string; devices: Array<{ deviceId: string; state: string }> };
    t.same(d.devices.map((x) => x.deviceId), [gpu.deviceId], 'only the cuda device');
    const body = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] };
    t.equal((await gpuAgent.infer('linear', body)).status, 200, 'it serves');
    t.equal((await cpuAgent.infer('linear', body)).status, 404, 'the other does not');

    const shown = await waitFor('the device to report its execution provider', async () => {
      const r = await relay.cli('devices', 'show', gpu.deviceId, '--json');
      const m = (JSON.parse(r.stdout) as { models: Array<{ name: string; state: string; executionProvider?: string; providersSkipped?: Array<{ provider: string; reason: string }> }> }).models.find((x) => x.name === 'linear');
      return m?.executionProvider ? m : undefined;
    });
    t.equal(shown.executionProvider, 'cpu', 'serving on cpu');
    t.equal(shown.providersSkipped?.[0]?.provider, 'cuda', 'cuda was skipped');
    t.match(shown.providersSkipped?.[0]?.reason, /cuda/i, "with onnxruntime's reason");
    t.match((await relay.cli('devices', 'show', gpu.deviceId)).stdout, /linear:1 serving on cpu[^\n]*\n\s+skipped cuda \(/);
    const dep = await relay.cli('deployments', 'show', d.id);
    t.match(dep.stdout, /PROVIDER/);
    t.match(dep.stdout, new RegExp(`${gpu.deviceId}.*serving\\s+cpu \\(skipped cuda: `));
    const detail = await relay.api<{ devices: Array<{ executionProvider?: string }> }>('GET', `/v1/deployments/${d.id}`);
    t.equal(detail.body.devices[0]?.executionProvider, 'cpu', 'and in the API');

    t.ok(gpuAgent.logs.some((l) => l.level === 40 && /execution providers skipped; serving on cpu/.test(String(l.msg)) && /cuda: /.test(String(l.skipped))), 'the agent warns, with the reason');

    const unknown = await relay.cli('deploy', 'linear', '--selector', 'accelerator=cuda', '--execution-provider', 'nosuchep');
    t.equal(unknown.code, 1, 'a provider onnxruntime does not know at all is refused at deploy time');
    t.match(unknown.stderr, /"nosuchep" unknown to onnxruntime: use cpu, cuda, tensorrt/);
  });

  await t.test('jobs that require an accelerator run where it is, or wait saying why', async (t) => {
    const bundle = tempDir(t, 'gpu-job');
    writeFileSync(join(bundle, 'run.sh'), 'echo trained\n');
    const job = async (id: string) => (await relay.api<Job>('GET', `/v1/jobs/${id}`)).body;
    const submit = async (...args: string[]) => {
      const res = await relay.cli('jobs', 'submit', bundle, '--target', 'pool=edge', '--command', 'sh run.sh', '--json', ...args);
      t.equal(res.code, 0, res.stderr);
      return (JSON.parse(res.stdout) as Job).id;
    };
    const cuda = await submit('--require', 'cuda');
    const done = await waitFor('the cuda job to succeed', async () => ((j) => (j.state === 'succeeded' || j.state === 'failed' ? j : undefined))(await job(cuda)), 60_000, 200);
    t.equal(done.state, 'succeeded');
    t.same(done.runs.map((r) => r.target), [gpu.deviceId], 'on the device that reports cuda');
    t.same(done.require, ['cuda']);

    const trt = await submit('--require', 'tensorrt');
    const waiting = await waitFor('a reason the tensorrt job waits', async () => ((j) => (j.state === 'queued' && j.waiting ? j : undefined))(await job(trt)));
    t.match(waiting.waiting, /^waiting: no target reports tensorrt \(2 device\(s\) match the selector/);
    t.match((await relay.cli('jobs', 'show', trt)).stdout, /requires tensorrt\nwaiting: no target reports tensorrt/);
    t.equal((await relay.cli('jobs', 'cancel', trt)).code, 0);
    t.equal((await job(trt)).state, 'canceled');

    const bad = await relay.api<{ error: { message: string } }>('POST', '/v1/jobs', { bundleSha256: 'a'.repeat(64), target: 'pool=edge', command: 'x', require: ['NOT A NAME'] });
    t.equal(bad.status, 400);
    t.match(bad.body.error.message, /require\/0/, 'naming the bad entry');
    const many = await relay.api('POST', '/v1/jobs', { bundleSha256: 'a'.repeat(64), target: 'pool=edge', command: 'x', require: Array.from({ length: 9 }, (_, i) => `a${i}`) });
    t.equal(many.status, 400, 'at most 8');
    const local = await relay.cli('jobs', 'submit', bundle, '--target', 'local', '--command', 'true', '--require', 'cuda');
    t.equal(local.code, 1);
    t.match(local.stderr, /needs devices that report it/);
  });

  await t.test('a device that starts reporting cuda joins the selector deployment', async (t) => {
    await cpuAgent.stop();
    const again = await startAgent(t, cpu, ['--accept-training', '--accelerator', 'cuda']);
    const deployment = (await relay.api<{ deployments: Array<{ id: string; selector: Record<string, string> | null }> }>('GET', '/v1/deployments')).body.deployments.find((x) => x.selector?.accelerator === 'cuda')!;
    await waitFor('the device to serve the deployment', async () => {
      const d = (await relay.api<{ devices: Array<{ deviceId: string; state: string }> }>('GET', `/v1/deployments/${deployment.id}`)).body;
      return d.devices.some((x) => x.deviceId === cpu.deviceId && x.state === 'serving') || undefined;
    }, 30_000);
    t.equal((await again.infer('linear', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] })).status, 200);
  });
});
