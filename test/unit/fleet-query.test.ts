// Finding devices: search by name, id and label; filters by status, label, model and state;
// sorting by each column with devices lacking a value last; the summary counts.

import t from 'tap';
import fc from 'fast-check';
import { DEFAULT_QUERY, FleetModel, FleetTally, SORT_COLUMNS, fleetCounts, isFailing, matchesQuery, queryFleet, reorderDevices, sortUsesHealth, type DeviceSummary, type FleetQuery, type StreamMessage } from '@outpost/shared';

const sha = 'a'.repeat(64);
const health = (cpu: number, p50: number | null) => ({ ts: 0, uptimeS: 1, cpuPercent: cpu, memory: { rssBytes: 1, usedBytes: cpu * 1000, totalBytes: 1e9 }, disk: { freeBytes: 1, totalBytes: 2 }, models: { m: { requests: 1, errors: 0, p50Ms: p50, p99Ms: p50 } } });
const dev = (id: string, name: string, extra: Partial<DeviceSummary> = {}): DeviceSummary => ({ id, name, labels: {}, online: true, lastSeen: null, createdAt: null, models: [], health: null, ...extra });

const fleet = [
  dev('dev_1', 'front-door', { labels: { site: 'lab' }, models: [{ name: 'det', version: 2, sha256: sha, state: 'serving' }], health: health(40, 3), lastSeen: '2026-01-01T00:00:10Z' }),
  dev('dev_2', 'Back-yard', { labels: { site: 'farm' }, models: [{ name: 'det', version: 1, sha256: sha, state: 'failed', reason: 'bad input' }], health: health(10, null), lastSeen: '2026-01-01T00:00:20Z' }),
  dev('dev_3', 'attic', { online: false }),
  dev('dev_4', 'garage', { problem: { kind: 'duplicate-connection', since: '', takeovers: 2, message: '' }, health: health(90, 8) }),
];
const q = (over: Partial<FleetQuery>): FleetQuery => ({ ...DEFAULT_QUERY, ...over });
const names = (over: Partial<FleetQuery>) => queryFleet(fleet, q(over)).map((d) => d.name);

t.test('search and filters', async (t) => {
  t.same(names({ text: 'BACK', sort: 'name' }), ['Back-yard'], 'names, case-insensitive');
  t.same(names({ text: 'dev_3' }), ['attic'], 'ids');
  t.same(names({ text: 'site=la' }), ['front-door'], 'labels as key=value');
  t.same(names({ status: 'offline' }), ['attic']);
  t.same(names({ status: 'failing', sort: 'name' }), ['Back-yard', 'garage'], 'a failed model or a problem');
  t.same(names({ status: 'online', sort: 'name' }), ['Back-yard', 'front-door', 'garage']);
  t.same(names({ label: 'site=farm' }), ['Back-yard']);
  t.same(names({ model: 'det', sort: 'name' }), ['Back-yard', 'front-door'], 'a model by name');
  t.same(names({ model: 'det:2' }), ['front-door'], 'or name:version');
  t.same(names({ modelState: 'failed' }), ['Back-yard']);
  t.notOk(matchesQuery(fleet[0]!, q({ label: 'site=farm', text: 'front' })), 'filters combine');
  t.ok(isFailing(fleet[3]!) && !isFailing(fleet[0]!));
});

t.test('sorting by each column', async (t) => {
  t.same(names({ sort: 'name' }), ['attic', 'Back-yard', 'front-door', 'garage']);
  t.same(names({ sort: 'name', descending: true }), ['garage', 'front-door', 'Back-yard', 'attic']);
  t.same(names({ sort: 'state' }), ['front-door', 'Back-yard', 'garage', 'attic'], 'online, then failing, then offline; ties by name');
  t.same(names({ sort: 'cpu', descending: true }), ['garage', 'front-door', 'Back-yard', 'attic'], 'no heartbeat goes last');
  t.same(names({ sort: 'cpu' }), ['Back-yard', 'front-door', 'garage', 'attic'], 'last either way');
  t.same(names({ sort: 'p50' }), ['front-door', 'garage', 'attic', 'Back-yard'], 'no latency yet goes last');
  t.same(names({ sort: 'lastSeen' }), ['Back-yard', 'front-door', 'attic', 'garage'], 'most recent first');
  t.same(names({ sort: 'models' }).slice(0, 2), ['Back-yard', 'front-door']);
  t.same(names({ sort: 'memory', descending: true })[0], 'garage');
  t.same(SORT_COLUMNS.filter(sortUsesHealth), ['cpu', 'memory', 'p50', 'lastSeen']);
});

t.test('the order is total and the filter exact, for any fleet', async (t) => {
  const arbDevice = fc.record({
    id: fc.string({ minLength: 1, maxLength: 6 }),
    name: fc.string({ maxLength: 6 }),
    online: fc.boolean(),
    cpu: fc.option(fc.integer({ min: 0, max: 100 })),
  });
  fc.assert(
    fc.property(fc.uniqueArray(arbDevice, { selector: (d) => d.id, maxLength: 40 }), fc.constantFrom(...SORT_COLUMNS), fc.boolean(), fc.string({ maxLength: 2 }), (list, sort, descending, text) => {
      const devices = list.map((d) => dev(d.id, d.name, { online: d.online, health: d.cpu === null ? null : health(d.cpu, null) }));
      const query = q({ sort, descending, text });
      const a = queryFleet(devices, query);
      const b = queryFleet([...devices].reverse(), query);
      const sameOrder = a.map((d) => d.id).join('\0') === b.map((d) => d.id).join('\0');
      return sameOrder && a.length === devices.filter((d) => matchesQuery(d, query)).length;
    }),
  );
  t.pass('input order does not matter, and nothing is lost or duplicated');
});

t.test('summary counts', async (t) => {
  const c = fleetCounts(fleet);
  t.same({ total: c.total, online: c.online, offline: c.offline, failing: c.failing }, { total: 4, online: 3, offline: 1, failing: 2 });
  t.same(c.models, [{ model: 'det:1', devices: 1 }, { model: 'det:2', devices: 1 }]);
  t.same(c.labels, ['site=farm', 'site=lab']);
});

t.test('kept current one device at a time, the order and counts equal those made from scratch', async (t) => {
  const arbDevice = (id: string) =>
    fc.record({ name: fc.constantFrom('a', 'b', 'B', 'c'), online: fc.boolean(), cpu: fc.option(fc.integer({ min: 0, max: 3 })), model: fc.option(fc.constantFrom('det:1', 'det:2')), site: fc.option(fc.constantFrom('lab', 'farm')) }).map((r) =>
      dev(id, r.name, {
        online: r.online,
        health: r.cpu === null ? null : health(r.cpu, null),
        models: r.model === null ? [] : [{ name: 'det', version: Number(r.model.slice(4)), sha256: sha, state: 'serving' as const }],
        labels: r.site === null ? {} : { site: r.site },
      }),
    );
  const ids = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7'];
  // A step: a device changes (or appears), or goes.
  const step = fc.oneof(fc.constantFrom(...ids).chain((id) => arbDevice(id)), fc.constantFrom(...ids).map((id) => ({ gone: id })));
  fc.assert(
    fc.property(fc.array(fc.array(step, { maxLength: 4 }), { maxLength: 12 }), fc.constantFrom(...SORT_COLUMNS), fc.boolean(), fc.constantFrom(null, 'site=lab'), (frames, sort, descending, label) => {
      const query = q({ sort, descending, label });
      const fleetNow = new Map<string, DeviceSummary>();
      let order = queryFleet(fleetNow.values(), query);
      const tally = new FleetTally();
      for (const frame of frames) {
        const moved = new Map<string, DeviceSummary | undefined>();
        for (const s of frame) {
          const id = 'gone' in s ? s.gone : s.id;
          if ('gone' in s) fleetNow.delete(id);
          else fleetNow.set(id, s);
          moved.set(id, fleetNow.get(id));
          tally.set(id, fleetNow.get(id));
        }
        order = reorderDevices(order, moved, query);
      }
      const fresh = queryFleet(fleetNow.values(), query);
      const devices = [...fleetNow.values()];
      const c = tally.counts();
      return (
        order.map((d) => d.id).join() === fresh.map((d) => d.id).join() &&
        c.total === devices.length &&
        c.online === devices.filter((d) => d.online).length &&
        c.failing === devices.filter(isFailing).length &&
        c.models.reduce((n, m) => n + m.devices, 0) === devices.reduce((n, d) => n + d.models.length, 0) &&
        c.labels.join() === [...new Set(devices.flatMap((d) => Object.entries(d.labels).map(([k, v]) => `${k}=${v}`)))].sort().join()
      );
    }),
  );
  t.pass('incremental equals from scratch');
});

t.test('driven by stream messages through the fleet model, as the fleet page keeps them', async (t) => {
  const ids = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'];
  const ts = new Date(0).toISOString();
  const message = fc.oneof(
    fc.record({ type: fc.constant('device.status' as const), deviceId: fc.constantFrom(...ids), online: fc.boolean() }).map((m) => ({ ...m, lastSeen: ts })),
    fc.record({ type: fc.constant('device.health' as const), deviceId: fc.constantFrom(...ids), cpu: fc.integer({ min: 0, max: 3 }) }).map(({ cpu, ...m }) => ({ ...m, health: health(cpu, cpu === 0 ? null : cpu) })),
    fc.record({ type: fc.constant('device.models' as const), deviceId: fc.constantFrom(...ids), v: fc.integer({ min: 0, max: 2 }) }).map(({ v, ...m }) => ({ ...m, models: v === 0 ? [] : [{ name: 'det', version: v, sha256: sha, state: 'serving' as const }] })),
    fc.record({ type: fc.constantFrom('device.enrolled' as const, 'device.updated' as const), id: fc.constantFrom(...ids), name: fc.constantFrom('a', 'b', 'c'), site: fc.constantFrom('lab', 'farm') }).map(({ type, id, name, site }) => ({ type, device: dev(id, name, { labels: { site } }) })),
    fc.record({ type: fc.constant('device.removed' as const), deviceId: fc.constantFrom(...ids) }),
  );
  fc.assert(
    fc.property(fc.array(fc.array(message, { maxLength: 5 }), { maxLength: 10 }), fc.constantFrom(...SORT_COLUMNS), fc.boolean(), fc.constantFrom(null, 'site=lab'), (frames, sort, descending, label) => {
      const query = q({ sort, descending, label });
      const model = new FleetModel();
      let seq = 0;
      model.apply({ type: 'snapshot', devices: ids.slice(0, 3).map((id) => dev(id, id)), deployments: [], jobs: [], seq: ++seq, ts });
      const tally = new FleetTally();
      for (const d of model.devices.values()) tally.set(d.id, d);
      let order = queryFleet(model.devices.values(), query);
      for (const frame of frames) {
        const moved = new Map<string, DeviceSummary | undefined>();
        for (const m of frame) {
          const change = model.apply({ ...m, seq: ++seq, ts } as StreamMessage);
          if (change.kind !== 'device') continue;
          const d = model.devices.get(change.id);
          if (!change.healthOnly) tally.set(change.id, d);
          if (!change.healthOnly || sortUsesHealth(query.sort)) moved.set(change.id, d);
        }
        order = reorderDevices(order, moved, query);
      }
      const fresh = queryFleet(model.devices.values(), query);
      const c = tally.counts();
      const f = fleetCounts(model.devices.values());
      return order.map((d) => d.id).join() === fresh.map((d) => d.id).join() && JSON.stringify(c) === JSON.stringify(f);
    }),
  );
  t.pass('the page\'s incremental order and counts equal those made from scratch');
});
