// The fleet model the CLI and the dashboard share: what each stream message changes, the
// bounds on job logs and metric points, and (property) that a deployment's counts always
// agree with its devices' states, whatever order progress messages come in.

import t from 'tap';
import fc from 'fast-check';
import { FleetModel, betterOf, formatAgo, formatElapsed, lowerIsBetter, type DeploymentSummary, type DeviceSummary, type JobState, type JobSummary, type StreamMessage } from '@outpost/shared';

const ts = new Date(10_000).toISOString();
const device = (id: string, extra: Partial<DeviceSummary> = {}): DeviceSummary => ({ id, name: `cam-${id}`, labels: {}, online: false, lastSeen: null, createdAt: ts, models: [], health: null, ...extra });
const health = { ts: 0, uptimeS: 1, cpuPercent: 5, memory: { rssBytes: 1, usedBytes: 1, totalBytes: 2 }, disk: { freeBytes: 1, totalBytes: 2 }, models: {} };
let seq = 0;
const msg = (m: Record<string, unknown>) => ({ seq: ++seq, ts, ...m }) as StreamMessage;
const deployment = (devices: string[]): DeploymentSummary => ({
  id: 'dep_1', model: 'm', version: 1, sha256: 'a'.repeat(64), state: 'in-progress', selector: null, strategy: null, serving: null, createdAt: ts,
  counts: { pending: devices.length }, devices: devices.map((deviceId) => ({ deviceId, state: 'pending', reason: null, updatedAt: ts })),
});

t.test('each message says what it changed', async (t) => {
  const f = new FleetModel();
  t.same(f.apply(msg({ type: 'snapshot', devices: [device('a')], deployments: [], jobs: [] })), { kind: 'reset' });
  t.same(f.apply(msg({ type: 'device.health', deviceId: 'a', health })), { kind: 'device', id: 'a', removed: false, healthOnly: true }, 'a heartbeat moves health alone');
  t.equal(f.devices.get('a')!.lastSeen, ts);
  t.same(f.apply(msg({ type: 'device.status', deviceId: 'a', online: true, lastSeen: ts })), { kind: 'device', id: 'a', removed: false, healthOnly: false });
  t.same(f.apply(msg({ type: 'device.status', deviceId: 'nobody', online: true, lastSeen: ts })), { kind: 'none' }, 'an unknown device changes nothing');
  t.same(f.apply(msg({ type: 'device.quota', deviceId: 'a', quota: 'rate', action: 'dropped', detail: '', suppressed: 0 })), { kind: 'none' });
  f.apply(msg({ type: 'device.updated', device: { ...device('a'), name: 'front-door' } }));
  t.equal(f.deviceName('a'), 'front-door');
  t.equal(f.deviceName('zzz'), 'zzz', 'an unknown id is shown as itself');
  t.same(f.apply(msg({ type: 'device.removed', deviceId: 'a' })), { kind: 'device', id: 'a', removed: true, healthOnly: false });
  t.equal(f.devices.size, 0);
  t.equal(f.lastSeq, seq);
});

t.test('deployments and jobs from the API do not overwrite what the stream said', async (t) => {
  const f = new FleetModel();
  f.apply(msg({ type: 'deployment.created', deployment: deployment(['a']) }));
  f.apply(msg({ type: 'deployment.state', deploymentId: 'dep_1', state: 'succeeded' }));
  f.addDeployments([deployment(['a'])]);
  t.equal(f.deployments.get('dep_1')!.state, 'succeeded');
  const job: JobSummary = { id: 'job_1', state: 'queued', target: 'local', command: 'x', nodes: 1, createdAt: ts, startedAt: null, finishedAt: null, error: null, runs: [], metrics: {}, outputs: [], model: null, federated: null, score: null };
  f.addJobs([job]);
  f.apply(msg({ type: 'job.state', jobId: 'job_1', state: 'running', error: null }));
  t.equal(f.jobs.get('job_1')!.startedAt, ts, 'running: started now');
  f.apply(msg({ type: 'job.run', jobId: 'job_1', rank: 0, target: 'local', state: 'running', exitCode: null, error: null }));
  f.apply(msg({ type: 'job.run', jobId: 'job_1', rank: 0, target: 'local', state: 'succeeded', exitCode: 0, error: null }));
  t.same(f.jobs.get('job_1')!.runs.map((r) => r.state), ['succeeded'], 'a run is updated in place');
  f.apply(msg({ type: 'job.state', jobId: 'job_1', state: 'succeeded', error: null }));
  t.equal(f.jobs.get('job_1')!.finishedAt, ts);
  f.addJobs([{ ...job, state: 'queued' }]);
  t.equal(f.jobs.get('job_1')!.state, 'succeeded');
});

t.test('job logs and metric points are bounded; best follows the metric rule', async (t) => {
  const f = new FleetModel({ logLines: 3, metricPoints: 4 });
  f.addJobs([{ id: 'j', state: 'running', target: 'local', command: 'x', nodes: 1, createdAt: ts, startedAt: ts, finishedAt: null, error: null, runs: [], metrics: {}, outputs: [], model: null, federated: null, score: null }]);
  for (let i = 1; i <= 5; i++) f.apply(msg({ type: 'job.log', jobId: 'j', lines: [{ seq: i, rank: 0, ts: i, stream: 'stdout', text: `line ${i}` }] }));
  t.same(f.jobLogs.get('j')!.map((l) => l.seq), [3, 4, 5], 'the tail');
  const losses = [0.9, 0.5, 0.7];
  const accs = [0.2, 0.8, 0.6];
  losses.forEach((v, step) => f.apply(msg({ type: 'job.metric', jobId: 'j', rank: 0, points: [{ name: 'loss', value: v, step }, { name: 'accuracy', value: accs[step]!, step }] })));
  t.same(f.jobs.get('j')!.metrics.loss, { latest: 0.7, best: 0.5, step: 2 }, 'lowest loss');
  t.same(f.jobs.get('j')!.metrics.accuracy, { latest: 0.6, best: 0.8, step: 2 }, 'highest accuracy');
  t.equal(f.jobMetrics.get('j')!.length, 4, 'points bounded');
  t.ok(lowerIsBetter('val_mse') && !lowerIsBetter('f1'));
  t.equal(betterOf('loss', 1, 2), 1);
  f.clear();
  t.equal(f.jobs.size + f.jobLogs.size + f.jobMetrics.size + f.lastSeq, 0);
});

t.test('a deployment\'s counts agree with its devices, whatever the order of progress', async (t) => {
  const states = ['pending', 'downloading', 'loading', 'serving', 'healthy', 'failed', 'superseded'];
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.constantFrom(...states)), { maxLength: 60 }), (steps) => {
      const f = new FleetModel();
      const ids = ['a', 'b', 'c', 'd'];
      f.apply(msg({ type: 'deployment.created', deployment: deployment(ids) }));
      // Index 4 and 5 name devices the deployment does not have: those messages change nothing.
      for (const [i, state] of steps) f.apply(msg({ type: 'deployment.progress', deploymentId: 'dep_1', deviceId: ids[i] ?? `x${i}`, state, reason: null }));
      const d = f.deployments.get('dep_1')!;
      const expected: Record<string, number> = {};
      for (const x of d.devices) expected[x.state] = (expected[x.state] ?? 0) + 1;
      return JSON.stringify(Object.entries(d.counts).sort()) === JSON.stringify(Object.entries(expected).sort());
    }),
  );
  t.pass('counts always match');
});

t.test('formatting for people', async (t) => {
  const now = Date.parse(ts);
  t.equal(formatAgo(null), 'never');
  t.equal(formatAgo(new Date(now - 5_000).toISOString(), now), '5s ago');
  t.equal(formatAgo(new Date(now - 5 * 60_000).toISOString(), now), '5m ago');
  t.equal(formatAgo(new Date(now - 5 * 3_600_000).toISOString(), now), '5h ago');
  t.equal(formatAgo(new Date(now - 3 * 86_400_000).toISOString(), now), '3d ago');
  t.equal(formatAgo(new Date(now + 5_000).toISOString(), now), '0s ago', 'a clock ahead is now');
  t.equal(formatElapsed(850), '850 ms');
  t.equal(formatElapsed(42_000), '42 s');
  t.equal(formatElapsed(425_000), '7m 05s');
  t.equal(formatElapsed(12_000_000), '3h 20m');
  t.equal(formatElapsed(-1), '-');
});

t.test('a snapshot after a gap drops active deployments and jobs it does not carry', async (t) => {
  const f = new FleetModel();
  const job = (id: string, state: JobState): JobSummary => ({ id, state, target: 'local', command: 'x', nodes: 1, createdAt: ts, startedAt: null, finishedAt: null, error: null, runs: [], metrics: {}, outputs: [], model: null, federated: null, score: null });
  f.addDeployments([{ ...deployment(['a']), id: 'dep_old', state: 'succeeded' }, { ...deployment(['a']), id: 'dep_gone' }]);
  f.addJobs([job('job_old', 'failed'), job('job_gone', 'running'), job('job_live', 'running')]);
  f.apply(msg({ type: 'snapshot', devices: [], deployments: [deployment(['a'])], jobs: [job('job_live', 'running')] }));
  t.same([...f.deployments.keys()].sort(), ['dep_1', 'dep_old'], 'ended ones stay; an active one the snapshot lacks has ended');
  t.same([...f.jobs.keys()].sort(), ['job_live', 'job_old']);
});
