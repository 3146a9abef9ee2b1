// What a device computes on: accelerators found under a root directory (fake /dev and /etc
// files here), declared ones, which of onnxruntime's execution providers are usable, and the
// order a deployment's providers are tried in (real onnxruntime: cuda is skipped for cpu here).

import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkAcceleratorName, detectAccelerators, detectDevice, listBackends, providerOrder, usableProviders } from '../../packages/agent/dist/accelerators.js';
import { InferenceEngine } from '../../packages/agent/dist/runtime/inference-engine.js';
import { FIXTURE_DIR } from '../fixtures/models.js';

function fakeRoot(t: Test, files: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'outpost-root-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'dev'), { recursive: true });
  for (const f of files) {
    mkdirSync(join(root, f, '..'), { recursive: true });
    writeFileSync(join(root, f), '');
  }
  return root;
}

const BACKENDS = [
  { name: 'cpu', bundled: true },
  { name: 'webgpu', bundled: true },
  { name: 'cuda', bundled: false },
  { name: 'tensorrt', bundled: false },
];

t.test('accelerators from device files', async (t) => {
  t.same(await detectDevice(fakeRoot(t, [])), { accelerators: [], evidence: [] }, 'nothing on a plain machine');
  t.same(await detectDevice(join(tmpdir(), 'no-such-root-outpost')), { accelerators: [], evidence: [] }, 'a root that does not exist');
  t.same(await detectDevice(fakeRoot(t, ['dev/nvidia0', 'dev/nvidiactl', 'dev/nvidia-uvm'])), { accelerators: ['cuda', 'gpu'], evidence: ['/dev/nvidia0', '/dev/nvidiactl'] }, 'an NVIDIA GPU');
  t.same((await detectDevice(fakeRoot(t, ['dev/nvidiactl']))).accelerators, ['cuda', 'gpu'], 'the control device alone');
  t.same((await detectDevice(fakeRoot(t, ['etc/nv_tegra_release']))).accelerators, ['cuda', 'gpu', 'tegra'], 'a Jetson');
  t.same(await detectDevice(fakeRoot(t, ['dev/dri/renderD128', 'dev/dri/card0'])), { accelerators: ['gpu'], evidence: ['/dev/dri/renderD128'] }, 'a DRM render node');
});

t.test('usable execution providers: the binding has them and the hardware is there', async (t) => {
  const none = () => false;
  t.same(usableProviders(BACKENDS, [], none), {
    executionProviders: ['cpu'],
    unavailable: [
      { name: 'webgpu', reason: 'the device has no GPU (/dev/dri/renderD*, /dev/nvidia*)' },
      { name: 'cuda', reason: 'its provider library (libonnxruntime_providers_cuda) is not installed; and the device has no NVIDIA GPU (/dev/nvidia0, /dev/nvidiactl or a Jetson)' },
      { name: 'tensorrt', reason: 'its provider library (libonnxruntime_providers_tensorrt) is not installed; and the device has no NVIDIA GPU (/dev/nvidia0, /dev/nvidiactl or a Jetson)' },
    ],
  }, 'a CPU-only device without provider libraries');
  const gpu = usableProviders(BACKENDS, ['cuda', 'gpu'], none);
  t.same(gpu.executionProviders, ['cpu', 'webgpu'], 'a GPU without the CUDA provider library');
  t.match(gpu.unavailable, [{ name: 'cuda', reason: /not installed$/ }, { name: 'tensorrt', reason: /not installed$/ }]);
  t.same(usableProviders(BACKENDS, ['cuda', 'gpu'], (n) => n === 'cuda').executionProviders, ['cpu', 'webgpu', 'cuda'], 'with the library installed');
  t.same(usableProviders([{ name: 'cuda', bundled: true }], [], none).unavailable, [{ name: 'cuda', reason: 'the device has no NVIDIA GPU (/dev/nvidia0, /dev/nvidiactl or a Jetson)' }], 'bundled, but no GPU');
  t.same(usableProviders([], [], none).executionProviders, ['cpu'], 'cpu always');
  const odd = usableProviders([{ name: 'Vitis-AI', bundled: true }, { name: `x${'y'.repeat(40)}`, bundled: true }], [], none);
  t.same(odd.executionProviders, ['cpu'], "names the relay's schema would refuse are not reported (they would cost the whole status message)");
  t.match(odd.unavailable, [{ name: 'Vitis-AI', reason: /cannot report/ }, { reason: /cannot report/ }]);
});

t.test('declared accelerators, and the names allowed', async (t) => {
  const r = await detectAccelerators({ root: fakeRoot(t, []), declared: ['cuda', 'npu'], backends: BACKENDS, libraryDir: null });
  t.same(r.accelerators, ['cuda', 'npu']);
  t.same(r.executionProviders, ['cpu'], 'declaring cuda does not install its provider library');
  t.same(r.unavailable.map((u) => u.name), ['webgpu', 'cuda', 'tensorrt']);
  t.equal(checkAcceleratorName('cuda'), 'cuda');
  for (const bad of ['CUDA', '', 'a'.repeat(33), 'cu da', '1gpu', 'x;rm']) t.throws(() => checkAcceleratorName(bad), /invalid accelerator/, JSON.stringify(bad));
  const many = Array.from({ length: 40 }, (_, i) => `acc${i}`);
  t.equal((await detectAccelerators({ root: fakeRoot(t, []), declared: many, backends: BACKENDS, libraryDir: null })).accelerators.length, 16, 'at most 16 are reported');
});

t.test("onnxruntime-node's own list, asked off the main thread", async (t) => {
  const backends = await listBackends();
  t.ok(backends.some((b) => b.name === 'cpu'), 'cpu is among them');
  const report = await detectAccelerators({ root: fakeRoot(t, []) });
  t.equal(report.executionProviders[0], 'cpu');
  t.notOk(report.executionProviders.includes('cuda'), 'no cuda on a machine without an NVIDIA GPU');
});

t.test('providers are tried in the order given, then cpu', async (t) => {
  t.same(providerOrder(undefined), ['cpu']);
  t.same(providerOrder(['cuda']), ['cuda', 'cpu']);
  t.same(providerOrder(['cuda', 'cpu', 'webgpu']), ['cuda', 'cpu', 'webgpu'], 'cpu named earlier stays where it is');
  t.same(providerOrder(['tensorrt', 'cuda', 'tensorrt']), ['tensorrt', 'cuda', 'cpu'], 'each once');
});

t.test('a session falls back past providers this device cannot use, saying why', async (t) => {
  const engine = await InferenceEngine.start(join(FIXTURE_DIR, 'linear.onnx'), { executionProviders: ['cuda', 'tensorrt'] });
  t.teardown(() => engine.release());
  t.equal(engine.executionProvider, 'cpu', 'cpu, though not named');
  t.same(engine.providersSkipped.map((s) => s.provider), ['cuda', 'tensorrt']);
  t.match(engine.providersSkipped[0]!.reason, /cuda/i, "onnxruntime's reason names the provider");
  const plain = await InferenceEngine.start(join(FIXTURE_DIR, 'linear.onnx'), {});
  t.teardown(() => plain.release());
  t.equal(plain.executionProvider, 'cpu');
  t.same(plain.providersSkipped, []);
  await t.rejects(InferenceEngine.start(join(FIXTURE_DIR, 'no-such.onnx'), { executionProviders: ['cuda'] }), /no-such|file|load/i, "a file no provider can load fails with cpu's reason");
});
