// The relay CLI as a person uses it: human output, --json, labels, limits, one-line errors.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, RELAY_BIN, closedPort, enrollDevice, runCli, startRelay, tempDir } from './helpers/programs.js';

t.test('relay CLI', async (t) => {
  const relay = await startRelay(t, { extraArgs: ['--max-model-size', '1KB'] });
  const d = await enrollDevice(t, relay, 'cli-dev', 'site=lab,tier=edge');

  await t.test('on the relay host it needs no flags', async (t) => {
    const res = await runCli(RELAY_BIN, ['devices', 'list', '--json', '--data-dir', relay.dataDir]);
    t.equal(res.code, 0, res.stderr);
    t.equal((JSON.parse(res.stdout) as unknown[]).length, 1);
    const nowhere = await runCli(RELAY_BIN, ['devices', 'list', '--data-dir', join(relay.dataDir, 'nope')]);
    t.equal(nowhere.code, 1);
    t.match(nowhere.stderr, /^error: no relay given: pass --relay URL/m);
    const port = await closedPort();
    const down = await runCli(RELAY_BIN, ['devices', 'list', '--relay', `http://127.0.0.1:${port}`, '--token', 'x']);
    t.match(down.stderr, new RegExp(`^error: cannot reach the relay at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\): is it running\\?`, 'm'));
    const badToken = await runCli(RELAY_BIN, ['devices', 'list', '--relay', relay.httpUrl, '--token', 'opa_000000000000_nonono-nonono-nonono-no']);
    t.match(badToken.stderr, /^error: OUTPOST_ERR_UNAUTHORIZED: /m);
  });

  await t.test('the API describes itself at /v1/openapi.json, without a token', async (t) => {
    const res = await fetch(`${relay.httpUrl}/v1/openapi.json`);
    t.equal(res.status, 200);
    const doc = (await res.json()) as { openapi: string; info: { title: string }; paths: Record<string, Record<string, { parameters?: Array<{ name: string }>; requestBody?: unknown }>> };
    t.match(doc.openapi, /^3\./);
    t.equal(doc.info.title, 'Outpost relay API');
    t.ok(doc.paths['/v1/deployments']?.post?.requestBody, 'a route with a body schema has it described');
    t.same(doc.paths['/v1/devices/{id}']?.get?.parameters?.map((p) => p.name), ['id']);
    t.notOk(doc.paths['/v1/openapi.json'], 'the description leaves itself out');
  });

  await t.test('labels', async (t) => {
    const set = await relay.cli('devices', 'label', d.deviceId, 'zone=a', 'tier-');
    t.equal(set.code, 0, set.stderr);
    t.equal(set.stdout.trim(), `${d.deviceId}: site=lab,zone=a`);
    const bad = await relay.cli('devices', 'label', d.deviceId, 'bad key=x');
    t.equal(bad.code, 1);
    t.match(bad.stderr, /OUTPOST_ERR_BAD_REQUEST: invalid label key "bad key"/);
    const show = await relay.cli('devices', 'show', d.deviceId);
    t.match(show.stdout, /labels\s+site=lab,zone=a/);
    const missing = await relay.cli('devices', 'show', 'dev_000000000000');
    t.match(missing.stderr, /^error: OUTPOST_ERR_DEVICE_NOT_FOUND: no device "dev_000000000000"/m);
  });

  await t.test('models: limits, listing, showing', async (t) => {
    const big = join(tempDir(t, 'big'), 'big.onnx');
    writeFileSync(big, Buffer.alloc(4096, 1));
    const tooBig = await relay.cli('models', 'push', big, '--name', 'big');
    t.equal(tooBig.code, 1);
    t.match(tooBig.stderr, /OUTPOST_ERR_PAYLOAD_TOO_LARGE: the model is 4096 bytes; this relay accepts up to 1000/);
    const missing = await relay.cli('models', 'push', join(FIXTURES, 'nope.onnx'), '--name', 'x');
    t.match(missing.stderr, /^error: cannot read .*nope.onnx: no such file/m);
    const bad = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'bad name');
    t.match(bad.stderr, /OUTPOST_ERR_BAD_REQUEST/);
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
    const list = await relay.cli('models', 'list');
    t.match(list.stdout, /^NAME\s+LATEST\s+VERSIONS\s+UPDATED\nlinear\s+1\s+1\s+/m);
    const show = await relay.cli('models', 'show', 'linear:1');
    t.match(show.stdout, /input  x: FP32\[-1,4\]/);
    const versions = await relay.cli('models', 'show', 'linear');
    t.match(versions.stdout, /inputs x: FP32\[-1,4\] -> outputs y: FP32\[-1,3\]/);
    const none = await relay.cli('deploy', 'ghost', '--device', d.deviceId);
    t.match(none.stderr, /OUTPOST_ERR_MODEL_NOT_FOUND: no model "ghost": push it first/);
    const noDevice = await relay.cli('deploy', 'linear');
    t.match(noDevice.stderr, /name at least one device/);
  });

  await t.test('deployments show, and a deploy that times out waiting', async (t) => {
    // No agent runs for this device, so the deployment stays pending.
    const dep = await relay.cli('deploy', 'linear', '--device', d.deviceId, '--wait', '--timeout', '1s');
    t.equal(dep.code, 1);
    t.match(dep.stderr, /timed out waiting for dep_[0-9a-f]+ \(1 pending\)/);
    const id = /(dep_[0-9a-f]+)/.exec(dep.stderr)![1]!;
    const show = await relay.cli('deployments', 'show', id);
    t.match(show.stdout, new RegExp(`${id}\\s+linear:1\\s+in-progress`));
    t.match(show.stdout, new RegExp(`${d.deviceId}\\s+pending`));
    const json = JSON.parse((await relay.cli('deployments', 'show', id, '--json')).stdout) as { counts: Record<string, number> };
    t.same(json.counts, { pending: 1 });
    const unknown = await relay.cli('deployments', 'show', 'dep_nope');
    t.match(unknown.stderr, /OUTPOST_ERR_DEPLOYMENT_NOT_FOUND/);
  });

  await t.test('usage errors and help', async (t) => {
    const help = await runCli(RELAY_BIN, ['--help']);
    for (const cmd of ['start', 'tokens', 'devices', 'models', 'deploy', 'deployments']) t.match(help.stdout, new RegExp(`^  ${cmd}\\b`, 'm'));
    const ttl = await relay.cli('tokens', 'enroll', '--ttl', 'forever');
    t.equal(ttl.code, 1);
    t.match(ttl.stderr, /invalid duration "forever"/);
    const human = await relay.cli('tokens', 'enroll');
    t.match(human.stdout, /^ope_[0-9a-f]{12}_\S+$/m);
    t.match(human.stderr, /on the device: outpost-agent enroll --relay/);
  });
});
