// The job queue's rules, without a store: submission order, one job per target at a time,
// N-node jobs only when N matching devices are free at once, no jumping the queue on the
// targets an earlier job waits for, and which devices can train at all.

import t from 'tap';
import fc from 'fast-check';
import { candidateTargets, placeQueued, trainingProblem, waitingReason } from '../../packages/relay/dist/jobs/job-queue.js';
import { matchesSelector } from '../../packages/relay/dist/fleet/deployments.js';
import type { DeviceRecord, JobRecord, JobTarget } from '../../packages/relay/dist/store/records.js';

const device = (id: string, over: Partial<DeviceRecord> = {}): DeviceRecord => ({
  id, name: id, labels: { site: 'lab' }, createdAt: 0, online: true, lastSeen: 0, health: null, reported: null, trainingAttached: true, acceptsTraining: true, datasets: ['images'], accelerators: [], executionProviders: ['cpu'], ...over,
});
let seq = 0;
const job = (target: JobTarget, nodes = 1, dataset?: string, require?: string[]): JobRecord => ({
  id: `job_${++seq}`, seq, state: 'queued', createdAt: seq, startedAt: null, finishedAt: null, error: null, model: null, runs: [],
  spec: { bundleSha256: 'a'.repeat(64), bundleSize: 1, target, nodes, command: 'x', env: {}, ...(dataset ? { dataset } : {}), ...(require ? { require } : {}) },
});
const lab = { kind: 'selector', selector: { site: 'lab' } } as const;
const placed = (queued: JobRecord[], busy: string[], devices: DeviceRecord[]) => placeQueued(queued, new Set(busy), devices).map((p) => [p.job.id, p.targets]);

t.test('which devices can run a job', async (t) => {
  t.match(trainingProblem(device('d1', { trainingAttached: false })), /not attached for training \(outpost-relay targets attach d1 --training\)/);
  t.match(trainingProblem(device('d1', { acceptsTraining: false })), /--accept-training/);
  t.equal(trainingProblem(device('d1')), null);
  const devices = [device('d1'), device('d2', { online: false }), device('d3', { acceptsTraining: false }), device('d4', { datasets: [] }), device('d5', { labels: { site: 'farm' } })];
  t.same(candidateTargets(job(lab), devices), ['d1', 'd4'], 'online, able to train, matching');
  t.same(candidateTargets(job(lab, 1, 'images'), devices), ['d1'], 'and with the dataset');
  t.same(candidateTargets(job({ kind: 'device', deviceId: 'd2' }), devices), [], 'a named device that is offline');
  t.same(candidateTargets(job({ kind: 'local' }), []), ['local']);
});

t.test('submission order, one job per target, N nodes at once', async (t) => {
  const devices = [device('d1'), device('d2'), device('d3')];
  const a = job({ kind: 'local' });
  const b = job({ kind: 'local' });
  t.same(placed([a, b], [], devices), [[a.id, ['local']]], 'one at a time on local');
  t.same(placed([a], ['local'], devices), [], 'local busy: it waits');
  const two = job(lab, 2);
  const one = job(lab, 1);
  t.same(placed([two, one], ['d1', 'd2'], devices), [], 'the 2-node job waits, and the later one may not take d3 from it');
  t.same(placed([two, one], ['d1'], devices), [[two.id, ['d2', 'd3']]], 'two free: it starts; the next waits');
  const named = job({ kind: 'device', deviceId: 'd3' });
  t.same(placed([one, named], [], devices), [[one.id, ['d1']], [named.id, ['d3']]], 'different targets start together');
});

t.test('a placement never uses a busy target, one target twice, or more nodes than asked', async (t) => {
  const ids = ['d0', 'd1', 'd2', 'd3', 'd4'];
  fc.assert(
    fc.property(
      fc.array(fc.record({ kind: fc.constantFrom('local', 'device', 'selector'), id: fc.constantFrom(...ids), nodes: fc.integer({ min: 1, max: 3 }) }), { maxLength: 8 }),
      fc.subarray([...ids, 'local']),
      fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
      (specs, busy, online) => {
        const devices = ids.map((id, i) => device(id, { online: online[i]! }));
        const queued = specs.map((s) => (s.kind === 'local' ? job({ kind: 'local' }) : s.kind === 'device' ? job({ kind: 'device', deviceId: s.id }) : job(lab, s.nodes)));
        const used = new Set<string>();
        for (const p of placeQueued(queued, new Set(busy), devices)) {
          if (p.targets.length !== p.job.spec.nodes) return false;
          for (const target of p.targets) {
            if (busy.includes(target) || used.has(target)) return false;
            if (target !== 'local' && !devices.find((d) => d.id === target)!.online) return false;
            used.add(target);
          }
        }
        return true;
      },
    ),
  );
  t.pass('placements are sound');
});

t.test('selectors match reported accelerators with accelerator=X, and a label of that name only from before it was reserved', async (t) => {
  const gpu = device('g', { accelerators: ['cuda', 'gpu'] });
  const faker = device('f', { labels: { site: 'lab', accelerator: 'cuda' } });
  t.ok(matchesSelector(gpu, { accelerator: 'cuda' }));
  t.ok(matchesSelector(gpu, { site: 'lab', accelerator: 'gpu' }), 'with labels too');
  t.notOk(matchesSelector(gpu, { accelerator: 'tensorrt' }));
  t.ok(matchesSelector(faker, { accelerator: 'cuda' }), 'a label named accelerator (an admin set it before the key was reserved) still matches');
  t.notOk(matchesSelector(faker, { accelerator: 'tensorrt' }), 'only its own value');
  t.notOk(matchesSelector({ labels: { site: 'lab' } }, { accelerator: 'cuda' }), 'a device that reports none');
});

t.test('a job that requires accelerators runs only where they are reported; while none is free it says why', async (t) => {
  const devices = [device('cpu1'), device('gpu1', { accelerators: ['cuda'] }), device('gpu2', { accelerators: ['cuda', 'tensorrt'] })];
  const cuda = job(lab, 1, undefined, ['cuda']);
  t.same(candidateTargets(cuda, devices), ['gpu1', 'gpu2']);
  t.same(candidateTargets(job(lab, 1, undefined, ['cuda', 'tensorrt']), devices), ['gpu2'], 'every one required');
  t.same(candidateTargets(job({ kind: 'device', deviceId: 'cpu1' }, 1, undefined, ['cuda']), devices), [], 'a named device without it');
  t.same(placed([cuda], ['gpu1'], devices), [[cuda.id, ['gpu2']]], 'the free one that has it');
  t.same(placed([cuda], ['gpu1', 'gpu2'], devices), [], 'none free: it waits, even with cpu1 free');
  t.equal(waitingReason(cuda, new Set(['gpu1', 'gpu2']), devices), 'waiting: no free target with cuda (2 match, both busy)');
  t.match(waitingReason(job(lab, 1, undefined, ['npu']), new Set(), devices), /^waiting: no target reports npu \(3 device\(s\) match the selector/);
  t.match(waitingReason(job(lab, 3, undefined, ['cuda']), new Set(), devices), /waiting: 2 target\(s\) with cuda online and able to run it, it needs 3/);
  t.match(waitingReason(job({ kind: 'device', deviceId: 'cpu1' }, 1, undefined, ['cuda']), new Set(), devices), /no target reports cuda \(device cpu1/);
  t.equal(waitingReason({ ...cuda, state: 'running' }, new Set(), devices), null, 'only queued jobs wait');
  t.equal(waitingReason(job({ kind: 'local' }), new Set(['local']), devices), 'waiting: local is busy');
});

t.test('a placement with requirements is only ever on devices that report them', async (t) => {
  const ids = ['d0', 'd1', 'd2', 'd3'];
  const names = ['cuda', 'tensorrt', 'gpu'];
  fc.assert(
    fc.property(
      fc.array(fc.record({ nodes: fc.integer({ min: 1, max: 2 }), require: fc.subarray(names) }), { maxLength: 6 }),
      fc.array(fc.subarray(names), { minLength: 4, maxLength: 4 }),
      fc.subarray(ids),
      (specs, reported, busy) => {
        const devices = ids.map((id, i) => device(id, { accelerators: reported[i]! }));
        const queued = specs.map((s) => job(lab, s.nodes, undefined, s.require));
        for (const p of placeQueued(queued, new Set(busy), devices)) {
          for (const target of p.targets) if (!(p.job.spec.require ?? []).every((a) => devices.find((d) => d.id === target)!.accelerators.includes(a))) return false;
        }
        // A job that did not start says why.
        const started = new Set(placeQueued(queued, new Set(busy), devices).map((p) => p.job.id));
        return queued.every((j) => started.has(j.id) || /^waiting: /.test(waitingReason(j, new Set(busy), devices) ?? ''));
      },
    ),
  );
  t.pass('placements respect requirements');
});
