// /v1/targets: the compute targets (the relay host and every device), and training attachment.

import type { FastifyInstance } from 'fastify';
import { requireDevice } from '../fleet/devices.js';
import { auditTarget } from './audit.js';
import { deviceParams } from './schemas.js';
import type { ApiDeps } from './server.js';
import type { DeviceRecord } from '../store/records.js';

export async function targetRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx, scheduler } = deps;

  const running = async () => {
    const byTarget = new Map<string, string>();
    for (const job of await ctx.store.jobs.inState('running')) for (const r of job.runs) if (['starting', 'running'].includes(r.state)) byTarget.set(r.target, job.id);
    return byTarget;
  };
  const deviceTarget = (d: DeviceRecord, busy: Map<string, string>) => ({
    name: d.id,
    kind: 'device',
    deviceName: d.name,
    online: d.online,
    deploys: true,
    trains: d.trainingAttached && d.acceptsTraining,
    attached: d.trainingAttached,
    acceptsTraining: d.acceptsTraining,
    datasets: d.datasets,
    accelerators: d.accelerators,
    executionProviders: d.executionProviders,
    running: busy.get(d.id) ?? null,
  });

  app.get('/v1/targets', { config: { access: 'viewer' } }, async () => {
    const busy = await running();
    return {
      targets: [
        { name: 'local', kind: 'local', online: true, deploys: false, trains: true, attached: true, acceptsTraining: true, datasets: Object.keys(deps.localDatasets), accelerators: [], executionProviders: [], running: busy.get('local') ?? null },
        ...(await ctx.store.devices.list()).map((d) => deviceTarget(d, busy)),
      ],
    };
  });

  for (const [action, attached] of [['attach', true], ['detach', false]] as const) {
    app.post<{ Params: { id: string } }>(`/v1/targets/:id/${action}`, { config: { access: 'admin', audit: `target.${action}` }, schema: { params: deviceParams } }, async (request) => {
      const { id } = await requireDevice(ctx, request.params.id);
      auditTarget(request, id);
      await ctx.store.devices.setTrainingAttached(id, attached);
      ctx.log.info({ deviceId: id, attached }, attached ? 'device attached for training' : 'device detached from training');
      scheduler.onTargetsChanged();
      return deviceTarget((await ctx.store.devices.get(id))!, await running());
    });
  }
}
