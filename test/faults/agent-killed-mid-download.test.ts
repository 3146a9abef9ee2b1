// kill -9 of the agent while it downloads a model, in a staged rollout that tolerates no
// failure: started again, it resumes the download from its partial file (the bytes already
// on the device are not fetched again), verifies it, serves, and the rollout succeeds.

import t from 'tap';
import { join } from 'node:path';
import { readdirSync, statSync } from 'node:fs';
import { FIXTURES, enrollDevice, startAgent, startRelay } from '../helpers/programs.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

interface Deployment {
  state: string;
  devices: Array<{ state: string }>;
}

/** The bytes of the agent's partial downloads. */
function partialBytes(dataDir: string): number {
  let bytes = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.partial')) bytes += statSync(p).size;
    }
  };
  walk(dataDir);
  return bytes;
}

t.test('the agent killed mid-download resumes it when it starts again', async (t) => {
  const relay = await startRelay(t);
  const proxy = await startProxy(t, Number(new URL(relay.httpUrl).port));
  const device = await enrollDevice(t, relay, 'edge', undefined, proxy.url('https'));
  let agent = await startAgent(t, device);
  const model = join(FIXTURES, 'cnn.onnx');
  const size = statSync(model).size;
  t.equal((await relay.cli('models', 'push', model, '--name', 'cnn')).code, 0);
  proxy.throttle(1024 * 1024);
  const deploy = relay.cli('deploy', 'cnn', '--device', device.deviceId, '--strategy', 'rolling', '--failure-threshold', '0', '--health-window', '1s', '--wait', '--json', '--timeout', '2m');
  await waitFor('a megabyte of the download on the device', () => partialBytes(device.dataDir) > 1024 * 1024);
  await agent.kill();
  const kept = partialBytes(device.dataDir);
  const before = proxy.downBytes;
  t.ok(kept > 1024 * 1024, `${(kept / 2 ** 20).toFixed(1)} MiB of ${(size / 2 ** 20).toFixed(1)} MiB were on the device when it was killed`);

  proxy.throttle(0);
  agent = await startAgent(t, device);
  const res = await deploy;
  t.equal(res.code, 0, `the rollout waited for the device (${res.stderr.trim()})`);
  const d = JSON.parse(res.stdout) as Deployment;
  t.equal(d.state, 'succeeded', 'and succeeded: a killed agent is not a failed model');
  t.notOk(d.devices.some((x) => x.state === 'failed'));
  const fetchedAgain = proxy.downBytes - before;
  t.ok(fetchedAgain < size - kept + 256 * 1024, `after the restart ${(fetchedAgain / 2 ** 20).toFixed(2)} MiB came down: the rest, not the whole file again`);
  t.equal((await fetch(`${agent.httpUrl}/v2/models/cnn/ready`)).status, 200, 'the agent serves the model');
  t.equal(partialBytes(device.dataDir), 0, 'no partial file is left');
});
