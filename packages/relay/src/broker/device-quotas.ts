// What one device may cost the broker, held per device id across reconnects (a device that
// reconnects does not start over with a full bucket). Pure and clock-injected, so every rule is
// tested without a broker. The broker asks before it takes a publish or a subscription, and
// acts on the verdict: take it, take it without keeping it retained, drop it, or disconnect.
//
// A device past a quota is first throttled (the message is dropped, the session stays); each
// dropped message is a strike, and a device out of strikes is disconnected and refused for a
// cool-down, as Mosquitto's per-client limits end a misbehaving session.

import { DEVICE_RETAINED_LEAVES, DEVICE_WRITTEN_LEAVES, type DeviceTopic } from '@outpost/shared';
import { FloodGuard } from './flood-guard.js';

export interface DeviceLimits {
  /** Publishes a second, sustained, and the burst above it (aedes overflows its stack under floods: moscajs/aedes#193). */
  ratePerSec: number;
  burst: number;
  /** Bytes of retained messages one device may keep in the broker (its status, reported state and job reports). */
  retainedBytes: number;
  /** Subscriptions one session may hold. */
  maxSubscriptions: number;
  /** Refused messages tolerated before a disconnect; one comes back every `strikeRefillMs`. */
  strikes: number;
  strikeRefillMs: number;
  /** How long a device disconnected for its quotas is refused when it reconnects. */
  cooldownMs: number;
}

export const DEFAULT_DEVICE_LIMITS: DeviceLimits = {
  ratePerSec: 20,
  burst: 200,
  retainedBytes: 128 * 1024,
  maxSubscriptions: 16,
  strikes: 50,
  strikeRefillMs: 1000,
  cooldownMs: 10_000,
};

export type QuotaName = 'topic' | 'rate' | 'retained' | 'subscriptions';

export type Verdict =
  | { action: 'allow' }
  /** Deliver it, but do not keep it as the topic's retained message. */
  | { action: 'unretain'; quota: QuotaName; detail: string }
  | { action: 'drop'; quota: QuotaName; detail: string }
  | { action: 'disconnect'; quota: QuotaName; detail: string };

interface DeviceState {
  retained: Map<string, number>;
  strikes: number;
  strikesAt: number;
  subscriptions: number;
  refusedUntil: number;
}

export class DeviceQuotas {
  readonly limits: DeviceLimits;
  readonly #now: () => number;
  readonly #rate: FloodGuard;
  readonly #devices = new Map<string, DeviceState>();

  constructor(limits: Partial<DeviceLimits> = {}, now: () => number = Date.now) {
    this.limits = { ...DEFAULT_DEVICE_LIMITS, ...limits };
    this.#now = now;
    this.#rate = new FloodGuard({ ratePerSec: this.limits.ratePerSec, burst: this.limits.burst }, now);
  }

  #state(deviceId: string): DeviceState {
    let s = this.#devices.get(deviceId);
    if (!s) {
      s = { retained: new Map(), strikes: this.limits.strikes, strikesAt: this.#now(), subscriptions: 0, refusedUntil: 0 };
      this.#devices.set(deviceId, s);
    }
    return s;
  }

  /** False while the device sits out the cool-down of a quota disconnect. */
  mayConnect(deviceId: string): boolean {
    const s = this.#state(deviceId);
    s.subscriptions = 0;
    return this.#now() >= s.refusedUntil;
  }

  /** A publish to `leaf` (already known to be under the device's own prefix). */
  publish(deviceId: string, leaf: string, bytes: number, retain: boolean): Verdict {
    const s = this.#state(deviceId);
    if (!DEVICE_WRITTEN_LEAVES.includes(leaf as DeviceTopic)) return this.#strike(s, 'topic', `a device may not publish to "${leaf}" (only ${DEVICE_WRITTEN_LEAVES.join(', ')})`);
    if (!this.#rate.allow(deviceId)) return this.#strike(s, 'rate', `over ${this.limits.ratePerSec} messages a second (bursts of ${this.limits.burst})`);
    return this.#retain(deviceId, s, leaf, bytes, retain);
  }

  /**
   * The device's will, which the broker publishes for it when its connection closes without a
   * DISCONNECT (the access policy has kept it to its own status topic). It is the broker's act,
   * once per connection, so it takes nothing from the rate bucket and costs no strike: a device
   * cut off for flooding has an empty bucket, and its will must still say it is gone
   * (MQTT-3.1.2-8). Its retained bytes count as any retained message's.
   */
  will(deviceId: string, leaf: string, bytes: number, retain: boolean): Verdict {
    return this.#retain(deviceId, this.#state(deviceId), leaf, bytes, retain);
  }

  #retain(deviceId: string, s: DeviceState, leaf: string, bytes: number, retain: boolean): Verdict {
    if (!retain) return { action: 'allow' };
    if (!DEVICE_RETAINED_LEAVES.includes(leaf as DeviceTopic)) return { action: 'unretain', quota: 'retained', detail: `"${leaf}" is not a retained topic` };
    const total = this.retainedBytes(deviceId) - (s.retained.get(leaf) ?? 0) + bytes;
    if (total > this.limits.retainedBytes) return { action: 'unretain', quota: 'retained', detail: `its retained messages would take ${total} bytes, over ${this.limits.retainedBytes}` };
    if (bytes === 0) s.retained.delete(leaf);
    else s.retained.set(leaf, bytes);
    return { action: 'allow' };
  }

  /** A subscription the access rules allowed or denied. */
  subscribe(deviceId: string, permitted: boolean, filter: string): Verdict {
    const s = this.#state(deviceId);
    if (!permitted) return this.#strike(s, 'subscriptions', `subscription to "${filter}" is outside the device's own topics`);
    if (s.subscriptions >= this.limits.maxSubscriptions) return this.#strike(s, 'subscriptions', `more than ${this.limits.maxSubscriptions} subscriptions`);
    s.subscriptions++;
    return { action: 'allow' };
  }

  retainedBytes(deviceId: string): number {
    let n = 0;
    for (const b of this.#devices.get(deviceId)?.retained.values() ?? []) n += b;
    return n;
  }

  /** A removed device: nothing of it is kept. */
  forget(deviceId: string): void {
    this.#devices.delete(deviceId);
    this.#rate.forget(deviceId);
  }

  #strike(s: DeviceState, quota: QuotaName, detail: string): Verdict {
    const now = this.#now();
    const refill = Math.floor((now - s.strikesAt) / this.limits.strikeRefillMs);
    if (refill > 0) {
      s.strikes = Math.min(this.limits.strikes, s.strikes + refill);
      s.strikesAt += refill * this.limits.strikeRefillMs;
    }
    if (s.strikes > 0) {
      s.strikes--;
      return { action: 'drop', quota, detail };
    }
    s.refusedUntil = now + this.limits.cooldownMs;
    s.strikes = this.limits.strikes;
    s.strikesAt = now;
    return { action: 'disconnect', quota, detail };
  }
}
