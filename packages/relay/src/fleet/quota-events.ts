// A device past one of its quotas, made visible: counted for /metrics on every occurrence, and
// told once a minute per device (a log line and a `device.quota` fleet event that say how many
// more there were), so a device repeating it thousands of times a second costs one line.

import { LogThrottle, type Logger } from '@outpost/shared';
import type { FleetEvents } from './fleet-events.js';

export type QuotaAction = 'dropped' | 'unretained' | 'disconnected' | 'refused';

export class QuotaEvents {
  /** Occurrences by `quota action`, for outpost_device_quota_events_total. */
  readonly counts = new Map<string, number>();
  readonly #events: FleetEvents;
  readonly #log: Logger;
  readonly #throttle: LogThrottle;

  constructor(events: FleetEvents, log: Logger, now: () => number = Date.now) {
    this.#events = events;
    this.#log = log;
    this.#throttle = new LogThrottle(60_000, now);
  }

  exceeded(deviceId: string, quota: string, action: QuotaAction, detail: string): void {
    const key = `${quota} ${action}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    // Throttling is told once a minute per device; each kind of disconnect (at most one per
    // cool-down) once a minute too, apart from the throttling that led to it.
    const told = this.#throttle.take(action === 'dropped' || action === 'unretained' ? `${deviceId} throttled` : `${deviceId} ${action} ${quota}`);
    if (!told) return;
    const message = action === 'disconnected' ? 'device disconnected: past its quota' : action === 'refused' ? 'device connection refused' : 'device message refused: past its quota';
    this.#log.warn({ deviceId, quota, action, detail, suppressed: told.suppressed }, message);
    this.#events.emit({ type: 'device.quota', deviceId, quota, action, detail, suppressed: told.suppressed });
  }
}
