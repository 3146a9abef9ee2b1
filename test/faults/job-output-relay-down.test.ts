// A device job that ends while the relay is down keeps its outputs: the upload is retried with
// backoff until the relay answers, and the run is reported only once its outputs are safe.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enrollDevice, startAgent, startRelay, tempDir } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';

interface Job {
  id: string;
  state: string;
  outputs: Array<{ path: string; size: number }>;
}

t.test('outputs of a run that ends while the relay is down are not lost', async (t) => {
  const first = await startRelay(t);
  const httpPort = new URL(first.httpUrl).port;
  const mqttPort = new URL(first.mqttUrl).port;
  const device = await enrollDevice(t, first, 'trainer');
  const agent = await startAgent(t, device, ['--accept-training']);
  t.equal((await first.cli('targets', 'attach', device.deviceId, '--training')).code, 0);
  await waitFor('the device accepts jobs', async () => {
    const res = await first.api<{ targets: Array<{ name: string; trains: boolean }> }>('GET', '/v1/targets');
    return res.body.targets.find((x) => x.name === device.deviceId)?.trains || undefined;
  });
  const dir = tempDir(t, 'job');
  const gate = join(tempDir(t, 'gate'), 'open');
  writeFileSync(join(dir, 'run.sh'), 'while [ ! -f "$GATE" ]; do sleep 0.05; done\necho safe > "$OUTPOST_OUTPUT_DIR/result.txt"\n');
  const job = JSON.parse((await first.cli('jobs', 'submit', dir, '--target', device.deviceId, '--command', 'sh run.sh', '--env', `GATE=${gate}`, '--json')).stdout) as Job;
  await waitFor('the run going', async () => (await first.api<{ runs: Array<{ state: string }> }>('GET', `/v1/jobs/${job.id}`)).body.runs[0]?.state === 'running' || undefined);

  await first.kill();
  writeFileSync(gate, '');
  await waitFor('the agent retrying the upload', () => agent.logs.some((l) => l.msg === 'job output upload failed; retrying'));
  t.pass('the upload waits for the relay');

  const relay = await startRelay(t, { dataDir: first.dataDir, extraArgs: ['--http-port', httpPort, '--mqtt-port', mqttPort] });
  const done = await waitFor('the job done', async () => {
    const j = (await relay.api<Job>('GET', `/v1/jobs/${job.id}`)).body;
    return j.state !== 'running' ? j : undefined;
  }, 90_000);
  t.equal(done.state, 'succeeded', 'the run succeeded once its output was safe');
  t.same(done.outputs.map((o) => [o.path, o.size]), [['result.txt', 5]], 'with its output');
});
