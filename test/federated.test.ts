// Federated jobs end to end: a real relay and three real agents, each with its own local data
// (examples/federated's non-IID split), train the example's classifier in rounds. The relay's
// average is checked against FedAvg computed here from the clients' own updates; bad updates are
// refused and named; a client killed mid-round is dropped at the deadline; a relay killed
// mid-round resumes that round; the final model is registered with its lineage and rolled out.

import t from 'tap';
import type { RoundSummary } from '@outpost/shared';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir, type Device, type TestAgent, type TestRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

const EXAMPLE = fileURLToPath(new URL('../examples/federated', import.meta.url));
// A client of the example, with test hooks read from its own data folder: `hang` (it waits while
// the file is there: a slow or stuck client, released by the test) and `fault`, an update the relay must refuse: nan and shape
// (train.js's own hooks), garbage (not a model), huge (past the size bound), silent (no
// num_examples).
const COMMAND = [
  'while [ -f "$OUTPOST_DATA_DIR/hang" ]; do sleep 0.1; done',
  'f="$(cat "$OUTPOST_DATA_DIR/fault" 2>/dev/null)"',
  'case "$f" in',
  '  garbage) echo nope > "$OUTPOST_OUTPUT_DIR/model.onnx"; echo "outpost:metric num_examples=5";;',
  '  huge) head -c 3000000 /dev/zero > "$OUTPOST_OUTPUT_DIR/model.onnx"; echo "outpost:metric num_examples=5";;',
  '  silent) node train.js | grep -v num_examples;;',
  '  *) FAULT="$f" node train.js;;',
  'esac',
].join('\n');

/** A round's attempt as GET /v1/jobs/{id} answers it. */
type Round = RoundSummary;

interface Job {
  id: string;
  state: string;
  error: string | null;
  runs: Array<{ rank: number; target: string; state: string; error: string | null }>;
  outputs: Array<{ rank: number; path: string; sha256: string; size: number }>;
  model: { name: string; version: number; deploymentId?: string } | null;
  federated: { rounds: number; completed: number; waiting: string | null } | null;
  rounds: Round[];
}

type Weights = { W: { dims: number[]; values: number[] }; b: { dims: number[]; values: number[] } };
const { readWeights } = (await import(join(EXAMPLE, 'onnx.js'))) as { readWeights(buf: Uint8Array): Weights };

/** FedAvg as the issue defines it, written here apart from the relay's code: Σ nᵢ·wᵢ / Σ nᵢ, per weight. */
function fedAvg(updates: Array<{ weights: Weights; n: number }>): { W: number[]; b: number[] } {
  const total = updates.reduce((s, u) => s + u.n, 0);
  const avg = (pick: (w: Weights) => number[]) => pick(updates[0]!.weights).map((_, i) => updates.reduce((s, u) => s + pick(u.weights)[i]! * u.n, 0) / total);
  return { W: avg((w) => w.W.values), b: avg((w) => w.b.values) };
}

t.test('federated jobs', async (t) => {
  let relay: TestRelay = await startRelay(t);
  const data = tempDir(t, 'federated-data');
  execFileSync(process.execPath, [join(EXAMPLE, 'make-data.js'), data, '--devices', '3'], { stdio: 'ignore' });
  const initial = join(tempDir(t, 'initial'), 'initial.onnx');
  execFileSync(process.execPath, [join(EXAMPLE, 'init.js'), initial], { stdio: 'ignore' });
  t.equal((await relay.cli('models', 'push', initial, '--name', 'fed')).code, 0);

  const names = ['fed-a', 'fed-b', 'fed-c'];
  const devices: Device[] = [];
  const agents: TestAgent[] = [];
  const shard = (i: number) => join(data, `device-${i + 1}`);
  const start = (i: number) => startAgent(t, devices[i]!, ['--accept-training', '--dataset', `local=${shard(i)}`]);
  for (const [i, name] of names.entries()) {
    devices.push(await enrollDevice(t, relay, name, 'pool=fed'));
    t.equal((await relay.cli('targets', 'attach', devices[i]!.deviceId, '--training')).code, 0);
    agents.push(await start(i));
  }
  const ids = devices.map((d) => d.deviceId);
  const allOnline = () => waitFor('every client online and able to train', async () => (await relay.api<{ devices: Array<{ id: string; online: boolean }> }>('GET', '/v1/devices')).body.devices.filter((d) => ids.includes(d.id) && d.online).length === 3 || undefined, 30_000);
  await allOnline();
  const job = async (id: string) => (await relay.api<Job>('GET', `/v1/jobs/${id}`)).body;
  const submit = (extra: string[]) => relay.cli('jobs', 'submit', EXAMPLE, '--federated', '--target', 'pool=fed', '--initial-model', 'fed', '--dataset', 'local', '--command', COMMAND, ...extra);
  const ended = (id: string, timeoutMs = 90_000) => waitFor(`job ${id} to end`, async () => ((j) => (['succeeded', 'failed', 'canceled'].includes(j.state) ? j : undefined))(await job(id)), timeoutMs, 200);
  const artifact = (sha: string) => readFileSync(join(relay.dataDir, 'artifacts', sha));
  const hook = (i: number, name: 'fault' | 'hang', value: string | null) => (value === null ? rmSync(join(shard(i), name), { force: true }) : writeFileSync(join(shard(i), name), value));

  await t.test('a federated job is refused when it cannot run, naming the fix', async (t) => {
    const notSelector = await relay.cli('jobs', 'submit', EXAMPLE, '--federated', '--target', ids[0]!, '--rounds', '1', '--min-clients', '1', '--initial-model', 'fed', '--command', 'true');
    t.equal(notSelector.code, 1);
    t.match(notSelector.stderr, /a federated job trains on devices chosen by labels: give --target k=v/);
    const tooMany = await submit(['--rounds', '1', '--min-clients', '4']);
    t.match(tooMany.stderr, /OUTPOST_ERR_TARGET_NOT_READY: 3 of 3 devices matching pool=fed can run this job; it needs 4/);
    const noModel = await relay.cli('jobs', 'submit', EXAMPLE, '--federated', '--target', 'pool=fed', '--rounds', '1', '--min-clients', '1', '--initial-model', 'nope', '--command', 'true');
    t.match(noModel.stderr, /OUTPOST_ERR_MODEL_NOT_FOUND: .*nope.*push the initial model first/);
    const noMu = await submit(['--rounds', '1', '--min-clients', '1', '--strategy', 'fedprox']);
    t.match(noMu.stderr, /FedProx needs its proximal term: add --proximal-mu MU/);
    const stray = await relay.cli('jobs', 'submit', EXAMPLE, '--target', 'pool=fed', '--rounds', '3', '--command', 'true');
    t.match(stray.stderr, /--rounds goes with --federated/);
    const missing = await relay.cli('jobs', 'submit', EXAMPLE, '--federated', '--target', 'pool=fed', '--command', 'true');
    t.match(missing.stderr, /a federated job needs --rounds R, --min-clients K, --initial-model NAME\[:VERSION\]/);
    const muWithoutProx = await submit(['--rounds', '1', '--min-clients', '1', '--proximal-mu', '0.1']);
    t.match(muWithoutProx.stderr, /--proximal-mu 0\.1 is FedProx's: add --strategy fedprox/);
    t.equal((await relay.cli('models', 'push', join(FIXTURES, 'rowsum.onnx'), '--name', 'no-weights')).code, 0);
    const noWeights = await relay.cli('jobs', 'submit', EXAMPLE, '--federated', '--target', 'pool=fed', '--rounds', '1', '--min-clients', '1', '--initial-model', 'no-weights', '--command', 'true');
    t.match(noWeights.stderr, /OUTPOST_ERR_MODEL_INVALID: no-weights has no float weights \(initializers\) to train and average/);
    const otherOutput = await submit(['--rounds', '1', '--min-clients', '1', '--register-model', 'fed', '--output', 'other.onnx']);
    t.match(otherOutput.stderr, /a federated job registers its averaged model\.onnx: drop --output/);
    const listed = (await relay.api<{ jobs: Array<{ id: string }> }>('GET', '/v1/jobs')).body;
    t.ok(Array.isArray(listed.jobs), 'the jobs list answers');
    t.equal(listed.jobs.length, 0, 'nothing was queued by the refusals');
  });

  await t.test('each round averages the clients\' updates weighted by their examples', async (t) => {
    const res = await submit(['--rounds', '2', '--min-clients', '3', '--register-model', 'fed', '--follow', '--json']);
    t.equal(res.code, 0, res.stderr);
    t.match(res.stderr, /round 1\/2: asked 3 client\(s\)/);
    t.match(res.stderr, /round 1\/2: averaged 3 update\(s\) \(num_examples=600 /);
    t.match(res.stderr, /round 2\/2: averaged 3 update\(s\)/);
    const done = JSON.parse(res.stdout) as Job;
    t.equal(done.state, 'succeeded');
    const j = await job(done.id);
    t.same(j.rounds.map((r) => [r.round, r.attempt, r.state]), [[1, 1, 'aggregated'], [2, 1, 'aggregated']]);
    t.same(j.federated?.completed, 2);
    for (const r of j.rounds) {
      t.same(r.participants.map((p) => p.numExamples).sort(), [150, 200, 250], 'each client trained on its own shard');
      t.same(r.dropped, []);
      // The clients' own updates, read from what they uploaded, averaged here.
      const updates = r.participants.map((p) => {
        const rank = r.clients.find((c) => c.deviceId === p.deviceId)!.rank;
        const out = j.outputs.find((o) => o.rank === rank && o.path === 'model.onnx')!;
        return { weights: readWeights(artifact(out.sha256)), n: p.numExamples };
      });
      const expected = fedAvg(updates);
      const got = readWeights(artifact(r.resultSha256!));
      t.same(got.W.dims, [4, 3]);
      const worst = Math.max(...expected.W.map((v, i) => Math.abs(v - got.W.values[i]!)), ...expected.b.map((v, i) => Math.abs(v - got.b.values[i]!)));
      t.ok(worst < 1e-6, `round ${r.round}'s global model is FedAvg of its updates (largest difference ${worst})`);
      t.not(JSON.stringify(got.W.values), JSON.stringify(updates[0]!.weights.W.values), 'and not any one client\'s');
    }
    t.equal(j.rounds[1]!.globalSha256, j.rounds[0]!.resultSha256, 'round 2 starts from round 1\'s average');
    // The final model: registered with its lineage, its bytes the last round's average.
    t.same(j.model, { name: 'fed', version: 2 });
    const model = JSON.parse((await relay.cli('models', 'show', 'fed:2', '--json')).stdout) as { sha256: string; lineage: { jobId: string; federated: { rounds: number; participants: string[] } } };
    t.equal(model.sha256, j.rounds[1]!.resultSha256);
    t.same(model.lineage.federated, { rounds: 2, participants: [...ids].sort(), initialModel: { name: 'fed', version: 1 } });
    const shown = await relay.cli('jobs', 'show', done.id);
    t.match(shown.stdout, /federated fedavg from fed:1: 2 of 2 rounds done; at least 3 client\(s\)/);
    t.match(shown.stdout, /registered model fed:2/);
  });

  await t.test('a wrong-shaped or NaN update is refused and its client named; the round goes on with the rest', async (t) => {
    hook(1, 'fault', 'nan');
    hook(2, 'fault', 'shape');
    t.teardown(() => {
      hook(1, 'fault', null);
      hook(2, 'fault', null);
    });
    const res = await submit(['--rounds', '1', '--min-clients', '1', '--json']);
    t.equal(res.code, 0, res.stderr);
    const j = await ended((JSON.parse(res.stdout) as Job).id);
    t.equal(j.state, 'succeeded', j.error ?? '');
    const r = j.rounds[0]!;
    t.same(r.participants.map((p) => p.deviceId), [ids[0]]);
    const reasons = Object.fromEntries(r.dropped.map((d) => [d.client, d.reason]));
    t.match(reasons[ids[1]!], /update refused: initializer W has a non-finite value \(NaN\)/);
    t.match(reasons[ids[2]!], /update refused: initializer W has shape \[3, 4\], the global model \[4, 3\]/);
    t.equal(r.resultSha256 && readWeights(artifact(r.resultSha256)).W.values.every(Number.isFinite), true, 'nothing of the NaN update got in');
  });

  await t.test('an update that is no model, too large, or without its examples is refused, each named', async (t) => {
    hook(0, 'fault', 'garbage');
    hook(1, 'fault', 'huge');
    hook(2, 'fault', 'silent');
    t.teardown(() => {
      for (const i of [0, 1, 2]) hook(i, 'fault', null);
    });
    const res = await submit(['--rounds', '1', '--min-clients', '1', '--round-attempts', '1', '--json']);
    const j = await ended((JSON.parse(res.stdout) as Job).id);
    t.equal(j.state, 'failed');
    const reasons = Object.fromEntries(j.rounds[0]!.dropped.map((d) => [d.client, d.reason]));
    t.match(reasons[ids[0]!], /update refused: its model\.onnx cannot be read as an ONNX model/);
    t.match(reasons[ids[1]!], /update refused: its model\.onnx is 3000000 bytes, over \d+ \(twice the global model's \d+ and 1 MiB\)/);
    t.match(reasons[ids[2]!], /update refused: the run reported no num_examples \(print "outpost:metric num_examples=N"\)/);
    t.equal(j.rounds[0]!.resultSha256, null, 'nothing was averaged');
  });

  await t.test('too few good updates: the round is tried again, then the job fails saying why', async (t) => {
    for (const i of [0, 1, 2]) hook(i, 'fault', 'nan');
    t.teardown(() => {
      for (const i of [0, 1, 2]) hook(i, 'fault', null);
    });
    const res = await submit(['--rounds', '1', '--min-clients', '2', '--round-attempts', '2', '--json']);
    const j = await ended((JSON.parse(res.stdout) as Job).id);
    t.equal(j.state, 'failed');
    t.same(j.rounds.map((r) => [r.round, r.attempt, r.state]), [[1, 1, 'retried'], [1, 2, 'retried']]);
    t.match(j.error, /round 1 had too few good updates 2 times \(last: 0 good updates of 3 asked; the round needs 2\)/);
  });

  await t.test('a job canceled mid-round ends there: its round canceled, its clients stopped, no model made', async (t) => {
    for (const i of [0, 1, 2]) hook(i, 'hang', '');
    t.teardown(() => {
      for (const i of [0, 1, 2]) hook(i, 'hang', null);
    });
    const versions = async () => (JSON.parse((await relay.cli('models', 'show', 'fed', '--json')).stdout) as { versions?: unknown[] }).versions?.length;
    const before = await versions();
    t.ok(before! > 0, `fed has versions (${before})`);
    const res = await submit(['--rounds', '2', '--min-clients', '3', '--json']);
    const id = (JSON.parse(res.stdout) as Job).id;
    await waitFor('round 1 running on every client', async () => (await job(id)).runs.filter((r) => r.state === 'running').length === 3 || undefined, 30_000);
    t.equal((await relay.cli('jobs', 'cancel', id)).code, 0);
    const j = await waitFor('every client stopped', async () => ((x) => (x.runs.every((r) => ['canceled', 'failed'].includes(r.state)) ? x : undefined))(await job(id)), 30_000);
    t.equal(j.state, 'canceled');
    t.same(j.rounds.map((r) => [r.round, r.state]), [[1, 'canceled']]);
    t.equal(j.model, null);
    t.equal(await versions(), before, 'no version registered');
  });

  await t.test('two federated jobs on one pool take turns: a device trains for one job at a time', async (t) => {
    const first = JSON.parse((await submit(['--rounds', '1', '--min-clients', '3', '--json'])).stdout) as Job;
    const second = JSON.parse((await submit(['--rounds', '1', '--min-clients', '3', '--json'])).stdout) as Job;
    const [a, b] = [await ended(first.id), await ended(second.id)];
    t.equal(a.state, 'succeeded', a.error ?? '');
    t.equal(b.state, 'succeeded', b.error ?? '');
    const span = (j: Job) => [Date.parse(j.rounds[0]!.startedAt!), Date.parse(j.rounds[0]!.finishedAt!)] as const;
    const [[s1, e1], [s2, e2]] = [span(a), span(b)];
    t.ok(e1 <= s2 || e2 <= s1, 'one round began after the other ended (every client was busy with the first)');
  });

  await t.test('a client killed mid-round is dropped at the deadline; the round completes with the rest', async (t) => {
    hook(2, 'hang', '');
    const res = await submit(['--rounds', '1', '--min-clients', '2', '--round-deadline', '8s', '--json']);
    const id = (JSON.parse(res.stdout) as Job).id;
    await waitFor('the stuck client running', async () => (await job(id)).runs.some((r) => r.target === ids[2] && r.state === 'running') || undefined, 30_000);
    await agents[2]!.kill();
    hook(2, 'hang', null);
    const j = await ended(id);
    t.equal(j.state, 'succeeded', j.error ?? '');
    const r = j.rounds[0]!;
    t.same(r.participants.map((p) => p.deviceId).sort(), [ids[0], ids[1]].sort());
    t.same(r.dropped, [{ client: ids[2], reason: 'no update by the round deadline' }]);
    t.match(j.runs.find((x) => x.target === ids[2])!, { state: 'canceled', error: /dropped from round 1: no update by the round deadline/ });
    // Back for the next tests: the restarted agent ends what its killed self left running.
    agents[2] = await start(2);
    await allOnline();
  });

  await t.test('a relay killed mid-round resumes the round; the final model is registered and rolled out', async (t) => {
    for (const i of [0, 1, 2]) hook(i, 'hang', '');
    t.teardown(() => {
      for (const i of [0, 1, 2]) hook(i, 'hang', null);
    });
    const res = await submit(['--rounds', '2', '--min-clients', '3', '--register-model', 'fed', '--deploy-selector', 'pool=fed', '--json']);
    t.equal(res.code, 0, res.stderr);
    const id = (JSON.parse(res.stdout) as Job).id;
    await waitFor('round 1 running on every client', async () => (await job(id)).runs.filter((r) => r.state === 'running').length === 3 || undefined, 30_000);
    const ports = ['--http-port', new URL(relay.httpUrl).port, '--mqtt-port', new URL(relay.mqttUrl).port];
    await relay.kill();
    relay = await startRelay(t, { dataDir: relay.dataDir, extraArgs: ports });
    for (const i of [0, 1, 2]) hook(i, 'hang', null);
    const j = await ended(id, 120_000);
    t.equal(j.state, 'succeeded', j.error ?? '');
    t.same(j.rounds.map((r) => [r.round, r.attempt, r.state, r.participants.length]), [[1, 1, 'aggregated', 3], [2, 1, 'aggregated', 3]], 'round 1 went on where it was, not from the start');
    t.ok(relay.logs.some((l) => l.msg === 'federated round 1 of 2 aggregated'), 'the restarted relay closed round 1');
    t.ok(j.model?.deploymentId, 'a rollout of the final model was made');
    const { version } = j.model!;
    await waitFor('every client serving the federated model', async () => {
      const d = (await relay.api<{ state: string; devices: Array<{ state: string }> }>('GET', `/v1/deployments/${j.model!.deploymentId}`)).body;
      return (d.state === 'succeeded' && d.devices.length === 3 && d.devices.every((x) => x.state === 'serving')) || undefined;
    }, 60_000);
    const model = JSON.parse((await relay.cli('models', 'show', `fed:${version}`, '--json')).stdout) as { lineage: { jobId: string } };
    t.equal(model.lineage.jobId, id, 'the version rolled out is the one this job made');
    const answer = await agents[0]!.infer<{ model_version: string; outputs: Array<{ name: string; data: number[] }> }>('fed', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 1, 0, 0] }] });
    t.equal(answer.status, 200, JSON.stringify(answer.body));
    t.equal(answer.body.model_version, String(version));
    t.equal(answer.body.outputs.find((o) => o.name === 'label')?.data[0], 0, 'a point of class 0 is classed 0');
  });
});
