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

/** A device's health window: when it started (monotonic ms) and the counters then. */
interface Window {
  startedAt: number;
  requests: number;
  errors: number;
}

export class RolloutController {
  readonly #ctx: FleetContext;
  /** Health windows under way, by `deployment:device`, timed on a monotonic clock. */
  readonly #windows = new Map<string, Window>();
  /** Per device: the last heartbeat's arrival and the last time it went offline (monotonic ms). */
  readonly #heard = new Map<string, { heartbeatAt: number; offlineAt: number }>();
  /** A clock that never steps back (a relay whose wall clock is set back must not stall windows). */
  readonly #monotonic: () => number;
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Immediate | undefined;
  #running = false;
  #again = false;
  /** The evaluation under way, for close() to wait on. */
  #loop: Promise<void> = Promise.resolve();

  constructor(ctx: FleetContext, tickMs = 500, monotonic: () => number = () => performance.now()) {
    this.#ctx = ctx;
    this.#monotonic = monotonic;
    // A rollout to thousands of devices sends thousands of progress events: look once per burst.
    ctx.events.on((e) => {
      if (e.type === 'device.health') this.#hear(e.deviceId).heartbeatAt = this.#monotonic();
      if (e.type === 'device.status' && !e.online) this.#hear(e.deviceId).offlineAt = this.#monotonic();
      if ((e.type === 'deployment.progress' || e.type === 'deployment.created') && !this.#soon) {
        this.#soon = setImmediate(guarded(ctx.log, 'rollout evaluation', () => {
          this.#soon = undefined;
          this.evaluate();
        }));
      }
    });
    this.#tickMs = tickMs;
  }

  /** Picks staged rollouts up where they were (a relay killed mid-rollout resumes them). */
  start(): void {
    if (this.#timer) return;
    // Health windows end with no message to announce it: look again now and then.
    this.#timer = guardedInterval(this.#ctx.log, 'rollout evaluation', this.#tickMs, () => this.evaluate());
    this.evaluate();
  }

  /** Looks at every staged rollout in progress; serialized, and coalesced when busy. */
  evaluate(): void {
    if (!this.#timer) return; // not started
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    this.#loop = (async () => {
      try {
        do {
          this.#again = false;
          for (const d of await this.#ctx.store.deployments.staged()) {
            // Stopped (closed, or another relay leads now): the rest is the next leader's.
            if (!this.#timer) return;
            await this.#step(d);
          }
        } while (this.#again && this.#timer);
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
      const verdict = await this.#judge(d, row.deviceId, row.updatedAt, s.healthWindowMs);
      if (!verdict) continue;
      // Only while it is still serving: a failed report or a cancel since the read stands.
      if (await store.deployments.setRolloutState(d.id, row.deviceId, verdict.state, verdict.reason, now, 'serving')) {
        events.emit({ type: 'deployment.progress', deploymentId: d.id, deviceId: row.deviceId, state: verdict.state, reason: verdict.reason });
        changed = true;
      }
      this.#windows.delete(`${d.id}:${row.deviceId}`);
    }
    // Read the rows again only when this pass changed some.
    const rows = changed ? (await store.deployments.get(d.id))!.devices : d.devices;
    // 2. Too many failures: stop, and send every device that received it back.
    const failed = rows.filter((r) => r.state === 'failed').length;
    if (s.failureThreshold !== null && failed > resolveCount(s.failureThreshold, rows.length)) {
      this.#ctx.log.warn({ deploymentId: d.id, failed }, 'rollout failed past its threshold: rolling back');
      await rollbackDeployment(this.#ctx, d.id);
      await this.#ctx.audit?.record({ actor: { kind: 'relay' }, action: 'deployment.rollback', target: d.id, outcome: 'ok', detail: { reason: `${failed} of ${rows.length} devices failed, past the failure threshold (${s.failureThreshold})` } });
      return;
    }
    // 3. Release the next batch once every released device is done.
    const waiting = rows.filter((r) => r.state === 'waiting');
    if (waiting.length === 0) return refreshDeploymentState(this.#ctx, d.id);
    const released = rows.filter((r) => r.state !== 'waiting');
    if (!released.every((r) => rolloutSettled(r.state, s.healthWindowMs))) return;
    const size = released.length < s.canary ? s.canary - released.length : resolveCount(s.batch, rows.length);
    const batch = waiting.slice(0, size);
    const releasedNow: string[] = [];
    for (const r of batch) {
      // Only while still waiting: a cancel or a rollback since the read keeps the device out.
      if (!(await store.deployments.setRolloutState(d.id, r.deviceId, 'pending', null, now, 'waiting'))) continue;
      events.emit({ type: 'deployment.progress', deploymentId: d.id, deviceId: r.deviceId, state: 'pending', reason: null });
      releasedNow.push(r.deviceId);
    }
    this.#ctx.log.info({ deploymentId: d.id, devices: batch.length, left: waiting.length - batch.length }, released.length < s.canary ? 'canary released' : 'rollout batch released');
    await converge(this.#ctx, releasedNow);
  }

  #hear(deviceId: string): { heartbeatAt: number; offlineAt: number } {
    let h = this.#heard.get(deviceId);
    if (!h) {
      h = { heartbeatAt: -Infinity, offlineAt: -Infinity };
      this.#heard.set(deviceId, h);
    }
    return h;
  }

  /**
   * A serving device's window: null while it is still open, else healthy or failed. It passes
   * only when a heartbeat arrived after its end and the device did not go offline inside it: a
   * device cut off in its window is not taken for healthy, it waits (its model has not failed).
   */
  async #judge(d: DeploymentRecord, deviceId: string, servingSince: number, windowMs: number): Promise<{ state: 'healthy' | 'failed'; reason: string | null } | null> {
    const key = `${d.id}:${deviceId}`;
    const stats = (await this.#ctx.store.devices.get(deviceId))?.health?.models[d.model];
    let w = this.#windows.get(key);
    if (!w) {
      // First sight (or a relay restarted): the window began when the device started serving,
      // by the wall clock, but never in the future and never more than a window ago.
      const elapsed = Math.max(0, Math.min(windowMs, this.#ctx.now() - servingSince));
      w = { startedAt: this.#monotonic() - elapsed, requests: stats?.requests ?? 0, errors: stats?.errors ?? 0 };
      this.#windows.set(key, w);
    }
    const now = this.#monotonic();
    const end = w.startedAt + windowMs;
    if (now < end) return null;
    const heard = this.#heard.get(deviceId);
    if (!heard || heard.heartbeatAt < end) return null; // waiting for a heartbeat after the window
    if (heard.offlineAt > w.startedAt) {
      // It dropped out inside its window: judge a whole window from now instead.
      this.#windows.set(key, { ...w, startedAt: now });
      return null;
    }
    const requests = (stats?.requests ?? w.requests) - w.requests;
    const errors = (stats?.errors ?? w.errors) - w.errors;
    const healthy = requests <= 0 || errors / requests <= MAX_ERROR_RATE;
    return healthy ? { state: 'healthy', reason: null } : { state: 'failed', reason: `unhealthy in its health window: ${errors} of ${requests} requests failed` };
  }

  /** Time left in a serving device's health window (ms), or undefined when none is open. */
  windowLeftMs(deploymentId: string, deviceId: string, windowMs: number): number | undefined {
    const w = this.#windows.get(`${deploymentId}:${deviceId}`);
    return w ? Math.max(0, Math.round(w.startedAt + windowMs - this.#monotonic())) : undefined;
  }

  /** Stops evaluating; resolves once a step under way has ended (start() may follow). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#soon) clearImmediate(this.#soon);
    this.#soon = undefined;
    await this.#loop;
  }
}
