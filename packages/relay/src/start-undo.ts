// A relay start opens things one after another: the data dir, the database, the broker's port,
// the MQTT connection, the HTTP port, timers. When a later step fails, what the earlier ones
// opened is closed again, newest first, so a failed start leaves nothing of its own behind
// (no port held, no timer keeping the process alive) and the next start begins afresh.

import type { Logger } from '@outpost/shared';

export class StartUndo {
  readonly #log: Logger;
  readonly #steps: Array<{ what: string; undo: () => unknown }> = [];

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Records how to undo a step that has just succeeded. */
  add(what: string, undo: () => unknown): void {
    this.#steps.push({ what, undo });
  }

  /** Undoes every recorded step, newest first; one that fails is logged and the others still run. */
  async run(): Promise<void> {
    for (const step of this.#steps.reverse()) {
      try {
        await step.undo();
      } catch (err) {
        this.#log.warn({ err }, `a failed start could not undo ${step.what}`);
      }
    }
    this.#steps.length = 0;
  }
}
