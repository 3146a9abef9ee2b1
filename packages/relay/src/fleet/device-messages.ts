// One handler per device message type, behind a dispatch table (as aedes does per packet).
// Every payload is checked against its schema first; a malformed one is logged and dropped.

import { HealthMessage, JobLogBatch, JobsReported, LogThrottle, LogsAnswer, isDiskFull, ReportedState, StatusMessage, messageParser, parseDeviceTopic, type MessageParser } from '@outpost/shared';
import type { FleetContext, JobMessages } from './context.js';
import { applyReportedState } from './rollout-progress.js';
import { syncSelectorMembership } from './deployments.js';
import { checkNotice, noteAgentInstance } from './duplicate-connections.js';
import { SerialQueues } from './serial-queues.js';
import { KnownDevices } from './known-devices.js';

/** What a handler reaches: the fleet, and the scheduler's side of job messages. */
type MessageContext = FleetContext & { jobs: JobMessages };

/** Parses a payload and acts on it; returns why it was refused, or null. */
type Handler = (ctx: MessageContext, deviceId: string, payload: Buffer) => Promise<string | null>;

/** A handler may refuse a valid message too (log lines for a run that has ended): it returns why. */
function handler<T>(parser: MessageParser<T>, handle: (ctx: MessageContext, deviceId: string, message: T) => Promise<string | null | void> | string | null | void): Handler {
  return async (ctx, deviceId, payload) => {
    const result = parser.parse(payload);
    if (!result.ok) return result.reason;
    return (await handle(ctx, deviceId, result.value)) ?? null;
  };
}

export async function setOnline(ctx: FleetContext, deviceId: string, online: boolean, message: string, silent = false): Promise<void> {
  const now = ctx.now();
  await ctx.store.devices.setOnline(deviceId, online, now);
  ctx.events.emit({ type: 'device.status', deviceId, online, lastSeen: new Date(now).toISOString(), ...(silent ? { silent: true } : {}) });
  // Two agents on one identity go offline and online every few seconds; the problem was logged
  // once. The silence sweep's verdict comes once a window and says why: always told.
  if (!silent && ctx.duplicates.problem(deviceId, now)) ctx.log.debug({ deviceId, online }, message);
  else ctx.log.info({ deviceId, online }, message);
}

const parseLogsAnswer = messageParser(LogsAnswer);

const HANDLERS: Record<string, Handler> = {
  status: handler(messageParser(StatusMessage), async (ctx, deviceId, m) => {
    // Every online counts here, news or not: two agents' clocks (so sessions) need not agree.
    if (m.online && m.instance) noteAgentInstance(ctx, deviceId, m.instance);
    // A late will of an earlier connection is not news (see fleet/presence.ts).
    if (!ctx.presence.status(deviceId, m)) return;
    // Capabilities first: the status event wakes the scheduler, which reads them.
    let acceleratorsChanged = false;
    if (m.online) {
      const accelerators = [...new Set(m.accelerators ?? [])].sort();
      const before = (await ctx.store.devices.get(deviceId))?.accelerators ?? [];
      acceleratorsChanged = before.join(',') !== accelerators.join(',');
      await ctx.store.devices.setCapabilities(deviceId, m.training === true, m.datasets ?? [], { accelerators, executionProviders: [...new Set(m.executionProviders ?? [])] });
    }
    await setOnline(ctx, deviceId, m.online, m.online ? 'device online' : 'device offline');
    // Selectors match accelerators (accelerator=cuda): the device joins or leaves deployments as its report changes.
    if (acceleratorsChanged) await syncSelectorMembership(ctx, deviceId);
  }),
  'jobs-reported': handler(messageParser(JobsReported), async (ctx, deviceId, m) => {
    await ctx.jobs.onRunReports(deviceId, m.runs);
  }),
  'job-log': handler(messageParser(JobLogBatch), (ctx, deviceId, m) => ctx.jobs.onLogs(deviceId, m.jobId, m.rank, m.lines)),
  // Held for the caller waiting on it; its size counts against the answer's bound.
  logs: async (ctx, deviceId, payload) => {
    const result = parseLogsAnswer.parse(payload);
    return result.ok ? ctx.deviceLogs.onAnswer(deviceId, result.value, payload.length) : result.reason;
  },
  reported: handler(messageParser(ReportedState), async (ctx, deviceId, m) => {
    // Beside converge's reapplying of the stored report (any relay): one at a time, so that a
    // stale report never lands after this one.
    await ctx.store.exclusive(`reported:${deviceId}`, async () => {
      await ctx.store.devices.setReported(deviceId, m, ctx.now());
      ctx.events.emit({ type: 'device.models', deviceId, models: m.models });
      await applyReportedState(ctx, deviceId, m);
    });
  }),
  health: handler(messageParser(HealthMessage), async (ctx, deviceId, m) => {
    // Only a connected device's heartbeat is delivered: it proves the device online.
    if (await ctx.presence.heartbeat(deviceId, async () => (await ctx.store.devices.get(deviceId))?.online ?? false)) await setOnline(ctx, deviceId, true, 'device online (its heartbeat arrived)');
    // Stored by the health history's once-a-second transaction, not one write per heartbeat.
    ctx.history.record(deviceId, m, ctx.now());
    ctx.events.emit({ type: 'device.health', deviceId, health: m });
  }),
};

const RELAY_WRITTEN = new Set(['desired', 'jobs', 'logs-request']);

export interface MessageStats {
  received: number;
  rejected: number;
}

/** Messages of one device waiting for its earlier ones, past which more are dropped. */
export const DEVICE_BACKLOG = 256;
/**
 * Messages handled at once, all devices together: a few more than the store's connections, so
 * the store stays busy while the rest wait here, in order, with no connection timeout to fail.
 */
export const HANDLING_AT_ONCE = 16;
/** Messages waiting, all devices together, past which more are dropped (a device sends its state again). */
export const RELAY_BACKLOG = 200_000;

/**
 * Routes one MQTT message from a device topic. Never throws: the relay outlives any payload.
 * Each device's messages are handled one after another in arrival order (a handler awaits the
 * store); different devices' run side by side. Refusals are logged once a minute per device
 * and topic, with how many were left out.
 */
export function createDeviceMessageRouter(fleet: FleetContext, jobs: JobMessages): { route(topic: string, payload: Buffer): void; close(graceMs: number): Promise<void>; stats: MessageStats } {
  const ctx: MessageContext = { ...fleet, jobs };
  const stats: MessageStats = { received: 0, rejected: 0 };
  const throttle = new LogThrottle(60_000, ctx.now);
  const queues = new SerialQueues({ perKey: DEVICE_BACKLOG, atOnce: HANDLING_AT_ONCE, total: RELAY_BACKLOG });
  const known = new KnownDevices({ exists: async (id) => Boolean(await ctx.store.devices.secretHash(id)), now: ctx.now });
  ctx.events.on((e) => {
    if (e.type === 'device.removed') known.forget(e.deviceId);
  });
  const handleOne = async (topic: string, parsed: { deviceId: string; leaf: string }, payload: Buffer): Promise<void> => {
    // Everything inside: a store that fails costs this message, never the device's queue.
    try {
      if (parsed.leaf === 'notice') {
        if (await known.exists(parsed.deviceId)) checkNotice(ctx, parsed.deviceId);
        return;
      }
      const handle = HANDLERS[parsed.leaf];
      if (!handle) {
        stats.rejected++;
        const told = throttle.take(`${parsed.deviceId} unknown`);
        if (told) ctx.log.warn({ deviceId: parsed.deviceId, topic, suppressed: told.suppressed }, 'message on an unknown device topic dropped');
        return;
      }
      if (!await known.exists(parsed.deviceId)) return; // a removed device: its last words do not matter
      const refused = await handle(ctx, parsed.deviceId, payload);
      if (refused) {
        stats.rejected++;
        const told = throttle.take(`${parsed.deviceId} ${parsed.leaf}`);
        if (told) ctx.log.warn({ deviceId: parsed.deviceId, topic, reason: refused, suppressed: told.suppressed }, 'device message dropped');
      }
    } catch (err) {
      stats.rejected++;
      const told = throttle.take(`${parsed.deviceId} ${parsed.leaf} failed`);
      if (told) ctx.log.error({ deviceId: parsed.deviceId, topic, err, suppressed: told.suppressed }, `device message handler failed${isDiskFull(err) ? ': the disk is full (the message is dropped; the device sends its state again)' : ''}`);
    }
  };
  return {
    stats,
    route(topic, payload) {
      stats.received++;
      const parsed = parseDeviceTopic(topic);
      // `desired`, `jobs` and `logs-request` are the relay's own messages coming back; an empty payload clears a retained one.
      if (!parsed || RELAY_WRITTEN.has(parsed.leaf) || payload.length === 0 || queues.closing) return;
      if (!queues.push(parsed.deviceId, () => handleOne(topic, parsed, payload))) {
        stats.rejected++;
        if (queues.full) {
          const told = throttle.take('relay backlog');
          if (told) ctx.log.warn({ deviceId: parsed.deviceId, topic, backlog: RELAY_BACKLOG, suppressed: told.suppressed }, 'device message dropped: too many messages of all devices wait to be handled (the store is slow or gone)');
          return;
        }
        const told = throttle.take(`${parsed.deviceId} backlog`);
        if (told) ctx.log.warn({ deviceId: parsed.deviceId, topic, backlog: DEVICE_BACKLOG, suppressed: told.suppressed }, 'device message dropped: too many of its messages wait to be handled');
      }
    },
    close: (graceMs) => queues.close(graceMs),
  };
}
