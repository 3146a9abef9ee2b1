// Whether a device is online, from messages that may arrive out of order. Status messages carry
// the session (connection) they belong to: a newer session wins, and within one session an
// offline (the will, or a clean goodbye) ends it. So a will that the broker publishes late, after
// the device has already reconnected, cannot mark it offline. A heartbeat proves a device online
// too: the broker only delivers it while the device is connected.

import type { StatusMessage } from '@outpost/shared';

export class Presence {
  readonly #last = new Map<string, { session: number; online: boolean }>();

  /** Whether this status message is news (to be applied), given the ones seen before it. */
  status(deviceId: string, m: StatusMessage): boolean {
    const last = this.#last.get(deviceId);
    // Agents before sessions: arrival order, as before.
    if (m.session === undefined) {
      this.#last.set(deviceId, { session: last?.session ?? 0, online: m.online });
      return true;
    }
    if (last && (m.session < last.session || (m.session === last.session && m.online && !last.online))) return false;
    this.#last.set(deviceId, { session: m.session, online: m.online });
    return true;
  }

  /** A heartbeat arrived: true when it brings a device the relay thought offline back online. */
  async heartbeat(deviceId: string, storedOnline: () => Promise<boolean>): Promise<boolean> {
    if (!this.#last.has(deviceId) && (await storedOnline())) return false;
    // Looked at again after the await: another message may have settled it meanwhile.
    const last = this.#last.get(deviceId);
    if (last?.online) return false;
    this.#last.set(deviceId, { session: last?.session ?? 0, online: true });
    return true;
  }

  forget(deviceId: string): void {
    this.#last.delete(deviceId);
  }
}
