// Every change in the fleet, published once; the stream and the metrics listen. With several
// relays, each relay's changes also reach the others (cluster/pg-event-log.ts): `emit` is for
// this relay's own, `receive` for another relay's.

import { AsyncResource } from 'node:async_hooks';
import { runGuarded, type FleetEvent, type Logger } from '@outpost/shared';

export type FleetListener = (event: FleetEvent) => void;

export class FleetEvents {
  readonly #listeners = new Set<FleetListener>();
  readonly #local = new Set<FleetListener>();
  readonly #log: Logger;
  /**
   * Listeners run in the async context the relay was built in, not the emitter's: work they
   * start (a rollout evaluation, a scheduling pass) must not take itself for part of a
   * transaction or a held store lock the event was emitted inside.
   */
  readonly #root = new AsyncResource('FleetEvents');

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Every event, this relay's and (once received) the other relays'. */
  on(listener: FleetListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** This relay's own events only: what it hands on to the other relays. */
  onLocal(listener: FleetListener): () => void {
    this.#local.add(listener);
    return () => this.#local.delete(listener);
  }

  emit(event: FleetEvent): void {
    this.#deliver(this.#listeners, event);
    this.#deliver(this.#local, event);
  }

  /** An event another relay emitted. */
  receive(event: FleetEvent): void {
    this.#deliver(this.#listeners, event);
  }

  #deliver(listeners: Set<FleetListener>, event: FleetEvent): void {
    // A listener that fails costs its own work on this event, not the emitter's or the others'.
    this.#root.runInAsyncScope(() => {
      for (const listener of listeners) runGuarded(this.#log, `handling a ${event.type} event`, () => listener(event));
    });
  }
}
