// Every change in the fleet, published once; the stream and the metrics listen.

import type { FleetEvent } from '@outpost/shared';

export type FleetListener = (event: FleetEvent) => void;

export class FleetEvents {
  readonly #listeners = new Set<FleetListener>();

  on(listener: FleetListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: FleetEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
