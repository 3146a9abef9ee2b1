// A federated job's result: the last round's average, self-tested (on the initial model's
// sample when it has one) and registered as a model version with its lineage, then rolled out
// when the job asked. Safe to run again after a crash: the same bytes are the same version, and
// a rollout already made is not made twice.

import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { FleetContext } from '../fleet/context.js';
import { createDeployment } from '../fleet/deployments.js';
import { registerModelVersion } from '../fleet/model-registration.js';
import type { FederatedRoundRecord, FederatedSpec, JobRecord } from '../store/records.js';
import { describeTarget } from '../jobs/job-views.js';

export type FinalModel = { ok: true; model: { name: string; version: number; deploymentId?: string } } | { ok: false; model?: { name: string; version: number }; error: string };

export async function registerFinalModel(ctx: FleetContext, artifacts: ArtifactStore, job: JobRecord, spec: FederatedSpec, rounds: readonly FederatedRoundRecord[]): Promise<FinalModel> {
  const last = rounds.at(-1)!;
  const name = job.spec.registerModel?.name ?? spec.initialModel.name;
  const participants = [...new Set(rounds.flatMap((r) => r.participants.map((p) => p.deviceId)))].sort();
  const initial = await ctx.store.models.get(spec.initialModel.name, spec.initialModel.version);
  const sample = initial?.sample ? { ...initial.sample, file: artifacts.path(initial.sample.sha256) } : undefined;
  const { record, selfTest } = await registerModelVersion(ctx, {
    name,
    file: artifacts.path(last.resultSha256!),
    sha256: last.resultSha256!,
    size: (await artifacts.size(last.resultSha256!)) ?? 0,
    ...(sample ? { sample } : {}),
    lineage: {
      jobId: job.id,
      target: describeTarget(job.spec.target),
      metrics: Object.fromEntries(Object.entries(last.metrics).map(([k, v]) => [k, { latest: v, best: v }])),
      federated: { rounds: rounds.filter((r) => r.state === 'aggregated').length, participants, initialModel: { name: spec.initialModel.name, version: spec.initialModel.version } },
    },
    allowSignatureChange: false,
  });
  const model = { name: record.name, version: record.version };
  // A rollout made before a crash is in the job's model already (the same bytes are the same version).
  const before = job.model?.version === record.version ? job.model.deploymentId : undefined;
  if (!selfTest.ok) return { ok: false, model, error: `the final model (${record.name}:${record.version}) failed its self-test: ${selfTest.error ?? 'no reason given'}${spec.deploy ? '; it was not rolled out' : ''}` };
  if (!spec.deploy) {
    await ctx.store.jobs.setModel(job.id, model);
    return { ok: true, model };
  }
  const deploymentId = before ?? (await createDeployment(ctx, { model: record.name, version: record.version, selector: spec.deploy.selector, ...(spec.deploy.strategy ? { strategy: spec.deploy.strategy } : {}), allowEmpty: true })).deployment.id;
  await ctx.store.jobs.setModel(job.id, { ...model, deploymentId });
  ctx.log.info({ jobId: job.id, model: record.name, version: record.version, deploymentId }, 'federated model rolled out');
  return { ok: true, model: { ...model, deploymentId } };
}
