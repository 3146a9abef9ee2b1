// The fleet stream (`GET /v1/fleet/stream`, WebSocket): one `snapshot`, then one message per
// change. Every message has a `type`, a `seq` that only grows, and a timestamp `ts`.
// A client that reconnects with `?since=SEQ` gets what it missed, or a fresh snapshot.

import type { HealthMessage, ReportedModel, ServingConfig } from './messages.js';
import type { Labels } from './labels.js';
import type { JobRunState, JobState, RoundState } from './states.js';

/** Something wrong with a device that the relay has seen and that only a person can fix. */
export interface DeviceProblem {
  /** Two agents use the device's identity and take its connection from each other. */
  kind: 'duplicate-connection';
  /** When the relay first saw it. */
  since: string;
  /** Connections taken from one agent by the other in the last minute. */
  takeovers: number;
  /** One line: what it is and what to do. */
  message: string;
}

export interface DeviceSummary {
  id: string;
  name: string;
  labels: Labels;
  online: boolean;
  lastSeen: string | null;
  createdAt: string | null;
  models: ReportedModel[];
  health: HealthMessage | null;
  /** Null while nothing is wrong (absent from relays before it). */
  problem?: DeviceProblem | null;
  /** Accelerators its agent reports (found or `--accelerator`); absent from relays before them. */
  accelerators?: string[];
  /** onnxruntime execution providers its agent can use. */
  executionProviders?: string[];
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
  /** Labels every device it targets has, now and later; null for named devices. */
  selector: Labels | null;
  /** The rollout strategy of a staged rollout; null when every device got it at once. */
  strategy: { kind: string; batch: number | string; canary: number; failureThreshold: number | string | null; healthWindowMs: number } | null;
  /** How devices serve it (dynamic batching, session options); null for the agents' defaults. */
  serving: ServingConfig | null;
  createdAt: string | null;
  counts: Record<string, number>;
  devices: RolloutSummary[];
}

export interface JobSummary {
  id: string;
  state: JobState;
  target: string;
  command: string;
  nodes: number;
  createdAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  runs: Array<{ rank: number; target: string; state: JobRunState; exitCode: number | null; error: string | null }>;
  /** Latest and best value of each metric (best: lowest for names with loss/error, else highest). */
  metrics: Record<string, { latest: number; best: number; step: number | null }>;
  outputs: Array<{ rank: number; path: string; sha256: string; size: number }>;
  model: { name: string; version: number; deploymentId?: string } | null;
  /** A federated job's settings and where it stands; null for other jobs. */
  federated: FederatedSummary | null;
  /** A scoring job's model and output format; null for other jobs. */
  score: { model: string; version: number; format: 'jsonl' | 'csv' } | null;
  /** Accelerators a device must report to run it (`--require`); absent from relays before it. */
  require?: string[];
  /** Why a queued job has not started (e.g. "waiting: no target reports cuda"), else null. */
  waiting?: string | null;
}

export interface FederatedSummary {
  rounds: number;
  minClients: number;
  fraction: number;
  strategy: 'fedavg' | 'fedprox';
  proximalMu: number;
  roundDeadlineMs: number;
  initialModel: { name: string; version: number };
  /** Rounds aggregated so far. */
  completed: number;
  /** Why no round runs now (too few clients), or null. */
  waiting: string | null;
}

/** One attempt at a federated round. */
export interface RoundSummary {
  round: number;
  attempt: number;
  state: RoundState;
  /** The clients asked, each with its run's rank. */
  clients: Array<{ deviceId: string; rank: number }>;
  /** The clients whose updates were averaged, with their weights. */
  participants: Array<{ deviceId: string; numExamples: number }>;
  dropped: Array<{ client: string; reason: string }>;
  /** The participants' metrics, averaged weighted by their examples. */
  metrics: Record<string, number>;
  /** The model the round starts from, and the average it made. */
  globalSha256: string;
  resultSha256: string | null;
  startedAt: string | null;
  deadlineAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

/** A change, as the relay publishes it (the stream adds `seq` and `ts`). */
export type FleetEvent =
  | { type: 'device.enrolled'; device: DeviceSummary }
  | { type: 'device.updated'; device: DeviceSummary }
  | { type: 'device.removed'; deviceId: string }
  | { type: 'device.status'; deviceId: string; online: boolean; lastSeen: string; /** Marked offline for silence (no message for the window), not by the device or its will. */ silent?: boolean }
  | { type: 'device.health'; deviceId: string; health: HealthMessage }
  | { type: 'device.models'; deviceId: string; models: ReportedModel[] }
  /** A problem seen (`problem`) or gone (`null`); see DeviceProblem. */
  | { type: 'device.problem'; deviceId: string; problem: DeviceProblem | null }
  /** A device past a quota (at most one a minute per device; `suppressed` counts the rest). */
  | { type: 'device.quota'; deviceId: string; quota: string; action: 'dropped' | 'unretained' | 'disconnected' | 'refused'; detail: string; suppressed: number }
  | { type: 'deployment.created'; deployment: DeploymentSummary }
  | { type: 'deployment.progress'; deploymentId: string; deviceId: string; state: string; reason: string | null }
  | { type: 'deployment.state'; deploymentId: string; state: string }
  | { type: 'job.created'; job: JobSummary }
  | { type: 'job.state'; jobId: string; state: JobState; error: string | null }
  | { type: 'job.run'; jobId: string; rank: number; target: string; state: JobRunState; exitCode: number | null; error: string | null }
  | { type: 'job.log'; jobId: string; lines: Array<{ seq: number; rank: number; ts: number; stream: string; text: string }> }
  | { type: 'job.round'; jobId: string; round: RoundSummary }
  | { type: 'job.metric'; jobId: string; rank: number; points: Array<{ name: string; value: number; step: number | null }> };

export interface FleetSnapshot {
  type: 'snapshot';
  devices: DeviceSummary[];
  /** Deployments still in progress, and the most recent finished ones. */
  deployments: DeploymentSummary[];
  /** Queued and running jobs, and the 20 newest others. */
  jobs: JobSummary[];
}

export type StreamMessage = (FleetEvent | FleetSnapshot) & { seq: number; ts: string };

/** WebSocket close codes the relay uses on the stream. */
export const STREAM_CLOSE = {
  /** The client fell too far behind; reconnect with `?since=` the last seq it handled. */
  TOO_SLOW: 4008,
  /** The relay is shutting down. */
  GOING_AWAY: 1001,
  /** The client's token was revoked or has expired: it needs a new one, not a reconnect. */
  TOKEN_ENDED: 4401,
} as const;
