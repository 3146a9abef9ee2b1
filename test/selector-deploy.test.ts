// Deploying by labels: a selector deployment reaches devices that enroll or are relabelled
// later and lets go of those that stop matching; the newest deployment of a model wins and
// `devices show` says why; cancel stops a rollout where it is; rollback returns devices to
// what they had.

import t from 'tap';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface DeviceView {
  models: Array<{ name: string; version: number; state: string; serving?: { version: number } }>;
  follows: Array<{ model: string; deploymentId: string; version: number; why: string }>;
}
interface Deployment {
  id: string;
  state: string;
  selector: Record<string, string> | null;
  devices: Array<{ deviceId: string; state: string }>;
}

t.test('selector deployments, cancel and rollback', async (t) => {
  const relay = await startRelay(t);
  await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear');
  const a = await enrollDevice(t, relay, 'cam-a', 'site=lab');
  const agentA = await startAgent(t, a);
  const x = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
  const version = async (agent: typeof agentA) => {
    const res = await agent.infer<{ model_version?: string }>('linear', x);
    return res.status === 200 ? Number(res.body.model_version) : res.status;
  };
  const serves = (agent: typeof agentA, v: number | 404) => waitFor(`${agent.deviceId} to answer with ${v}`, async () => ((await version(agent)) === v ? true : undefined));

  const v1 = await relay.cli('deploy', 'linear:1', '--selector', 'site=lab', '--wait', '--json');
  t.equal(v1.code, 0, v1.stderr);
  const dep1 = JSON.parse(v1.stdout) as Deployment;
  t.same(dep1.selector, { site: 'lab' });
  t.same(dep1.devices.map((d) => d.deviceId), [a.deviceId]);
  await serves(agentA, 1);

  // A device that enrolls later with matching labels gets it too.
  const b = await enrollDevice(t, relay, 'cam-b', 'site=lab');
  const agentB = await startAgent(t, b);
  await serves(agentB, 1);
  t.match((await relay.api<Deployment>('GET', `/v1/deployments/${dep1.id}`)).body, { state: 'succeeded', devices: [{ state: 'serving' }, { state: 'serving' }] });

  // The newest deployment of a model wins, and the device says why.
  const dep2 = JSON.parse((await relay.cli('deploy', 'linear:2', '--device', a.deviceId, '--wait', '--json')).stdout) as Deployment;
  await serves(agentA, 2);
  const why = (await relay.api<DeviceView>('GET', `/v1/devices/${a.deviceId}`)).body.follows;
  t.match(why, [{ model: 'linear', deploymentId: dep2.id, version: 2, why: /it was named\) is the newest deployment of linear for this device; it overrides 1 older one/ }]);
  t.match((await relay.cli('devices', 'show', a.deviceId)).stdout, /why\n  linear:2 from dep_/);

  // A device that stops matching lets go of the selector deployment.
  t.equal((await relay.cli('devices', 'label', b.deviceId, 'site=home')).code, 0);
  await serves(agentB, 404);
  t.match((await relay.api<Deployment>('GET', `/v1/deployments/${dep1.id}`)).body.devices.find((d) => d.deviceId === b.deviceId), { state: 'removed' });
  t.equal((await relay.cli('devices', 'label', b.deviceId, 'site=lab')).code, 0);
  await serves(agentB, 1);

  // Rollback returns a device to what it had before.
  const back = await relay.cli('deployments', 'rollback', dep2.id);
  t.match(back.stdout, /rolled-back/);
  await serves(agentA, 1);
  t.match((await relay.api<DeviceView>('GET', `/v1/devices/${a.deviceId}`)).body.follows, [{ deploymentId: dep1.id }]);

  // Cancel stops a rollout where it is: a device that has not got it yet never will.
  const c = await enrollDevice(t, relay, 'cam-c', 'site=lab'); // enrolled, not running yet
  const dep3 = JSON.parse((await relay.cli('deploy', 'linear:2', '--selector', 'site=lab', '--json')).stdout) as Deployment;
  await serves(agentA, 2);
  await serves(agentB, 2);
  const canceled = JSON.parse((await relay.cli('deployments', 'cancel', dep3.id, '--json')).stdout) as Deployment;
  t.equal(canceled.state, 'canceled');
  t.equal(canceled.devices.find((d) => d.deviceId === c.deviceId)!.state, 'canceled');
  t.equal(canceled.devices.find((d) => d.deviceId === a.deviceId)!.state, 'serving', 'devices that have it keep it');
  const agentC = await startAgent(t, c);
  await serves(agentC, 1);
  t.equal(await version(agentA), 2);
  const late = await enrollDevice(t, relay, 'cam-d', 'site=lab');
  const dep3after = (await relay.api<Deployment>('GET', `/v1/deployments/${dep3.id}`)).body;
  t.notOk(dep3after.devices.some((d) => d.deviceId === late.deviceId), 'a canceled selector deployment takes no new devices');
  const bad = await relay.cli('deploy', 'linear', '--selector', 'site=lab', '--device', a.deviceId);
  t.match(bad.stderr, /use --device or --selector, not both/);

  // A version that loads but cannot run fails its self-test (the relay's at push, and the
  // device's when it is forced out anyway); the device keeps what it served.
  const broken = await relay.cli('models', 'push', join(FIXTURES, 'fails-at-runtime.onnx'), '--name', 'linear', '--json');
  t.equal(broken.code, 0, 'it is a valid, loadable ONNX file');
  const v3 = (JSON.parse(broken.stdout) as { version: number }).version;
  t.equal((await relay.cli('deploy', `linear:${v3}`, '--device', a.deviceId)).code, 1, 'refused unless forced');
  const failed = await relay.cli('deploy', `linear:${v3}`, '--device', a.deviceId, '--force', '--wait');
  t.equal(failed.code, 1);
  t.match(failed.stdout, /failed: self-test inference failed: .*Reshape/);
  t.equal(await version(agentA), 2, 'the previous version keeps serving');
  t.match((await relay.api<DeviceView>('GET', `/v1/devices/${a.deviceId}`)).body.models, [{ name: 'linear', version: v3, state: 'failed', serving: { version: 2 } }]);
});
