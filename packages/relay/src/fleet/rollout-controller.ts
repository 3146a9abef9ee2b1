// Staged rollouts: releases waiting devices batch by batch (canary first), verifies each
// device over the health window, and rolls the whole deployment back when failures pass the
// threshold. Everything it knows is in the store, so a relay killed mid-rollout resumes it.

import { guarded, guardedInterval } from '@outpost/shared';
import type { FleetContext } from './context.js';
import { rolloutSettled, type DeploymentRecord, type RolloutStrategy } from '../store/records.js';
import { converge, rollbackDeployment } from './deployments.js';
import { refreshDeploymentState } from './rollout-progress.js';

/** Inference error rate above which a device is unhealthy during its health window. */
export const MAX_ERROR_RATE = 0.05;

/** A count, or a percentage of `total` ("25%", rounded up, at least 1). */
export function resolveCount(value: number | string, total: number): number {
  if (typeof value === 'number') return value;
  const pct = Number(value.replace(/%$/, ''));
  return Math.max(1, Math.ceil((pct / 100) * total));
}

export class RolloutController {
  readonly #ctx: FleetContext;
  /** Model counters when a device started serving, to judge its window. */
  readonly #baseline = new Map<string, { requests: number; errors: number }>();
  readonly #timer: NodeJS.Timeout;
  #soon: NodeJS.Immediate | undefined;
  #running = false;
  #again = false;

  constructor(ctx: FleetContext, tickMs = 500) {
    this.#ctx = ctx;
    // A rollout to thousands of devices sends thousands of progress events: look once per burst.
    ctx.events.on((e) => {
      if ((e.type === 'deployment.progress' || e.type === 'deployment.created') && !this.#soon) {
        this.#soon = setImmediate(guarded(ctx.log, 'rollout evaluation', () => {
          this.#soon = undefined;
          this.evaluate();
        }));
      }
    });
    // Health windows end with no message to announce it: look again now and then.
    this.#timer = guardedInterval(ctx.log, 'rollout evaluation', tickMs, () => this.evaluate());
  }

  /** Looks at every staged rollout in progress; serialized, and coalesced when busy. */
  evaluate(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void (async () => {
      try {
        do {
          this.#again = false;
          for (const d of this.#ctx.store.stagedDeployments()) await this.#step(d);
        } while (this.#again);
      } catch (err) {
        this.#ctx.log.error({ err }, 'rollout step failed');
      } finally {
        this.#running = false;
      }
    })();
  }

  async #step(d: DeploymentRecord): Promise<void> {
    const { store, events } = this.#ctx;
    const s = d.strategy as RolloutStrategy;
    const now = this.#ctx.now();
    // 1. Verify devices whose health window has passed.
    let changed = false;
    for (const row of d.devices) {
      if (row.state !== 'serving' || s.healthWindowMs <= 0) continue;
      const key = `${d.id}:${row.deviceId}`;
      const stats = store.getDevice(row.deviceId)?.health?.models[d.model];
      if (!this.#baseline.has(key)) this.#baseline.set(key, { requests: stats?.requests ?? 0, errors: stats?.errors ?? 0 });
      if (now - row.updatedAt < s.healthWindowMs) continue;
      const base = this.#baseline.get(key)!;
      const requests = (stats?.requests ?? base.requests) - base.requests;
      const errors = (stats?.errors ?? base.errors) - base.errors;
      const healthy = requests <= 0 || errors / requests <= MAX_ERROR_RATE;
      const state = healthy ? 'healthy' : 'failed';
      const reason = healthy ? null : `unhealthy in its health window: ${errors} of ${requests} requests failed`;
      if (store.setRolloutState(d.id, row.deviceId, state, reason, now)) {
        events.emit({ type: 'deployment.progress', deploymentId: d.id, deviceId: row.deviceId, state, reason });
        changed = true;
      }
      this.#baseline.delete(key);
    }
    // Read the rows again only when this pass changed some.
    const rows = changed ? store.getDeployment(d.id)!.devices : d.devices;
    // 2. Too many failures: stop, and send every device that received it back.
    const failed = rows.filter((r) => r.state === 'failed').length;
    if (s.failureThreshold !== null && failed > resolveCount(s.failureThreshold, rows.length)) {
      this.#ctx.log.warn({ deploymentId: d.id, failed }, 'rollout failed past its threshold: rolling back');
      await rollbackDeployment(this.#ctx, d.id);
      return;
    }
    // 3. Release the next batch once every released device is done.
    const waiting = rows.filter((r) => r.state === 'waiting');
    if (waiting.length === 0) return refreshDeploymentState(this.#ctx, d.id);
    const released = rows.filter((r) => r.state !== 'waiting');
    if (!released.every((r) => rolloutSettled(r.state, s.healthWindowMs))) return;
    const size = released.length < s.canary ? s.canary - released.length : resolveCount(s.batch, rows.length);
    const batch = waiting.slice(0, size);
    for (const r of batch) {
      store.setRolloutState(d.id, r.deviceId, 'pending', null, now);
      events.emit({ type: 'deployment.progress', deploymentId: d.id, deviceId: r.deviceId, state: 'pending', reason: null });
    }
    this.#ctx.log.info({ deploymentId: d.id, devices: batch.length, left: waiting.length - batch.length }, released.length < s.canary ? 'canary released' : 'rollout batch released');
    await converge(this.#ctx, batch.map((r) => r.deviceId));
  }

  close(): void {
    clearInterval(this.#timer);
    if (this.#soon) clearImmediate(this.#soon);
  }
}
