// Every change in the fleet, published once; the stream and the metrics listen.

import { runGuarded, type FleetEvent, type Logger } from '@outpost/shared';

export type FleetListener = (event: FleetEvent) => void;

export class FleetEvents {
  readonly #listeners = new Set<FleetListener>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  on(listener: FleetListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: FleetEvent): void {
    // A listener that fails costs its own work on this event, not the emitter's or the others'.
    for (const listener of this.#listeners) runGuarded(this.#log, `handling a ${event.type} event`, () => listener(event));
  }
}
