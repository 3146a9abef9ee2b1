// What the fleet logic needs from the rest of the relay, passed in so each part is testable.

import type { JobLine, JobRunReport, Logger } from '@outpost/shared';
import type { Store } from '../store/store.js';
import type { RelayClient } from '../broker/relay-client.js';
import type { BrokerAccounts } from '../broker/mosquitto-dynsec.js';
import type { FleetEvents } from './fleet-events.js';
import type { HealthHistory } from './health-history.js';
import type { QuotaEvents } from './quota-events.js';
import type { Presence } from './presence.js';
import type { DuplicateConnections } from './duplicate-connections.js';
import type { FileState } from '../artifacts/artifact-store.js';
import type { DeviceLogRequests } from './device-logs.js';
import type { RelayTls } from '../tls/relay-tls.js';
import type { AuditLog } from '../auth/audit.js';

/** What the job scheduler takes from device messages (the message router is handed it). */
export interface JobMessages {
  onRunReports(deviceId: string, runs: JobRunReport[]): Promise<void>;
  /** Returns why the lines were refused, or null. */
  onLogs(source: string, jobId: string, rank: number, lines: JobLine[]): Promise<string | null>;
}

export interface FleetContext {
  store: Store;
  mqtt: RelayClient;
  log: Logger;
  now(): number;
  events: FleetEvents;
  history: HealthHistory;
  /** Devices past a quota: counted, logged once a minute, streamed. */
  quota: QuotaEvents;
  /** Which status messages are news, whatever order they arrive in. */
  presence: Presence;
  /** Devices whose identity two agents use at once (fleet/duplicate-connections.ts). */
  duplicates: DuplicateConnections;
  /** Log requests waiting for devices' answers (held for their callers only, never stored). */
  deviceLogs: DeviceLogRequests;
  /** The relay's CA and certificates; undefined with --insecure. */
  tls?: RelayTls;
  /** Drops a device's MQTT connection, when the broker is embedded (an external one ages it out). */
  disconnectDevice?(deviceId: string): void;
  /** Whether the relay's copy of an artifact is sound (unset in tests of fleet logic alone). */
  artifactFile?(sha256: string): FileState;
  /** Device accounts on an external broker that the relay keeps (Mosquitto's dynamic security). */
  brokerAccounts?: BrokerAccounts;
  /** The audit log, for what the relay does by itself (unset in tests of fleet logic alone). */
  audit?: AuditLog;
}
