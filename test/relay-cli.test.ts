// The relay CLI as a person uses it: human output, --json, labels, limits, one-line errors.

import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_BIN, FIXTURES, RELAY_BIN, closedPort, enrollDevice, runCli, startRelay, tempDir } from './helpers/programs.js';

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

t.test('relay CLI', async (t) => {
  const relay = await startRelay(t, { extraArgs: ['--max-model-size', '1KB'] });
  const d = await enrollDevice(t, relay, 'cli-dev', 'site=lab,tier=edge');

  await t.test('on the relay host it needs no flags', async (t) => {
    const res = await runCli(RELAY_BIN, ['devices', 'list', '--json', '--data-dir', relay.dataDir]);
    t.equal(res.code, 0, res.stderr);
    t.equal((JSON.parse(res.stdout) as unknown[]).length, 1);
    const nowhere = await runCli(RELAY_BIN, ['devices', 'list', '--data-dir', join(relay.dataDir, 'nope')]);
    t.equal(nowhere.code, 1);
    t.match(nowhere.stderr, /^error: no relay given, and none was ever started from .*nope: pass --relay URL or set OUTPOST_RELAY_URL/m);
    const port = await closedPort();
    const down = await runCli(RELAY_BIN, ['devices', 'list', '--relay', `http://127.0.0.1:${port}`, '--token', 'x']);
    t.match(down.stderr, new RegExp(`^error: cannot reach the relay at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\): is it running\\?`, 'm'));
    const badToken = await runCli(RELAY_BIN, ['devices', 'list', '--relay', relay.httpUrl, '--ca', relay.caFile!, '--token', 'opa_000000000000_nonono-nonono-nonono-no']);
    t.match(badToken.stderr, /^error: OUTPOST_ERR_UNAUTHORIZED: /m);
  });

  await t.test('errors that name the cause and the fix', async (t) => {
    // models push DIR: a folder is not a model (it used to be "cannot reach the relay (EISDIR)").
    const dir = await relay.cli('models', 'push', FIXTURES, '--name', 'x');
    t.equal(dir.code, 1);
    t.match(dir.stderr, new RegExp(`^error: ${FIXTURES.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is a directory: give the \\.onnx file \\(it holds .*/cnn\\.onnx, .*, …\\)$`, 'm'));
    const empty = tempDir(t, 'empty');
    t.match((await relay.cli('models', 'push', empty, '--name', 'x')).stderr, new RegExp(`^error: ${empty} is a directory: give the \\.onnx file$`, 'm'));
    // Unreadable: a file of mode 000, pushed by a user who is not its owner (root reads anything).
    const locked = join(tempDir(t, 'locked'), 'locked.onnx');
    cpSync(join(FIXTURES, 'linear.onnx'), locked);
    chmodSync(locked, 0o000);
    chmodSync(join(locked, '..'), 0o755);
    const asOther = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const unreadable = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [RELAY_BIN, 'models', 'push', locked, '--name', 'x', '--relay', relay.httpUrl, '--token', relay.token], { ...asOther, env: { ...process.env, OUTPOST_RELAY_DIR: join(empty, 'none') } });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('close', (code) => resolve({ code, stderr }));
    });
    t.equal(unreadable.code, 1);
    t.match(unreadable.stderr, new RegExp(`^error: cannot read ${locked}: permission denied; check its permissions \\(ls -l ${locked}\\)`, 'm'));

    // --relay HOST:PORT means https://HOST:PORT (relays serve TLS unless started with --insecure).
    const hostPort = relay.httpUrl.replace(/^https:\/\//, '');
    const bare = await runCli(RELAY_BIN, ['devices', 'list', '--json', '--relay', hostPort, '--token', relay.token, '--ca', relay.caFile!]);
    t.equal(bare.code, 0, bare.stderr);
    t.equal((JSON.parse(bare.stdout) as unknown[]).length, 1);
    const fromEnv = await runCli(RELAY_BIN, ['devices', 'list', '--json'], { ...relay.env, OUTPOST_RELAY_URL: `${hostPort}/` });
    t.equal(fromEnv.code, 0, fromEnv.stderr);
    const mqtt = await relay.cli('devices', 'list', '--relay', relay.mqttUrl);
    t.match(mqtt.stderr, /^error: --relay: mqtts:\/\/127\.0\.0\.1:\d+ is an MQTT URL: give the relay's HTTP URL, e\.g\. https:\/\/127\.0\.0\.1:8080$/m);
    t.match((await relay.cli('devices', 'list', '--relay', 'ftp://relay')).stderr, /^error: --relay: ftp:\/\/relay: give the relay's http:\/\/ or https:\/\/ URL/m);
    t.match((await relay.cli('devices', 'list', '--relay', 'http://')).stderr, /^error: --relay: "http:\/\/" is not a URL/m);

    // A client command on the relay host while the relay is stopped.
    const stopped = await startRelay(t);
    await stopped.stop();
    const down = await runCli(RELAY_BIN, ['devices', 'list', '--data-dir', stopped.dataDir]);
    t.equal(down.code, 1);
    t.equal(down.stderr, `error: the relay in ${stopped.dataDir} is not running: start it with outpost-relay start --data-dir ${stopped.dataDir} (or pass --relay URL)\n`);
    const fromEnvDir = await runCli(RELAY_BIN, ['devices', 'list'], { OUTPOST_RELAY_DIR: stopped.dataDir });
    t.match(fromEnvDir.stderr, /is not running: start it with outpost-relay start \(or pass --relay URL\)/, 'the environment says where: start finds it too');
    // Killed: its relay.json stayed behind, naming a process that is gone.
    const pid = await deadPid();
    writeFileSync(join(stopped.dataDir, 'relay.json'), JSON.stringify({ httpUrl: 'http://127.0.0.1:1', mqttUrl: 'mqtt://127.0.0.1:1', pid }));
    const killed = await runCli(RELAY_BIN, ['devices', 'list', '--data-dir', stopped.dataDir]);
    t.match(killed.stderr, new RegExp(`^error: the relay in .* is not running \\(pid ${pid} is gone\\): start it with`, 'm'));
    writeFileSync(join(stopped.dataDir, 'relay.json'), '{"httpUrl": "http://127.0');
    t.match((await runCli(RELAY_BIN, ['devices', 'list', '--data-dir', stopped.dataDir])).stderr, /is not running: start it with/, 'a half-written relay.json too');

    // An API token given to enroll: said by the agent before it sends anything, and by the relay.
    const agentDir = tempDir(t, 'enroll');
    const wrong = await runCli(AGENT_BIN, ['enroll', '--relay', `http://127.0.0.1:${await closedPort()}`, '--token', relay.token, '--data-dir', agentDir]);
    t.equal(wrong.code, 1);
    t.equal(wrong.stderr, 'error: OUTPOST_ERR_ENROLL_TOKEN_INVALID: that is an API token (opa_…), not an enrollment token (ope_…): make one on the relay host with outpost-relay tokens enroll\n', 'no request was made: the relay URL is closed');
    const secret = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', d.secret, '--data-dir', agentDir]);
    t.match(secret.stderr, /that is a device secret \(ods_…\), not an enrollment token/);
    const garbage = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', 'hunter2', '--data-dir', agentDir]);
    t.match(garbage.stderr, /that is not an enrollment token \(they start with ope_\)/);
    const api = await relay.api<{ error: { code: string; message: string } }>('POST', '/v1/enroll', {}, relay.token);
    t.equal(api.status, 401);
    t.same(api.body.error, { code: 'OUTPOST_ERR_ENROLL_TOKEN_INVALID', message: 'that is an API token (opa_…), not an enrollment token (ope_…): make one on the relay host with outpost-relay tokens enroll' });
    // The agent takes HOST:PORT too, and keeps the URL it means.
    const tok = JSON.parse((await relay.cli('tokens', 'enroll', '--json')).stdout) as { token: string };
    const enrolled = await runCli(AGENT_BIN, ['enroll', '--relay', hostPort, '--token', tok.token, '--data-dir', agentDir, '--json']);
    t.equal(enrolled.code, 0, enrolled.stderr);
    t.equal((JSON.parse(readFileSync(join(agentDir, 'device.json'), 'utf8')) as { relayUrl: string }).relayUrl, relay.httpUrl);
    const badUrl = await runCli(AGENT_BIN, ['enroll', '--relay', 'mqtt://relay:1883', '--token', tok.token, '--data-dir', join(agentDir, 'x')]);
    t.match(badUrl.stderr, /mqtt:\/\/relay:1883 is an MQTT URL: give the relay's HTTP URL, e\.g\. https:\/\/relay:8080/);
  });

  await t.test('the API describes itself at /v1/openapi.json, without a token', async (t) => {
    const res = await relay.fetch(`${relay.httpUrl}/v1/openapi.json`);
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
    t.match(missing.stderr, /^error: .*nope\.onnx does not exist: give the path of the \.onnx file$/m);
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
    t.match(show.stdout, new RegExp(`${d.deviceId}\\s+cli-dev\\s+pending`), "the device, its name and its state");
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
