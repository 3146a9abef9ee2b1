// MQTT message schemas: one source for the runtime check and the TypeScript type.
// Every message a peer receives is checked before use; a malformed one is dropped and logged.

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { JOB_RUN_STATES } from './states.js';
import { TypeCompiler } from '@sinclair/typebox/compiler';

// Every number from outside has a bound, so a schema-valid message can never carry a value that
// turns into Infinity or NaN in arithmetic (two counters near Number.MAX_VALUE subtract and
// divide into a non-finite rate) or that no real device could send. TypeBox already refuses
// the non-finite numbers JSON.parse makes of 1e400.
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const MODEL_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const ModelName = Type.String({ pattern: MODEL_NAME_PATTERN });
/** Milliseconds since the epoch, up to the last date JavaScript can hold. */
const Timestamp = Type.Number({ minimum: 0, maximum: 8.64e15 });
/** A count that only grows: an integer that stays exact in a double. */
const Counter = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** Bytes of memory or disk: up to an exbibyte. */
const Bytes = Type.Number({ minimum: 0, maximum: 2 ** 60 });
/** A latency in ms: up to a day. */
const LatencyMs = Type.Number({ minimum: 0, maximum: 86_400_000 });
const Revision = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Id = Type.String({ minLength: 1, maxLength: 64 });

/** An accelerator name (`cuda`, `tegra`, `gpu`, or one an operator declares): lower case, at most 32 characters. */
export const ACCELERATOR_PATTERN = '^[a-z][a-z0-9_-]{0,31}$';
/** Accelerators (and execution providers) one device may report. */
export const MAX_ACCELERATORS = 16;
/** An onnxruntime execution provider name as deployments and devices give it. */
export const EXECUTION_PROVIDER_PATTERN = '^[a-z][a-z0-9_]{0,31}$';
const ExecutionProviderName = Type.String({ pattern: EXECUTION_PROVIDER_PATTERN });
/**
 * The execution providers onnxruntime-node knows on some platform (its listSupportedBackends()
 * on Linux, Windows and macOS). A deployment naming another is refused; one of these that a
 * device cannot use is skipped there for the next (finally `cpu`).
 */
export const KNOWN_EXECUTION_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu', 'dml', 'coreml', 'qnn'] as const;

/** `outpost/v1/devices/{id}/status` (retained; the agent's last will publishes `online: false`). */
export const StatusMessage = Type.Object({
  online: Type.Boolean(),
  ts: Timestamp,
  /**
   * The connection this status belongs to (its start, ms): the online message and the last will
   * of one connection share it, and a later connection has a larger one, so the relay can tell
   * a late will of an old connection from the end of the current one.
   */
  session: Type.Optional(Timestamp),
  /**
   * The agent process (random at its start). Two agents that share one identity (a copied
   * data dir) have different ones, so the relay can tell them taking the connection from each
   * other apart from one agent reconnecting.
   */
  instance: Type.Optional(Type.String({ pattern: '^[0-9a-f]{8,32}$' })),
  agentVersion: Type.Optional(Type.String({ maxLength: 64 })),
  /** The device owner's consent to run training jobs (`outpost-agent start --accept-training`). */
  training: Type.Optional(Type.Boolean()),
  /** Named local datasets a job may ask for (`--dataset NAME=PATH`); paths stay on the device. */
  datasets: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 })),
  /**
   * Accelerators the device has (found, e.g. `cuda` for /dev/nvidia0, or declared with
   * `--accelerator NAME`): selectors (`accelerator=cuda`) and `jobs submit --require` match them.
   */
  accelerators: Type.Optional(Type.Array(Type.String({ pattern: ACCELERATOR_PATTERN }), { maxItems: MAX_ACCELERATORS })),
  /** onnxruntime execution providers the agent can use here (the binding has them and the hardware is there), `cpu` first. */
  executionProviders: Type.Optional(Type.Array(ExecutionProviderName, { maxItems: MAX_ACCELERATORS })),
});
export type StatusMessage = Static<typeof StatusMessage>;

/**
 * How devices serve a deployment's model: onnxruntime session options and dynamic batching.
 * Every field is optional; the agent's defaults fill the rest (see DEFAULT_SERVING).
 */
export const ServingConfig = Type.Object({
  /** Rows merged into one run; 1 (the default) turns dynamic batching off. */
  maxBatchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
  /** How long the oldest request may wait for a fuller batch (default 0: batches form under load). */
  maxQueueDelayMs: Type.Optional(Type.Number({ minimum: 0, maximum: 10_000 })),
  /** Requests waiting past which new ones get 429 (default 64). */
  maxQueue: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
  /** Inference runs under way at once on the model's session (default 1). */
  instances: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  interOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  graphOptimization: Type.Optional(Type.Union([Type.Literal('disabled'), Type.Literal('basic'), Type.Literal('extended'), Type.Literal('all')])),
  /** onnxruntime execution providers in order of preference (default ["cpu"]). */
  executionProviders: Type.Optional(Type.Array(ExecutionProviderName, { minItems: 1, maxItems: 8 })),
  /** Inference runs on sample inputs at load, before the model takes traffic (default 1). */
  warmup: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  /** "off": the device does not run the model on a sample before it serves (for a model no sample exercises). */
  selfTest: Type.Optional(Type.Literal('off')),
});
export type ServingConfig = Static<typeof ServingConfig>;

/** Serving settings as a comparable string (keys sorted): equal settings, equal keys. */
export function servingKey(serving: ServingConfig | null | undefined): string {
  const s = serving ?? {};
  const keys = Object.keys(s).filter((k) => s[k as keyof ServingConfig] !== undefined);
  return JSON.stringify(keys.sort().map((k) => [k, s[k as keyof ServingConfig]]));
}

export const DesiredModel = Type.Object({
  name: ModelName,
  version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  sha256: Sha256,
  size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  deploymentId: Id,
  serving: Type.Optional(ServingConfig),
  /** The version's sample request (a KServe v2 request body, an artifact): the self-test and warm-up run on it. */
  sample: Type.Optional(Type.Object({ sha256: Sha256, size: Type.Integer({ minimum: 0, maximum: 64 * 1024 * 1024 }) })),
});
export type DesiredModel = Static<typeof DesiredModel>;

/** `outpost/v1/devices/{id}/desired` (retained, written by the relay): what the device should serve. */
export const DesiredState = Type.Object({
  revision: Revision,
  models: Type.Array(DesiredModel, { maxItems: 256 }),
  /** `devices rotate`: a device certificate issued before this time (ms) is renewed now. */
  renewCertificateIssuedBefore: Type.Optional(Timestamp),
});
export type DesiredState = Static<typeof DesiredState>;

export const MODEL_STATES = ['downloading', 'loading', 'serving', 'failed'] as const;
export type ModelState = (typeof MODEL_STATES)[number];

export const ReportedModel = Type.Object({
  name: ModelName,
  /** The version the agent is working towards (the desired one). */
  version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  sha256: Sha256,
  state: Type.Union(MODEL_STATES.map((s) => Type.Literal(s))),
  reason: Type.Optional(Type.String({ maxLength: 2000 })),
  /**
   * servingKey() of the desired entry's serving settings, so the relay can tell a report about
   * this deployment from one about the same file under other settings (older agents omit it).
   */
  servingKey: Type.Optional(Type.String({ maxLength: 4000 })),
  /** When the agent gave `reason` (ms since the epoch): the time of a failure or of a retry's cause. */
  at: Type.Optional(Timestamp),
  /** What the self-test of the version ran on: the version's sample, a synthetic input from its signature, or nothing (off). */
  selfTest: Type.Optional(Type.Union([Type.Literal('sample'), Type.Literal('synthetic'), Type.Literal('off')])),
  /** The version answering requests right now; an older one while a new one loads or after it failed. */
  serving: Type.Optional(Type.Object({ version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), sha256: Sha256 })),
  /** The execution provider the loaded session runs on: the first of the deployment's that worked here, else `cpu`. */
  executionProvider: Type.Optional(ExecutionProviderName),
  /** The deployment's providers tried before that one, each with why it could not be used here. */
  providersSkipped: Type.Optional(Type.Array(Type.Object({ provider: ExecutionProviderName, reason: Type.String({ maxLength: 500 }) }), { maxItems: 8 })),
});
export type ReportedModel = Static<typeof ReportedModel>;

/** `outpost/v1/devices/{id}/reported` (retained, written by the agent). */
export const ReportedState = Type.Object({
  revision: Revision,
  models: Type.Array(ReportedModel, { maxItems: 256 }),
});
export type ReportedState = Static<typeof ReportedState>;

export const ModelHealth = Type.Object({
  /** Requests that reached the model (answered, or failed on the device's side), since the agent started. */
  requests: Counter,
  /** Of those, the ones that failed on the device's side (5xx): what health windows judge. */
  errors: Counter,
  /** Requests refused before the model ran (malformed: 4xx; overloaded: 429); not the model's fault. */
  rejected: Type.Optional(Counter),
  /** Latency over the last heartbeat interval, null when no request arrived in it. */
  p50Ms: Type.Union([LatencyMs, Type.Null()]),
  p99Ms: Type.Union([LatencyMs, Type.Null()]),
  /** The latest of `errors`: when, and what onnxruntime said. */
  lastError: Type.Optional(Type.Object({ at: Timestamp, message: Type.String({ maxLength: 500 }) })),
});
export type ModelHealth = Static<typeof ModelHealth>;

/** `outpost/v1/devices/{id}/health`: the heartbeat. */
export const HealthMessage = Type.Object({
  ts: Timestamp,
  uptimeS: Type.Number({ minimum: 0, maximum: 1e10 }),
  /** Of all the device's cores together, 0–100. */
  cpuPercent: Type.Number({ minimum: 0, maximum: 100 }),
  memory: Type.Object({ rssBytes: Bytes, usedBytes: Bytes, totalBytes: Bytes }),
  disk: Type.Object({ freeBytes: Bytes, totalBytes: Bytes }),
  models: Type.Record(Type.String({ pattern: MODEL_NAME_PATTERN }), ModelHealth, { maxProperties: 256, additionalProperties: false }),
  /** The device certificate (TLS relays): when it ends, and why its last renewal failed, while it does. */
  certificate: Type.Optional(
    Type.Object({
      expiresAt: Timestamp,
      renewAt: Timestamp,
      lastError: Type.Optional(Type.String({ maxLength: 500 })),
    }),
  ),
});
export type HealthMessage = Static<typeof HealthMessage>;

/** Where rank 0 of an N-node job waits for the others: an IP address or host name, and a port. */
export const RendezvousPoint = Type.Object({
  addr: Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:%_-]+$' }),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
});

/** A run's rank: federated jobs number every client run of every round, so it can pass the world size. */
const Rank = Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 });

export const JobAssignment = Type.Object({
  jobId: Id,
  rank: Rank,
  worldSize: Type.Integer({ minimum: 1, maximum: 10000 }),
  bundleSha256: Sha256,
  command: Type.String({ maxLength: 8192 }),
  env: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 8192 }), { maxProperties: 128, additionalProperties: false }),
  dataset: Type.Optional(Type.String({ maxLength: 64 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
  /** A client's run of a federated round: the global model it starts from (an artifact), the round, FedProx's mu. */
  federated: Type.Optional(
    Type.Object({
      round: Type.Integer({ minimum: 1, maximum: 100_000 }),
      globalModelSha256: Sha256,
      proximalMu: Type.Number({ minimum: 0, maximum: 1e6 }),
    }),
  ),
  /** A scoring job's run: the agent's own runtime over the dataset (no user code); bundleSha256 is the model. */
  score: Type.Optional(Type.Object({ modelSha256: Sha256, format: Type.Union([Type.Literal('jsonl'), Type.Literal('csv')]) })),
  /**
   * An N-node job's rendezvous (job-rendezvous.ts): the job's secret, how long ranks wait for
   * each other, and, for ranks above 0, rank 0's point once it reported one.
   */
  rendezvous: Type.Optional(
    Type.Object({
      secret: Type.String({ minLength: 16, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }),
      timeoutMs: Type.Integer({ minimum: 1, maximum: 86_400_000 }),
      master: Type.Optional(RendezvousPoint),
    }),
  ),
});
export type JobAssignment = Static<typeof JobAssignment>;

/** `outpost/v1/devices/{id}/jobs` (retained, written by the relay): the job runs the device should be running. */
export const DesiredJobs = Type.Object({
  revision: Revision,
  jobs: Type.Array(JobAssignment, { maxItems: 256 }),
});
export type DesiredJobs = Static<typeof DesiredJobs>;

export { JOB_RUN_STATES, type JobRunState } from './states.js';

export const JobRunReport = Type.Object({
  jobId: Id,
  rank: Rank,
  state: Type.Union(JOB_RUN_STATES.map((s) => Type.Literal(s))),
  exitCode: Type.Optional(Type.Union([Type.Integer({ minimum: -(2 ** 31), maximum: 2 ** 31 }), Type.Null()])),
  error: Type.Optional(Type.String({ maxLength: 2000 })),
  /** Rank 0 of an N-node job: where the other ranks reach it. */
  rendezvous: Type.Optional(RendezvousPoint),
});
export type JobRunReport = Static<typeof JobRunReport>;

/** `outpost/v1/devices/{id}/jobs-reported` (retained, written by the agent). */
export const JobsReported = Type.Object({ runs: Type.Array(JobRunReport, { maxItems: 256 }) });
export type JobsReported = Static<typeof JobsReported>;

/** `outpost/v1/devices/{id}/job-log`: a batch of output lines of one run. */
export const JobLogBatch = Type.Object({
  jobId: Id,
  rank: Rank,
  lines: Type.Array(Type.Object({ ts: Timestamp, stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]), text: Type.String({ maxLength: 10_000 }) }), { maxItems: 1000 }),
});
export type JobLogBatch = Static<typeof JobLogBatch>;

/** GET /v1/devices/me/mqtt-login: the device's MQTT login where the broker has its own (NATS). */
export const MqttLogin = Type.Object({
  username: Type.Optional(Type.String({ maxLength: 256 })),
  password: Type.String({ minLength: 1, maxLength: 8192 }),
  subscribeQos: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1)])),
  urls: Type.Optional(Type.Array(Type.String({ pattern: '^(mqtts?|wss?)://', maxLength: 2048 }), { minItems: 1, maxItems: 16 })),
});
export type MqttLogin = Static<typeof MqttLogin>;

/** A notice kind: the relay lost track of reports (a broker without retained ones); send them again. */
export const REPORT_AGAIN = 'report-again';

/**
 * `outpost/v1/devices/{id}/notice` (retained, written by the relay; empty when there is none):
 * a problem with the device that its agent should act on. Kinds an agent does not know are ignored.
 */
export const DeviceNotice = Type.Object({
  /**
   * `duplicate-connection`: two agents use this identity and take the connection from each
   * other; `report-again` (REPORT_AGAIN): publish the reported state and job reports again.
   */
  kind: Type.String({ maxLength: 64 }),
  /** When the relay first saw it (ms). */
  since: Timestamp,
  /** One line for the agent's log. */
  message: Type.String({ maxLength: 500 }),
});
export type DeviceNotice = Static<typeof DeviceNotice>;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** Bytes one agent log line may take as JSON (seq, ts, level, msg and fields together). */
export const MAX_LOG_LINE_BYTES = 2048;
/** Lines one logs request may ask for. */
export const MAX_LOGS_REQUEST_LINES = 1000;
const RequestId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

/** `outpost/v1/devices/{id}/logs-request` (written by the relay, not retained): send me your recent log lines. */
export const LogsRequest = Type.Object({
  requestId: RequestId,
  /** The lines after this seq, oldest first; without it, the newest `limit` lines. */
  after: Type.Optional(Counter),
  limit: Type.Integer({ minimum: 1, maximum: MAX_LOGS_REQUEST_LINES }),
});
export type LogsRequest = Static<typeof LogsRequest>;

/** One line of the agent's own log, as its ring buffer keeps it (secrets redacted, at most MAX_LOG_LINE_BYTES). */
export const AgentLogLine = Type.Object({
  /** Grows by one per line; starts at the agent's start time (ms), so it keeps growing across restarts. */
  seq: Counter,
  ts: Timestamp,
  level: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l))),
  msg: Type.String({ maxLength: MAX_LOG_LINE_BYTES }),
  /** The line's other keys; nested values arrive as (cut) JSON text. */
  fields: Type.Optional(
    Type.Record(
      Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
      Type.Union([Type.String({ maxLength: 512 }), Type.Number({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }), Type.Boolean(), Type.Null()]),
      { maxProperties: 32, additionalProperties: false },
    ),
  ),
});
export type AgentLogLine = Static<typeof AgentLogLine>;

/** `outpost/v1/devices/{id}/logs` (written by the agent, not retained, QoS 1): one part of an answer, parts in order. */
export const LogsAnswer = Type.Object({
  requestId: RequestId,
  part: Type.Integer({ minimum: 0, maximum: MAX_LOGS_REQUEST_LINES }),
  /** The last part of the answer. */
  done: Type.Boolean(),
  lines: Type.Array(AgentLogLine, { maxItems: MAX_LOGS_REQUEST_LINES }),
});
export type LogsAnswer = Static<typeof LogsAnswer>;

export interface MessageParser<T> {
  /** Parses and checks a payload; returns the value or a one-line reason it was refused. */
  parse(payload: Buffer | string): { ok: true; value: T } | { ok: false; reason: string };
}

export function messageParser<S extends TSchema>(schema: S): MessageParser<Static<S>> {
  const check = TypeCompiler.Compile(schema);
  return {
    parse(payload) {
      let value: unknown;
      try {
        value = JSON.parse(payload.toString());
      } catch {
        return { ok: false, reason: 'payload is not JSON' };
      }
      if (check.Check(value)) return { ok: true, value };
      const first = check.Errors(value).First();
      return { ok: false, reason: first ? `${first.path || '/'}: ${first.message}` : 'payload does not match the schema' };
    },
  };
}
