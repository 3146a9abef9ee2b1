// The records the relay keeps. The store interface and its implementations speak these.

import type { HealthMessage, Labels, ModelSignature, ModelState, ReportedState } from '@outpost/shared';

export interface DeviceRecord {
  id: string;
  name: string;
  labels: Labels;
  createdAt: number;
  online: boolean;
  lastSeen: number | null;
  health: HealthMessage | null;
  reported: ReportedState | null;
}

export interface ModelVersionRecord {
  name: string;
  version: number;
  sha256: string;
  size: number;
  signature: ModelSignature;
  createdAt: number;
}

export interface ModelSummary {
  name: string;
  latestVersion: number;
  versions: number;
  updatedAt: number;
}

export type DeviceRolloutState = 'pending' | ModelState | 'superseded';
export type DeploymentState = 'in-progress' | 'succeeded' | 'failed';

export interface DeploymentDeviceRecord {
  deviceId: string;
  state: DeviceRolloutState;
  reason: string | null;
  updatedAt: number;
}

export interface DeploymentRecord {
  id: string;
  model: string;
  version: number;
  sha256: string;
  state: DeploymentState;
  createdAt: number;
  devices: DeploymentDeviceRecord[];
}

/** One heartbeat, reduced to what the charts plot. Rates are per second. */
export interface HealthSample {
  deviceId: string;
  ts: number;
  cpu: number;
  memUsed: number;
  memTotal: number;
  rss: number;
  reqRate: number;
  errRate: number;
  p50: number | null;
  p99: number | null;
}

export interface ApiTokenRecord {
  id: string;
  name: string;
  hash: string;
  role: 'admin';
}

export interface EnrollTokenRecord {
  id: string;
  hash: string;
  labels: Labels;
  expiresAt: number;
  usedAt: number | null;
}
