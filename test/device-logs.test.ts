// `outpost-relay devices logs`: the agent's recent log lines, asked of the real agent through the
// real relay; --follow sees a line logged later; an offline device is one clear error line.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES, RELAY_BIN, enrollDevice, startAgent, startRelay, type TestRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface LogLine {
  seq: number;
  ts: number;
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

/** `devices logs … --follow` as a person runs it: output as it comes, stopped with Ctrl-C. */
function follow(t: Test, relay: TestRelay, args: string[]) {
  const proc = spawn(process.execPath, [RELAY_BIN, 'devices', 'logs', ...args, '--follow'], { env: { ...process.env, ...relay.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return { proc, out, exited };
}

t.test('devices logs shows what the agent logged', async (t) => {
  const relay = await startRelay(t);
  const d = await enrollDevice(t, relay, 'cam');
  const agent = await startAgent(t, d);
  await waitFor('the device online', async () => (await relay.api<{ online: boolean }>('GET', `/v1/devices/${d.deviceId}`)).body.online);

  await t.test('its recent lines, in text and as JSON lines', async (t) => {
    const text = await relay.cli('devices', 'logs', d.deviceId);
    t.equal(text.code, 0, text.stderr);
    t.match(text.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}agent ready deviceId=dev_/m);
    t.match(text.stdout, /INFO {2}connected to the relay broker url=mqtts:\/\/127\.0\.0\.1:\d+/);
    t.notMatch(text.stdout, d.secret, 'no secret in the lines');

    const json = await relay.cli('devices', 'logs', d.deviceId, '--json', '--lines', '2');
    t.equal(json.code, 0, json.stderr);
    const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as LogLine);
    t.equal(lines.length, 2, '--lines 2: two lines');
    t.ok(lines[1]!.seq === lines[0]!.seq + 1, 'oldest first, seqs one apart');
    t.ok(lines.every((l) => typeof l.ts === 'number' && l.level === 'info' && typeof l.msg === 'string'));
    const all = (await relay.api<{ lines: LogLine[] }>('GET', `/v1/devices/${d.deviceId}/logs?limit=1000`)).body.lines;
    t.same(lines, all.slice(-2), 'the newest two');
    const after = (await relay.api<{ lines: LogLine[] }>('GET', `/v1/devices/${d.deviceId}/logs?after=${all[0]!.seq}&limit=1`)).body.lines;
    t.same(after, [all[1]], 'after=SEQ: the next line');
    const byName = await relay.cli('devices', 'logs', 'cam', '--json', '--lines', '1');
    t.equal(byName.code, 0, byName.stderr);
    t.same(JSON.parse(byName.stdout.trim()), all.at(-1), 'the device by its name');

    const help = await relay.cli('devices', 'logs', '--help');
    t.match(help.stdout, /Examples:\n {2}outpost-relay devices logs dev_\w+\n/);
  });

  await t.test('--follow prints a line logged later, until Ctrl-C', async (t) => {
    const f = follow(t, relay, [d.deviceId, '--lines', '1']);
    await waitFor('the newest line', () => f.out.stdout.split('\n').length > 1);
    t.equal(f.out.stdout.trim().split('\n').length, 1, '--lines 1 first');
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
    t.equal((await relay.cli('deploy', 'linear', '--device', d.deviceId, '--wait')).code, 0);
    await waitFor('"model serving" in the follow', () => /INFO {2}model serving model=linear version=1/.test(f.out.stdout));
    f.proc.kill('SIGINT');
    t.equal(await f.exited, 0, 'Ctrl-C ends it, and that is no failure');
    t.equal(f.out.stderr, '', 'nothing to say on the way');
    t.equal(f.out.stdout.split('\n').filter((l) => l.includes('model serving')).length, 1, 'each line once');
  });

  await t.test('the API: admin tokens only, bounded, clear refusals', async (t) => {
    const asDevice = await relay.api<{ error: { code: string } }>('GET', `/v1/devices/${d.deviceId}/logs`, undefined, d.secret);
    t.equal(asDevice.status, 403, 'a device cannot read logs, its own or another\'s');
    t.equal((await relay.api('GET', `/v1/devices/${d.deviceId}/logs`, undefined, null)).status, 401);
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'after=-1', 'after=99999999999999999', 'other=1']) {
      const res = await relay.api<{ error: { code: string } }>('GET', `/v1/devices/${d.deviceId}/logs?${q}`);
      t.equal(res.body.error.code, 'OUTPOST_ERR_BAD_REQUEST', q);
    }
    const none = await relay.api<{ error: { code: string } }>('GET', '/v1/devices/dev_000000000000/logs');
    t.equal(none.body.error.code, 'OUTPOST_ERR_DEVICE_NOT_FOUND');
  });

  await t.test('an offline device: one line saying where its logs are, exit 1; a follower waits for it', async (t) => {
    const f = follow(t, relay, [d.deviceId, '--lines', '1']);
    await waitFor('the follow under way', () => f.out.stdout.includes('\n'));
    await agent.stop();
    await waitFor('the device offline', async () => !(await relay.api<{ online: boolean }>('GET', `/v1/devices/${d.deviceId}`)).body.online);
    await waitFor('the follower says it waits', () => f.out.stderr.includes(`device ${d.deviceId} is offline; following again when it is back (Ctrl-C to stop)\n`));
    const res = await relay.cli('devices', 'logs', d.deviceId);
    t.equal(res.code, 1);
    t.equal(res.stderr, `error: OUTPOST_ERR_DEVICE_OFFLINE: device ${d.deviceId} is offline: its logs are on the device (journalctl -u outpost-agent or its stdout)\n`);
    t.equal(res.stdout, '');
    const late = await relay.cli('devices', 'logs', d.deviceId, '--follow');
    t.equal(late.code, 1, '--follow too, when the device is offline from the start');
    t.match(late.stderr, /^error: OUTPOST_ERR_DEVICE_OFFLINE: /);
    const http = await relay.api<{ error: { code: string } }>('GET', `/v1/devices/${d.deviceId}/logs`);
    t.equal(http.status, 409);

    // The restarted agent's seqs start at its start time: after the last one printed.
    const printed = f.out.stdout;
    await startAgent(t, d);
    await waitFor('the restarted agent\'s lines in the follow', () => /INFO {2}agent ready/.test(f.out.stdout.slice(printed.length)));
    t.match(f.out.stderr, `device ${d.deviceId} answers again\n`);
    t.equal(f.out.stderr.split('\n').filter((l) => l.includes('is offline')).length, 1, 'said once, however long it took');
    f.proc.kill('SIGINT');
    t.equal(await f.exited, 0);
  });
});
