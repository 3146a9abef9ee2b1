// What every page of the dashboard is: drawn when its route opens, told of each stream change
// while it is open (it redraws what the change touched, once per frame), closed when left.

import type { FleetChange, StreamMessage } from '@outpost/shared/browser';

export interface Page {
  /** Draws the page into #view. */
  open(): void;
  /** A stream message changed the fleet model. */
  change(change: FleetChange, message: StreamMessage): void;
  /** The route changed: stop timers, drop charts. */
  close(): void;
}
