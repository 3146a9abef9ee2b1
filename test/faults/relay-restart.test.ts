// kill -9 of the relay while a device downloads its model, inside a staged rollout that
// tolerates no failure: the interrupted download is not a failure of the model, so the rollout
// is not rolled back; the agent retries with backoff, resumes, and serves; `deploy --wait`
// waits through the restart, saying so in one line.

import t from 'tap';
import { join } from 'node:path';
import { FIXTURES, RELAY_BIN, enrollDevice, runCli, startAgent, startRelay } from '../helpers/programs.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

interface Deployment {
  id: string;
  state: string;
  devices: Array<{ deviceId: string; state: string; reason: string | null }>;
}

t.test('the relay killed mid-download', async (t) => {
  const first = await startRelay(t);
  const httpPort = new URL(first.httpUrl).port;
  const mqttPort = new URL(first.mqttUrl).port;
  // The device reaches the relay's HTTP side through a proxy that makes the download slow.
  const proxy = await startProxy(t, Number(httpPort));
  const device = await enrollDevice(t, first, 'edge', undefined, proxy.url('https'));
  const agent = await startAgent(t, device);
  t.equal((await first.cli('models', 'push', join(FIXTURES, 'cnn.onnx'), '--name', 'cnn')).code, 0);
  proxy.throttle(1024 * 1024);

  const env = first.env;
  const deploy = runCli(RELAY_BIN, ['deploy', 'cnn', '--device', device.deviceId, '--strategy', 'rolling', '--failure-threshold', '0', '--health-window', '1s', '--wait', '--json', '--timeout', '2m'], env);
  await waitFor('a megabyte of the download through', () => proxy.downBytes > 1024 * 1024);
  await first.kill();

  const waiting = await waitFor('the agent to say it will retry', async () => {
    const res = await fetch(`${agent.httpUrl}/v2/models/cnn/ready`);
    const body = (await res.json()) as { error?: string };
    return /downloading: .*retrying in \d+ s/.test(body.error ?? '') ? body.error : undefined;
  });
  t.match(waiting, /not serving yet \(downloading: /, `the interrupted download is reported as downloading, not failed (${waiting})`);

  proxy.throttle(0);
  const relay = await startRelay(t, { dataDir: first.dataDir, extraArgs: ['--http-port', httpPort, '--mqtt-port', mqttPort] });
  const res = await deploy;
  t.equal(res.code, 0, `deploy --wait waited through the restart (${res.stderr.trim()})`);
  t.match(res.stderr, /cannot reach the relay at .*; it may be restarting: waiting for it/, 'and said so');
  t.match(res.stderr, /the relay is back/);
  t.equal(res.stderr.match(/it may be restarting/g)?.length, 1, 'in one line');
  const d = JSON.parse(res.stdout) as Deployment;
  t.equal(d.state, 'succeeded', 'the rollout was not rolled back');
  t.notOk(d.devices.some((x) => x.state === 'failed'), 'no device failed');
  const stored = (await relay.api<Deployment>('GET', `/v1/deployments/${d.id}`)).body;
  t.equal(stored.state, 'succeeded');
  t.equal((await fetch(`${agent.httpUrl}/v2/models/cnn/ready`)).status, 200, 'the agent serves the model');
});
