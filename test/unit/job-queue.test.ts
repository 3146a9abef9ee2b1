// The job queue's rules, without a store: submission order, one job per target at a time,
// N-node jobs only when N matching devices are free at once, no jumping the queue on the
// targets an earlier job waits for, and which devices can train at all.

import t from 'tap';
import fc from 'fast-check';
import { candidateTargets, placeQueued, trainingProblem } from '../../packages/relay/dist/jobs/job-queue.js';
import type { DeviceRecord, JobRecord, JobTarget } from '../../packages/relay/dist/store/records.js';

const device = (id: string, over: Partial<DeviceRecord> = {}): DeviceRecord => ({
  id, name: id, labels: { site: 'lab' }, createdAt: 0, online: true, lastSeen: 0, health: null, reported: null, trainingAttached: true, acceptsTraining: true, datasets: ['images'], ...over,
});
let seq = 0;
const job = (target: JobTarget, nodes = 1, dataset?: string): JobRecord => ({
  id: `job_${++seq}`, seq, state: 'queued', createdAt: seq, startedAt: null, finishedAt: null, error: null, model: null, runs: [],
  spec: { bundleSha256: 'a'.repeat(64), bundleSize: 1, target, nodes, command: 'x', env: {}, ...(dataset ? { dataset } : {}) },
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
