// The relay checks its own files. A model file that rots on the relay's disk is caught when it
// is loaded to be served, and by the scheduled check; it is quarantined (never served, named in
// `models show`, deployments of it refused), and pushing the same file again puts it right.
// Devices asking for it meanwhile keep retrying and keep serving what they had.

import t from 'tap';
import { join } from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';

const X = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };

interface VersionView {
  version: number;
  file: { state: string; foundBy?: string };
}

/** Flips bytes in the middle of a stored file, as a failing disk would. */
function rot(file: string): void {
  const bytes = readFileSync(file);
  for (let i = 0; i < 16; i++) bytes[(bytes.length >> 1) + i] ^= 0xff;
  writeFileSync(file, bytes);
}

t.test('a corrupt artifact on the relay is caught, quarantined and restored by a push', async (t) => {
  const dataDir = tempDir(t, 'relay');
  let relay = await startRelay(t, { dataDir, extraArgs: ['--artifact-check-interval', '0'] });
  const device = await enrollDevice(t, relay, 'edge');
  const agent = await startAgent(t, device);
  const model = join(FIXTURES, 'linear.onnx');
  const sha = createHash('sha256').update(readFileSync(model)).digest('hex');
  const stored = join(dataDir, 'artifacts', sha);
  t.equal((await relay.cli('models', 'push', model, '--name', 'linear')).code, 0);
  const version = async () => (await relay.api<VersionView>('GET', '/v1/models/linear/versions/1')).body;

  await t.test('caught when it is loaded into memory to be served', async (t) => {
    rot(stored);
    const deploy = relay.cli('deploy', 'linear', '--device', device.deviceId, '--wait', '--timeout', '2m');
    await waitFor('the file quarantined', async () => (await version()).file.state === 'quarantined');
    t.equal((await version()).file.foundBy, 'loading it into memory to serve it');
    t.notOk(existsSync(stored), 'nothing is left under its name to serve');
    t.ok(existsSync(join(dataDir, 'artifacts', '.quarantine', sha)), 'the bad bytes are kept aside for a look');
    const direct = await relay.fetch(`${relay.httpUrl}/v1/artifacts/${sha}`, { headers: { authorization: `Bearer ${relay.token}` } });
    t.equal(direct.status, 503, 'a download is told to retry');
    t.match(await direct.text(), /OUTPOST_ERR_ARTIFACT_CORRUPT/);
    const show = await relay.cli('models', 'show', 'linear');
    t.match(show.stdout, /quarantined/, 'models show names it');
    t.match(show.stdout, /linear:1: the relay's file failed its sha256 check \(found by loading it into memory to serve it, .*\) and is quarantined; push the same file again/);
    t.match(relay.logs.find((l) => String(l.msg).includes('failed its sha256 check'))?.msg, /is quarantined: nothing serves it until the same file is pushed again/, 'one clear log line');

    t.equal((await relay.cli('models', 'push', model, '--name', 'linear')).code, 0, 'the same file pushed again');
    t.equal((await version()).file.state, 'ok', 'the version is sound again');
    const done = await deploy;
    t.equal(done.code, 0, `the waiting deployment succeeds once the device retries (${done.stderr})`);
    const res = await agent.infer<{ model_version: string }>('linear', X);
    t.equal(res.status, 200, 'the device serves the model');
    t.ok(relay.logs.some((l) => l.msg === 'artifact restored: the push put a good copy back in place of the quarantined one'));
  });

  await t.test('caught by the scheduled check; a deployment of it is refused; half-sent uploads are cleared at start', async (t) => {
    await relay.stop();
    rot(stored);
    writeFileSync(join(dataDir, 'artifacts', '.staging', 'cut-off-upload'), Buffer.alloc(1024));
    relay = await startRelay(t, { dataDir, extraArgs: ['--artifact-check-interval', '1s'] });
    t.ok(relay.logs.some((l) => String(l.msg).startsWith('removed 1 half-sent upload(s)')), 'the leftover upload is named');
    t.notOk(existsSync(join(dataDir, 'artifacts', '.staging', 'cut-off-upload')), 'and removed');
    await waitFor('the scheduled check to quarantine it', async () => (await version()).file.state === 'quarantined');
    t.match((await version()).file.foundBy, /check/);
    const deploy = await relay.cli('deploy', 'linear:1', '--device', device.deviceId);
    t.equal(deploy.code, 1, 'a deployment of a quarantined file is refused');
    t.match(deploy.stderr, /failed its sha256 check and is quarantined; push the same file again/);
    const res = await agent.infer<{ model_version: string }>('linear', X);
    t.equal(res.status, 200, 'the device keeps serving its copy meanwhile');
    t.equal((await relay.cli('models', 'push', model, '--name', 'linear')).code, 0);
    t.equal((await version()).file.state, 'ok');
    t.equal((await relay.cli('deploy', 'linear:1', '--device', device.deviceId, '--wait')).code, 0, 'and it deploys again');
  });
});
