// A bound on concurrent artifact downloads, with a short first-come-first-served wait. When
// a rollout sends a file to thousands of devices, a device that finds every slot taken waits
// its turn here instead of being sent away to poll again: no retry storm, and nobody is unlucky
// for many rounds. Past the wait, the caller answers 503 + Retry-After.

export class DownloadSlots {
  readonly #max: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(max: number) {
    this.#max = max;
  }

  get active(): number {
    return this.#active;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Takes a slot, waiting up to `waitMs` for one; resolves false when none came (or `signal`
   * aborted: the client went away). Every true must be matched by one release().
   */
  take(waitMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#active < this.#max) {
      this.#active++;
      return Promise.resolve(true);
    }
    if (waitMs <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const give = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', leave);
        resolve(true); // the slot passes straight from release() to us: active stays the same
      };
      const leave = () => {
        const i = this.#waiting.indexOf(give);
        if (i >= 0) this.#waiting.splice(i, 1);
        clearTimeout(timer);
        signal?.removeEventListener('abort', leave);
        resolve(false);
      };
      const timer = setTimeout(leave, waitMs);
      signal?.addEventListener('abort', leave, { once: true });
      this.#waiting.push(give);
    });
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }
}
