// Deleting model versions with a real relay and agent: refused while a deployment sends the
// version to a device, allowed once another deployment replaced it, never brought back by a
// rollback; prune keeps the newest N and whatever is in use; a file goes with its last reference.

import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface Version {
  name: string;
  version: number;
  sha256: string;
  created?: boolean;
}

t.test('models delete and models prune', async (t) => {
  const relay = await startRelay(t);
  const d = await enrollDevice(t, relay, 'keeper');
  const agent = await startAgent(t, d);
  const push = async (file: string, name = 'lin') => {
    // Different fixtures under one name: their signatures differ on purpose.
    const res = await relay.cli('models', 'push', join(FIXTURES, file), '--name', name, '--allow-signature-change', '--json');
    t.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as Version;
  };
  const stored = (v: Version) => existsSync(join(relay.dataDir, 'artifacts', v.sha256));
  const deploy = async (ref: string) => {
    const res = await relay.cli('deploy', ref, '--device', d.deviceId, '--wait', '--json');
    t.equal(res.code, 0, res.stderr);
    return (JSON.parse(res.stdout) as { id: string }).id;
  };

  const v1 = await push('linear.onnx');
  const v2 = await push('linear-v2.onnx');
  const dep1 = await deploy('lin:1');

  await t.test('refused while a deployment sends the version to a device', async (t) => {
    const res = await relay.cli('models', 'delete', 'lin:1');
    t.equal(res.code, 1);
    t.equal(res.stderr, `error: OUTPOST_ERR_CONFLICT: lin:1 is in use: ${dep1} sends it to 1 device; deploy another version to those devices (or roll it back: outpost-relay deployments rollback ${dep1}), then delete it\n`);
    const api = await relay.api<{ error: { code: string } }>('DELETE', '/v1/models/lin/versions/1');
    t.equal(api.status, 409);
    t.ok(stored(v1), 'the file stays');
    t.match((await relay.cli('models', 'delete', 'lin')).stderr, /^error: give the version to delete: lin:VERSION \(see them with outpost-relay models show lin\)$/m);
    t.equal((await relay.api('DELETE', '/v1/models/lin/versions/latest')).status, 400, '"latest" is not a version to delete');
    t.match((await relay.cli('models', 'delete', 'lin:9')).stderr, /OUTPOST_ERR_MODEL_NOT_FOUND: no version 9 of model "lin"/);
    // A rollout still under way (its device has no agent running) may yet reach more devices.
    const idle = await enrollDevice(t, relay, 'idle');
    const pending = await relay.cli('deploy', 'lin:2', '--device', idle.deviceId, '--json');
    const dep = (JSON.parse(pending.stdout) as { id: string }).id;
    t.match((await relay.cli('models', 'delete', 'lin:2')).stderr, new RegExp(`^error: OUTPOST_ERR_CONFLICT: lin:2 is in use: ${dep} is still rolling it out; deploy another version`, 'm'));
    t.equal((await relay.cli('deployments', 'cancel', dep)).code, 0);
    t.equal((await relay.cli('devices', 'remove', idle.deviceId)).code, 0);
  });

  await t.test('allowed once another deployment replaced it; a rollback cannot bring it back', async (t) => {
    const dep2 = await deploy('lin:2');
    const res = await relay.cli('models', 'delete', 'lin:1');
    t.equal(res.code, 0, res.stderr);
    t.equal(res.stdout, 'deleted lin:1 (230 B, file removed)\n');
    t.notOk(stored(v1), 'its file left the artifact store');
    t.equal((await relay.api('GET', '/v1/models/lin/versions/1')).status, 404);
    t.equal((await relay.api('GET', `/v1/artifacts/${v1.sha256}`)).status, 404);
    // Rolling the replacement back leaves the device nothing of this model: v1 is gone.
    t.equal((await relay.cli('deployments', 'rollback', dep2)).code, 0);
    await waitFor('the agent to stop serving lin', async () => ((await agent.infer('lin', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] })).status === 404 ? true : undefined));
    const show = await relay.api<{ follows: unknown[] }>('GET', `/v1/devices/${d.deviceId}`);
    t.same(show.body.follows, [], `the device follows no deployment of lin (${dep1} is history)`);
    t.equal((await relay.api('GET', '/v1/health')).status, 200);
    // The number is never given again, even to the same bytes.
    const again = await push('linear.onnx');
    t.match(again, { version: 3, sha256: v1.sha256, created: true });
  });

  await t.test('prune keeps the newest N of each model and every version in use', async (t) => {
    const dep3 = await deploy('lin:3');
    const v4 = await push('fixed.onnx');
    await push('rowsum.onnx');
    await push('multi.onnx');
    const dry = await relay.cli('models', 'prune', '--keep', '2', '--dry-run', '--json');
    t.equal(dry.code, 0, dry.stderr);
    t.match(JSON.parse(dry.stdout), { dryRun: true, keep: 2, deleted: [{ name: 'lin', version: 2 }, { name: 'lin', version: 4 }], inUse: [{ name: 'lin', version: 3, deployments: [dep3] }] });
    t.ok(stored(v2) && stored(v4), 'a dry run deletes nothing');
    t.match((await relay.cli('models', 'prune', '--keep', '2', '--dry-run')).stdout, /^MODEL\s+VERSION\s+SIZE\s+SHA256\nlin\s+2\s.*\nlin\s+4\s.*\nwould delete 2 versions\nkept lin:3: in use by dep_\w+$/m);
    const human = await relay.cli('models', 'prune', '--keep', '2');
    t.equal(human.code, 0, human.stderr);
    t.match(human.stdout, /^MODEL\s+VERSION\s+SIZE\s+SHA256\s+FILE\nlin\s+2\s+.*removed\nlin\s+4\s+.*removed\ndeleted 2 versions, freed .*\nkept lin:3: in use by dep_\w+$/m);
    t.notOk(stored(v2) || stored(v4), 'their files are gone');
    const left = (await relay.api<{ versions: Version[] }>('GET', '/v1/models/lin')).body.versions.map((v) => v.version);
    t.same(left, [3, 5, 6]);
    t.match((await relay.cli('models', 'prune', '--keep', '2')).stdout, /^nothing to delete: every model has at most 2 versions besides those in use$/m);
    t.match((await relay.cli('models', 'prune', '--model', 'nope')).stderr, /OUTPOST_ERR_MODEL_NOT_FOUND: no model "nope"/);
    t.match((await relay.cli('models', 'prune', '--keep', '0')).stderr, /use a whole number of at least 1/);
  });

  await t.test('a file another model shares stays', async (t) => {
    const mine = await push('linear-v2.onnx');
    const theirs = await push('linear-v2.onnx', 'other');
    t.equal(mine.sha256, theirs.sha256);
    const res = await relay.cli('models', 'delete', `lin:${mine.version}`, '--json');
    t.equal(res.code, 0, res.stderr);
    t.match(JSON.parse(res.stdout), { name: 'lin', version: mine.version, fileRemoved: false });
    t.ok(stored(theirs), 'other:1 still has its file');
    t.equal((await relay.cli('models', 'delete', 'other:1')).stdout, 'deleted other:1 (230 B, file removed)\n');
    t.notOk(stored(theirs));
  });
});
