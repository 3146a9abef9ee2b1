// Two agents running with one identity (a cloned SD card, two agents on one data dir) take the
// device's connection from each other in turn: the broker closes the older connection whenever
// one with the same client id arrives, and the agent it closed is back a second later. Each
// agent process sends a random `instance` in its online status, so the relay sees the
// connection alternate between two of them: A, B, A, B. An instance that comes back after
// another one (a return) is what one agent never does: reconnecting keeps its instance, and a
// restart makes a new one. Two returns within a minute (A→B→A→B, three takeovers) mark the
// device `duplicate-connection`; the mark clears by itself once the connection has not changed
// hands for `clearMs`. Status messages come through any broker, so this works on the embedded
// broker and on Mosquitto alike.
//
// While marked, the relay keeps a retained notice on the device's `notice` topic, which both
// copies receive; the one whose connection is taken then waits its longest backoff instead of a
// second (packages/agent/src/connection.ts), so the two stop flapping the fleet.

import { background, deviceTopic, type DeviceNotice, type DeviceProblem } from '@outpost/shared';
import type { FleetContext } from './context.js';

/** Takeovers are counted over the last minute (the problem's message says so). */
const WINDOW_MS = 60_000;
/** Returns within the window that mark a device: the connection went A→B→A→B. */
const RETURNS = 2;
/** Instances remembered per device, and takeovers kept (the count shown is capped there). */
const MAX_INSTANCES = 4;
const MAX_TAKEOVERS = 64;
/** Default time without a takeover after which the mark clears. */
export const DEFAULT_DUPLICATE_CLEAR_MS = 120_000;

interface Track {
  /** Instances seen, the one connected last first. */
  instances: string[];
  /** When the connection went to another instance, within the window. */
  takeovers: number[];
  /** Of those, when it went back to one seen before. */
  returns: number[];
  /** While marked: since when. */
  since?: number;
}

export const problemMessage = (takeovers: number) =>
  `two agents are using this device's identity (${takeovers} takeover${takeovers === 1 ? '' : 's'} in the last minute): stop one, or enroll the copy as a new device (outpost-agent enroll --force with a new token)`;

/** The bookkeeping, without effects (tested on its own). */
export class DuplicateConnections {
  readonly clearMs: number;
  readonly #tracks = new Map<string, Track>();

  constructor(clearMs = DEFAULT_DUPLICATE_CLEAR_MS) {
    this.clearMs = clearMs;
  }

  /** An online status of `instance`; true when it marks the device now. */
  online(deviceId: string, instance: string, now: number): boolean {
    const t = this.#tracks.get(deviceId) ?? { instances: [], takeovers: [], returns: [] };
    this.#tracks.set(deviceId, t);
    const current = t.instances[0];
    if (current === instance) return false; // the same agent, reconnected
    const seen = t.instances.includes(instance);
    t.instances = [instance, ...t.instances.filter((i) => i !== instance)].slice(0, MAX_INSTANCES);
    if (current === undefined) return false; // the first the relay hears of since it started
    t.takeovers = [...prune(t.takeovers, now), now].slice(-MAX_TAKEOVERS);
    if (seen) t.returns = [...prune(t.returns, now), now].slice(-RETURNS);
    if (t.since !== undefined || prune(t.returns, now).length < RETURNS) return false;
    t.since = now;
    return true;
  }

  problem(deviceId: string, now: number): DeviceProblem | null {
    const t = this.#tracks.get(deviceId);
    if (t?.since === undefined) return null;
    const takeovers = prune(t.takeovers, now).length;
    return { kind: 'duplicate-connection', since: new Date(t.since).toISOString(), takeovers, message: problemMessage(takeovers) };
  }

  /** Unmarks the devices whose connection has not changed hands for `clearMs`; returns them. */
  expire(now: number): string[] {
    const cleared: string[] = [];
    for (const [deviceId, t] of this.#tracks) {
      if (t.since === undefined || now - (t.takeovers[t.takeovers.length - 1] ?? t.since) < this.clearMs) continue;
      t.since = undefined;
      t.returns = [];
      cleared.push(deviceId);
    }
    return cleared;
  }

  forget(deviceId: string): void {
    this.#tracks.delete(deviceId);
  }
}

function prune(times: number[], now: number): number[] {
  return times.filter((t) => now - t < WINDOW_MS);
}

const noticeTopic = (deviceId: string) => deviceTopic(deviceId, 'notice');

/** Called for every online status that names its agent instance. */
export function noteAgentInstance(ctx: FleetContext, deviceId: string, instance: string): void {
  const now = ctx.now();
  if (!ctx.duplicates.online(deviceId, instance, now)) return;
  const problem = ctx.duplicates.problem(deviceId, now)!;
  ctx.log.warn({ deviceId, takeovers: problem.takeovers }, `device ${deviceId}: ${problem.message}`);
  ctx.events.emit({ type: 'device.problem', deviceId, problem });
  const notice: DeviceNotice = { kind: problem.kind, since: now, message: problem.message };
  background(ctx.log, 'publishing a duplicate-connection notice', ctx.mqtt.publishRetained(noticeTopic(deviceId), notice));
}

/** Clears the marks of devices whose connection stopped changing hands (run every second). */
export function clearSettledDuplicates(ctx: FleetContext): void {
  for (const deviceId of ctx.duplicates.expire(ctx.now())) {
    ctx.log.info({ deviceId }, `device ${deviceId}: no more takeovers; one agent uses its identity again`);
    ctx.events.emit({ type: 'device.problem', deviceId, problem: null });
    background(ctx.log, 'clearing a duplicate-connection notice', ctx.mqtt.clearRetained(noticeTopic(deviceId)));
  }
}

/**
 * A notice coming back from the broker. One the relay no longer stands by (kept by a broker
 * with persistence across a relay restart) is cleared, so no agent backs off for nothing.
 */
export function checkNotice(ctx: FleetContext, deviceId: string): void {
  if (ctx.duplicates.problem(deviceId, ctx.now())) return;
  background(ctx.log, 'clearing a stale notice', ctx.mqtt.clearRetained(noticeTopic(deviceId)));
}
