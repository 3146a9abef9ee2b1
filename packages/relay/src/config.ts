// Every default of the relay, written once: `outpost-relay start` shows them in --help and
// passes what the person gave; createRelay fills in what a caller (a test, an embedding
// program) leaves out from the same table. The parts' own limits (device quotas, run quotas,
// packet limits) keep their tables beside their code and are named here.

import { DEFAULT_DEVICE_LIMITS } from './broker/device-quotas.js';
import { DEFAULT_RUN_QUOTAS } from './jobs/run-ingest.js';
import { DEFAULT_DUPLICATE_CLEAR_MS } from './fleet/duplicate-connections.js';

const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;

export const RELAY_DEFAULTS = {
  host: '0.0.0.0',
  httpPort: 8080,
  /** The embedded broker's port over TLS, and with --insecure. */
  mqttPortTls: 8883,
  mqttPortPlain: 1883,
  maxModelBytes: 2 * 1024 ** 3,
  maxDownloads: 64,
  downloadWaitMs: 10 * SECOND,
  deviceCertTtlMs: 30 * DAY,
  artifactCheckIntervalMs: 6 * HOUR,
  duplicateClearMs: DEFAULT_DUPLICATE_CLEAR_MS,
  tlsRefreshIntervalMs: DAY,
  /** On NATS: a device heard nothing from this long is marked offline (a dead node sends no will). */
  deviceSilenceMs: 90 * SECOND,
  deviceLimits: DEFAULT_DEVICE_LIMITS,
  runQuotas: DEFAULT_RUN_QUOTAS,
} as const;
