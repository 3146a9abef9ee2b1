// Develop → train → deploy: the same bundle trains on the relay host and on a device (same
// seed, same model bytes), the model it produces is registered with its lineage and deployed.
// Consent, queueing, two-node jobs, cancel and timeout (no process left behind), and hostile
// or noisy jobs are covered too.

import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

const EXAMPLE = fileURLToPath(new URL('../examples/classifier', import.meta.url));

interface Job {
  id: string;
  state: string;
  error: string | null;
  runs: Array<{ rank: number; target: string; state: string; exitCode: number | null; error: string | null }>;
  metrics: Record<string, { latest: number; best: number }>;
  outputs: Array<{ rank: number; path: string; sha256: string; size: number }>;
  model: { name: string; version: number } | null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A bundle whose job records the pids of a process tree (shell + two sleeps) and waits. */
function treeBundle(t: Test): string {
  const dir = tempDir(t, 'tree');
  writeFileSync(join(dir, 'tree.sh'), 'sleep 600 & a=$!\nsleep 600 & b=$!\necho "$$ $a $b" > "$PIDFILE"\necho started\nwait\n');
  return dir;
}

t.test('training jobs', async (t) => {
  const relay = await startRelay(t);
  const a = await enrollDevice(t, relay, 'trainer-a', 'pool=gpu');
  const b = await enrollDevice(t, relay, 'trainer-b', 'pool=gpu');
  const dataset = tempDir(t, 'dataset');
  const agentA = await startAgent(t, a, ['--accept-training', '--dataset', `local-data=${dataset}`]);
  const agentB = await startAgent(t, b);
  await waitFor('both online', async () => (await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices')).body.devices.every((d) => d.online) || undefined);
  const job = async (id: string) => (await relay.api<Job>('GET', `/v1/jobs/${id}`)).body;

  await t.test('a device trains only when attached and when its agent consents', async (t) => {
    const neither = await relay.cli('jobs', 'submit', EXAMPLE, '--target', b.deviceId, '--command', 'node train.js');
    t.equal(neither.code, 1);
    t.match(neither.stderr, /OUTPOST_ERR_TARGET_NOT_READY: device dev_\w+ cannot train: it is not attached for training .*; and its agent does not accept training jobs/);
    t.equal((await relay.cli('targets', 'attach', b.deviceId, '--training')).code, 0);
    const noConsent = await relay.cli('jobs', 'submit', EXAMPLE, '--target', b.deviceId, '--command', 'node train.js');
    t.match(noConsent.stderr, /cannot train: its agent does not accept training jobs \(on the device: outpost-agent start --accept-training\)/);
    const notAttached = await relay.cli('jobs', 'submit', EXAMPLE, '--target', a.deviceId, '--command', 'node train.js');
    t.match(notAttached.stderr, /cannot train: it is not attached for training \(outpost-relay targets attach/);
    t.equal((await relay.cli('targets', 'attach', a.deviceId, '--training')).code, 0);
    const list = JSON.parse((await relay.cli('targets', 'list', '--json')).stdout) as Array<{ name: string; trains: boolean; deploys: boolean }>;
    t.match(list, [{ name: 'local', trains: true, deploys: false }]);
    t.equal(list.find((x) => x.name === a.deviceId)!.trains, true);
    t.equal(list.find((x) => x.name === b.deviceId)!.trains, false);
    const badSelector = await relay.cli('jobs', 'submit', EXAMPLE, '--target', 'pool=gpu,=x', '--command', 'node train.js');
    t.equal(badSelector.code, 1);
    t.match(badSelector.stderr, /OUTPOST_ERR_BAD_REQUEST: target "pool=gpu,=x": invalid label "=x": use key=value; use local, a device id, or a selector/);
  });

  let localJob: Job;
  await t.test('train on local, register the model with its lineage', async (t) => {
    const res = await relay.cli('jobs', 'submit', EXAMPLE, '--target', 'local', '--command', 'node train.js', '--register-model', 'classifier', '--output', 'model.onnx', '--follow');
    t.equal(res.code, 0, res.stderr);
    t.match(res.stdout, /outpost:metric loss=[\d.]+ accuracy=[\d.]+ step=150/);
    t.match(res.stderr, /job job_\w+ succeeded; registered classifier:1/);
    const id = /job (job_\w+) succeeded/.exec(res.stderr)![1]!;
    localJob = await job(id);
    t.equal(localJob.model?.version, 1);
    t.ok(localJob.metrics.accuracy!.best > 0.9, 'it learned');
    t.ok(localJob.metrics.loss!.best <= localJob.metrics.loss!.latest + 1e-9);
    const model = (await relay.api<{ lineage: { jobId: string; target: string; metrics: Record<string, unknown> } }>('GET', '/v1/models/classifier/versions/1')).body;
    t.match(model.lineage, { jobId: id, target: 'local', metrics: { loss: {}, accuracy: {} } });
    const show = await relay.cli('jobs', 'show', id);
    t.match(show.stdout, /accuracy\s+0\.\d+\s+0\.\d+\s+150/);
    t.match(show.stdout, /model\.onnx/);
  });

  await t.test('the same bundle on a device makes the same bytes, and the model deploys', async (t) => {
    const res = await relay.cli('jobs', 'submit', EXAMPLE, '--target', a.deviceId, '--command', 'node train.js', '--dataset', 'local-data', '--follow', '--json');
    t.equal(res.code, 0, res.stderr);
    const onDevice = JSON.parse(res.stdout) as Job;
    t.equal(onDevice.runs[0]!.target, a.deviceId);
    t.equal(onDevice.outputs.find((o) => o.path === 'model.onnx')!.sha256, localJob.outputs.find((o) => o.path === 'model.onnx')!.sha256, 'same seed, same model bytes');
    t.match(res.stderr, new RegExp(`generated, seed 42`), 'the empty dataset folder has no data.csv, so it generated');
    const dep = await relay.cli('deploy', 'classifier', '--device', a.deviceId, '--wait');
    t.equal(dep.code, 0, dep.stderr);
    const pred = await agentA.infer<{ outputs: Array<{ name: string; data: number[] }> }>('classifier', { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [1, 1, 0, 0, 0, -1, -1, 1] }] });
    t.equal(pred.status, 200);
    t.same(pred.body.outputs.find((o) => o.name === 'label')!.data, [0, 2], 'it classifies');
  });

  await t.test('one job at a time per target: the next waits in the queue', async (t) => {
    const dir = tempDir(t, 'gate');
    const gate = join(dir, 'open');
    writeFileSync(join(dir, 'wait.sh'), 'while [ ! -f "$GATE" ]; do sleep 0.05; done\necho through\n');
    const first = JSON.parse((await relay.cli('jobs', 'submit', dir, '--target', 'local', '--command', 'sh wait.sh', '--env', `GATE=${gate}`, '--json')).stdout) as Job;
    const second = JSON.parse((await relay.cli('jobs', 'submit', dir, '--target', 'local', '--command', 'echo second', '--json')).stdout) as Job;
    await waitFor('the first running', async () => (await job(first.id)).state === 'running' || undefined);
    t.equal((await job(second.id)).state, 'queued', 'the second waits');
    const targets = JSON.parse((await relay.cli('targets', 'list', '--json')).stdout) as Array<{ name: string; running: string | null }>;
    t.equal(targets.find((x) => x.name === 'local')!.running, first.id);
    writeFileSync(gate, '');
    await waitFor('both done', async () => ((await job(second.id)).state === 'succeeded' ? true : undefined));
    t.equal((await job(first.id)).state, 'succeeded');
    const logs = await relay.cli('jobs', 'logs', second.id);
    t.equal(logs.stdout, 'second\n');
  });

  await t.test('two nodes: the same bundle on two matching devices with rank and world size', async (t) => {
    await agentB.stop();
    const agentB2 = await startAgent(t, b, ['--accept-training']);
    await waitFor('b accepts training', async () => {
      const list = JSON.parse((await relay.cli('targets', 'list', '--json')).stdout) as Array<{ name: string; trains: boolean; online: boolean }>;
      return list.find((x) => x.name === b.deviceId && x.trains && x.online);
    });
    const dir = tempDir(t, 'ranks');
    writeFileSync(join(dir, 'rank.sh'), 'echo "rank $OUTPOST_RANK of $OUTPOST_WORLD_SIZE"\necho "{\\"step\\": 1, \\"score\\": $OUTPOST_RANK}" > "$OUTPOST_OUTPUT_DIR/metrics.jsonl"\n');
    const res = await relay.cli('jobs', 'submit', dir, '--target', 'pool=gpu', '--nodes', '2', '--command', 'sh rank.sh', '--follow', '--json');
    t.equal(res.code, 0, res.stderr);
    const j = JSON.parse(res.stdout) as Job;
    t.same(j.runs.map((r) => r.state), ['succeeded', 'succeeded']);
    t.same(new Set(j.runs.map((r) => r.target)), new Set([a.deviceId, b.deviceId]));
    t.match(res.stdout + res.stderr, /\[0\] rank 0 of 2/);
    t.match(res.stdout + res.stderr, /\[1\] rank 1 of 2/);
    t.same(j.outputs.map((o) => `${o.rank}:${o.path}`), ['0:metrics.jsonl', '1:metrics.jsonl']);
    t.match(j.metrics, { score: { best: 1 } }, 'metrics from the JSON-lines file');
    const out = tempDir(t, 'rank-outputs');
    const all = await relay.cli('jobs', 'download', j.id, '-o', out);
    t.equal(all.code, 0, all.stderr);
    t.same(readdirSync(out).sort(), ['rank-0', 'rank-1'], 'outputs of several ranks go in rank-N/');
    t.match(readFileSync(join(out, 'rank-1', 'metrics.jsonl'), 'utf8'), /"score": 1\b/);
    const one = await relay.cli('jobs', 'download', j.id, 'metrics.jsonl', '--rank', '0', '-o', join(out, 'only'));
    t.equal(one.code, 0, one.stderr);
    t.same(readdirSync(join(out, 'only')), ['metrics.jsonl'], 'one rank: no rank-N/ folder');
    const tooMany = await relay.cli('jobs', 'submit', dir, '--target', 'pool=gpu', '--nodes', '3', '--command', 'true');
    t.match(tooMany.stderr, /OUTPOST_ERR_TARGET_NOT_READY: 2 of 2 devices matching pool=gpu can run this job; it needs 3/);
    await agentB2.stop();
  });

  await t.test('cancel and timeout kill the whole process tree, on local and on a device', async (t) => {
    const dir = treeBundle(t);
    const pidDir = tempDir(t, 'pids');
    for (const [target, how] of [['local', 'cancel'], [a.deviceId, 'cancel'], ['local', 'timeout'], [a.deviceId, 'timeout']] as const) {
      const pidfile = join(pidDir, `${target}-${how}`);
      const args = ['jobs', 'submit', dir, '--target', target, '--command', 'sh tree.sh', '--env', `PIDFILE=${pidfile}`, '--json', ...(how === 'timeout' ? ['--timeout', '1s'] : [])];
      const submitted = JSON.parse((await relay.cli(...args)).stdout) as Job;
      await waitFor(`the tree on ${target}`, () => existsSync(pidfile) && readFileSync(pidfile, 'utf8').trim().split(' ').length === 3);
      const pids = readFileSync(pidfile, 'utf8').trim().split(' ').map(Number);
      t.ok(pids.every(alive), 'three processes running');
      if (how === 'cancel') {
        const c = await relay.cli('jobs', 'cancel', submitted.id);
        t.match(c.stdout, /canceled/);
      }
      const ended = await waitFor(`${how} on ${target}`, async () => {
        const j = await job(submitted.id);
        return j.state !== 'running' && j.runs.every((r) => r.state !== 'running') ? j : undefined;
      });
      t.equal(ended.state, how === 'cancel' ? 'canceled' : 'failed', `${how} on ${target}`);
      if (how === 'timeout') t.match(ended.error, /timed out after 1 s/);
      await waitFor(`no process left after ${how} on ${target}`, () => pids.every((p) => !alive(p)));
      t.pass(`${how} on ${target}: no process left`);
    }
  });

  await t.test('a crashing or very noisy job does not take the agent down', async (t) => {
    const dir = tempDir(t, 'noisy');
    writeFileSync(join(dir, 'noisy.sh'), 'head -c 30000000 /dev/zero | tr "\\\\0" "x" | fold -w 100\necho done-printing\nexit 3\n');
    const res = await relay.cli('jobs', 'submit', dir, '--target', a.deviceId, '--command', 'sh noisy.sh', '--json', '--follow');
    t.equal(res.code, 1, 'the job failed');
    const j = JSON.parse(res.stdout) as Job;
    t.match(j.runs[0], { state: 'failed', exitCode: 3, error: 'exited with code 3' });
    const pred = await agentA.infer('classifier', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 1, 0, 0] }] });
    t.equal(pred.status, 200, 'the device kept serving');
    const lines = (await relay.api<{ lines: unknown[] }>('GET', `/v1/jobs/${j.id}/logs?limit=10000`)).body.lines.length;
    t.ok(lines > 0 && lines <= 10_000, `logs were kept bounded (${lines} lines in the first page)`);
  });

  await t.test('a bundle that writes outside its folder is refused', async (t) => {
    const dir = tempDir(t, 'evil');
    mkdirSync(join(dir, 'inner'));
    writeFileSync(join(dir, 'inner', 'x'), 'x');
    const evil = join(dir, 'evil.tgz');
    execFileSync('tar', ['-czf', evil, '-C', join(dir, 'inner'), '--transform', 's,^,../../,', 'x']);
    const res = await relay.fetch(`${relay.httpUrl}/v1/bundles`, { method: 'POST', headers: { authorization: `Bearer ${relay.token}`, 'content-type': 'application/octet-stream' }, body: readFileSync(evil) });
    t.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    t.equal(body.error.code, 'OUTPOST_ERR_BUNDLE_INVALID');
    t.match(body.error.message, /"\.\.\/\.\.\/x" would be written outside the job folder/);
    const abs = join(dir, 'abs.tgz');
    execFileSync('tar', ['-czPf', abs, join(dir, 'inner', 'x')]);
    const res2 = await relay.fetch(`${relay.httpUrl}/v1/bundles`, { method: 'POST', headers: { authorization: `Bearer ${relay.token}`, 'content-type': 'application/octet-stream' }, body: readFileSync(abs) });
    t.equal(res2.status, 400);
  });
});
