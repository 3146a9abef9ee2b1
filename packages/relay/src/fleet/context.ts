// What the fleet logic needs from the rest of the relay, passed in so each part is testable.

import type { Logger } from '@outpost/shared';
import type { Store } from '../store/store.js';
import type { RelayClient } from '../broker/relay-client.js';
import type { FleetEvents } from './fleet-events.js';
import type { HealthHistory } from './health-history.js';

export interface FleetContext {
  store: Store;
  mqtt: RelayClient;
  log: Logger;
  now(): number;
  events: FleetEvents;
  history: HealthHistory;
  /** Drops a device's MQTT connection, when the broker is embedded (an external one ages it out). */
  disconnectDevice?(deviceId: string): void;
}
