// The fleet stream (`GET /v1/fleet/stream`, WebSocket): one `snapshot`, then one message per
// change. Every message has a `type`, a `seq` that only grows, and a timestamp `ts`.
// A client that reconnects with `?since=SEQ` gets what it missed, or a fresh snapshot.

import type { HealthMessage, ReportedModel } from './messages.js';
import type { Labels } from './units.js';

export interface DeviceSummary {
  id: string;
  name: string;
  labels: Labels;
  online: boolean;
  lastSeen: string | null;
  createdAt: string | null;
  models: ReportedModel[];
  health: HealthMessage | null;
}

export interface RolloutSummary {
  deviceId: string;
  state: string;
  reason: string | null;
  updatedAt: string | null;
}

export interface DeploymentSummary {
  id: string;
  model: string;
  version: number;
  sha256: string;
  state: string;
  createdAt: string | null;
  counts: Record<string, number>;
  devices: RolloutSummary[];
}

/** A change, as the relay publishes it (the stream adds `seq` and `ts`). */
export type FleetEvent =
  | { type: 'device.enrolled'; device: DeviceSummary }
  | { type: 'device.updated'; device: DeviceSummary }
  | { type: 'device.removed'; deviceId: string }
  | { type: 'device.status'; deviceId: string; online: boolean; lastSeen: string }
  | { type: 'device.health'; deviceId: string; health: HealthMessage }
  | { type: 'device.models'; deviceId: string; models: ReportedModel[] }
  | { type: 'deployment.created'; deployment: DeploymentSummary }
  | { type: 'deployment.progress'; deploymentId: string; deviceId: string; state: string; reason: string | null }
  | { type: 'deployment.state'; deploymentId: string; state: string };

export interface FleetSnapshot {
  type: 'snapshot';
  devices: DeviceSummary[];
  /** Deployments still in progress, and the most recent finished ones. */
  deployments: DeploymentSummary[];
  jobs: unknown[];
}

export type StreamMessage = (FleetEvent | FleetSnapshot) & { seq: number; ts: string };

/** WebSocket close codes the relay uses on the stream. */
export const STREAM_CLOSE = {
  /** The client fell too far behind; reconnect with `?since=` the last seq it handled. */
  TOO_SLOW: 4008,
  /** The relay is shutting down. */
  GOING_AWAY: 1001,
} as const;
