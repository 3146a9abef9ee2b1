// Runs on devices: each device's desired job list (derived from the store's running jobs),
// published retained on its `jobs` leaf and served at GET /v1/devices/me/jobs. A federated
// client's run says which round it trains and from which global model.

import { deviceTopic, jobEnded, type DesiredJobs } from '@outpost/shared';
import type { FleetContext } from '../fleet/context.js';
import { PUBLISH_CONCURRENCY, eachBounded } from '../fleet/bounded.js';

export class DeviceJobs {
  readonly #ctx: FleetContext;

  constructor(ctx: FleetContext) {
    this.#ctx = ctx;
  }

  /** The runs a device should be running now. */
  async desiredFor(deviceId: string): Promise<DesiredJobs> {
    const jobs: DesiredJobs['jobs'] = [];
    for (const job of await this.#ctx.store.jobs.inState('running')) {
      const mine = job.runs.filter((r) => r.target === deviceId && !jobEnded(r.state));
      if (mine.length === 0) continue;
      // A federated client's run trains from its round's global model, for that round's deadline.
      const rounds = job.spec.federated ? await this.#ctx.store.rounds.list(job.id) : [];
      const master = job.runs.find((x) => x.rank === 0)?.rendezvous;
      for (const r of mine) {
        const round = rounds.find((x) => x.clients.some((c) => c.rank === r.rank));
        if (job.spec.federated && !round) continue;
        const rendezvous = job.spec.rendezvous && { ...job.spec.rendezvous, ...(r.rank > 0 && master ? { master } : {}) };
        jobs.push({
          jobId: job.id,
          rank: r.rank,
          worldSize: job.runs.length,
          bundleSha256: job.spec.bundleSha256,
          command: job.spec.command,
          env: job.spec.env,
          ...(job.spec.dataset ? { dataset: job.spec.dataset } : {}),
          ...(rendezvous ? { rendezvous } : {}),
          ...(job.spec.score ? { score: { modelSha256: job.spec.score.model.sha256, format: job.spec.score.format } } : {}),
          ...(job.spec.federated && round
            ? { timeoutMs: Math.max(1, round.deadlineAt - this.#ctx.now()), federated: { round: round.round, globalModelSha256: round.globalSha256, proximalMu: job.spec.federated.proximalMu } }
            : job.spec.timeoutMs
              ? { timeoutMs: job.spec.timeoutMs }
              : {}),
        });
      }
    }
    return { revision: this.#ctx.now(), jobs };
  }

  /** One publish per device at a time across every relay, each reading after the one before: the retained list is the newest. */
  async publish(deviceId: string): Promise<void> {
    await this.#ctx.store.exclusive(`jobs:${deviceId}`, async () => this.#ctx.mqtt.publishRetained(deviceTopic(deviceId, 'jobs'), await this.desiredFor(deviceId)));
  }

  /** Publishes the job runs of every device that has some again (a broker that lost its retained messages). */
  async republish(): Promise<void> {
    const ids = new Set<string>();
    for (const job of await this.#ctx.store.jobs.inState('running')) for (const r of job.runs) if (r.target !== 'local') ids.add(r.target);
    await eachBounded([...ids], PUBLISH_CONCURRENCY, (id) => this.publish(id));
  }
}
