// Which devices exist, as the message router asks before every message: a removed device's last
// words do not count. Asking the store each time cost a round trip per heartbeat (on PostgreSQL
// with 20,000 devices, 2,000 a second); a device seen to exist is remembered for a while instead.
// A removal drops it at once (the `device.removed` event reaches every relay); the time limit
// covers an event that never arrived.

export interface KnownDevicesOptions {
  /** Whether the store has the device. */
  exists(deviceId: string): Promise<boolean>;
  /** How long a device found in the store is taken to exist without asking again (default 60 s). */
  ttlMs?: number;
  /** Devices remembered at most; past it the memory starts again (default 200,000). */
  max?: number;
  now?: () => number;
}

export class KnownDevices {
  readonly #opts: KnownDevicesOptions;
  /** Device id → until when it is taken to exist. */
  readonly #until = new Map<string, number>();
  /** Removals during a store read: that read's answer is stale. */
  #generation = 0;

  constructor(opts: KnownDevicesOptions) {
    this.#opts = opts;
  }

  async exists(deviceId: string): Promise<boolean> {
    const now = (this.#opts.now ?? Date.now)();
    const until = this.#until.get(deviceId);
    if (until !== undefined && until > now) return true;
    const generation = this.#generation;
    const exists = await this.#opts.exists(deviceId);
    if (!exists || generation !== this.#generation) {
      this.#until.delete(deviceId);
      return exists;
    }
    if (this.#until.size >= (this.#opts.max ?? 200_000)) this.#until.clear();
    this.#until.set(deviceId, now + (this.#opts.ttlMs ?? 60_000));
    return true;
  }

  /** The device was removed (or may have been): the next message asks the store. */
  forget(deviceId: string): void {
    this.#generation++;
    this.#until.delete(deviceId);
  }

  get size(): number {
    return this.#until.size;
  }
}
