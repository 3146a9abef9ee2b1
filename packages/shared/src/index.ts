export { ERRORS, OutpostError, invalidTensor, isErrorBody, type ErrorBody, type ErrorCode } from './errors.js';
export { TOPIC_ROOT, DEVICE_TOPICS, DEVICE_WRITTEN_LEAVES, DEVICE_RETAINED_LEAVES, ALL_DEVICES_FILTER, devicePrefix, deviceTopic, parseDeviceTopic, isWithinDevicePrefix, type DeviceTopic } from './topics.js';
export {
  StatusMessage,
  ServingConfig,
  DesiredModel,
  DesiredState,
  ReportedModel,
  ReportedState,
  ModelHealth,
  HealthMessage,
  MODEL_STATES,
  messageParser,
  servingKey,
  JobAssignment,
  DesiredJobs,
  JobRunReport,
  JobsReported,
  JobLogBatch,
  DeviceNotice,
  REPORT_AGAIN,
  MqttLogin,
  LOG_LEVELS,
  MAX_LOG_LINE_BYTES,
  MAX_LOGS_REQUEST_LINES,
  LogsRequest,
  AgentLogLine,
  LogsAnswer,
  ACCELERATOR_PATTERN,
  MAX_ACCELERATORS,
  EXECUTION_PROVIDER_PATTERN,
  KNOWN_EXECUTION_PROVIDERS,
  type LogLevel,
  type ModelState,
  type MessageParser,
} from './messages.js';
export {
  DATATYPES,
  ORT_TYPE_BY_DATATYPE,
  datatypeFromOrtType,
  validateInputs,
  sampleInputs,
  elementCount,
  largestLegalRequest,
  formatSignature,
  type Datatype,
  type TensorSpec,
  type ModelSignature,
  type RequestTensor,
} from './signature.js';
export { signatureFromSession } from './model-signature.js';
export {
  INFERENCE_HEADER_LENGTH,
  TYPED_ARRAY,
  fromTensorBytes,
  toTensorBytes,
  lengthPrefixed,
  parseBinaryBody,
  encodeBinaryBody,
  type NumericArray,
  type TensorArray,
} from './kserve-binary.js';
export { probeAndSelfTest, probeModel, type ProbeOptions, type SelfTestResult } from './model-probe.js';
export { parsePort, parsePositiveInt, parseDurationOption, parseLabelsOption, collectDataset, parseSize, formatDuration, formatSize, durationOption, sizeOption, examples, relayUrl } from './cli-options.js';
export { CREDENTIAL_KINDS, credentialKind, notAnEnrollToken, type CredentialKind } from './credentials.js';
export { completionCommand, completionScript } from './completion.js';
export { parseDuration, parseLabels, formatLabels, checkLabel, parseDataset, closeOnSignals, type Labels } from './units.js';
export { formatBytes, formatAgo, formatElapsed } from './format.js';
export { lowerIsBetter, betterOf } from './metric-rule.js';
export { ROLES, isRole, roleAllows, type Role } from './roles.js';
export { DEFAULT_QUERY, FleetTally, SORT_COLUMNS, deviceP50, fleetCounts, isFailing, matchesQuery, queryFleet, reorderDevices, sortUsesHealth, type FleetCounts, type FleetQuery, type SortColumn, type StatusFilter } from './fleet-query.js';
export { JOB_RUN_STATES, JOB_STATES, ROUND_STATES, countsText, deploymentActive, jobActive, jobEnded, type JobRunState, type JobState, type RoundState } from './states.js';
export { ONNX_FLOAT, WeightedAverage, federatedAverage, floatValues, readModelWeights, updateProblem, type Initializer, type ModelWeights, type WeightedUpdate } from './onnx-weights.js';
export { FleetModel, type FleetChange, type JobLogLine, type JobMetricPoint } from './fleet-model.js';
export { createLogger, type Logger, type LogOptions } from './log.js';
export { STREAM_CLOSE, type FleetEvent, type FleetSnapshot, type StreamMessage, type DeviceSummary, type DeviceProblem, type DeploymentSummary, type RolloutSummary, type JobSummary, type RoundSummary, type FederatedSummary } from './stream.js';
export { packBundle, checkBundle, unpackBundle, bundleProblem, bundleEntryKey, resolveInBundle } from './bundle.js';
export { parseMetricLine, parseMetricJson, type MetricPoint } from './metric-line.js';
export { runJobProcess, type JobProcess, type JobProcessOptions, type JobProcessResult } from './job-process.js';
export { startJobRun, listOutputs, cleanUpLeftoverRuns, type JobLine, type JobRun, type JobRunOptions } from './job-workspace.js';
export { runGuarded, guarded, guardedInterval, guardedTimeout, background } from './guarded.js';
export { LogThrottle } from './log-throttle.js';
export { containRun, endRecordedRun, pidsWithMarker, RUN_MARKER_VARIABLE, type Containment, type ContainmentKind, type ContainmentRecord } from './job-containment.js';
export { isDiskFull } from './disk-full.js';
export { backoffMs, type Backoff } from './backoff.js';
export { floatToHalf, halfToFloat, toOrtTensor, type OrtTensorData } from './ort-tensors.js';
export { MAX_SAMPLE_BYTES, parseSample, selfTestFailure, selfTestInputs, type SelfTestInput } from './sample.js';
export { signatureChanges } from './signature-diff.js';
export { editDistance, nearest, didYouMean, typoBudget } from './nearest.js';
export { caFingerprint, caFingerprintHex, formatEnrollToken, normaliseSerial, splitEnrollToken } from './tls/fingerprint.js';
export { tlsConnectOptions, tlsFetch, trustedCas, type ClientTls, type TlsClientOptions } from './tls/client-tls.js';
export { caCertificates, isTlsBrokerUrl } from './tls/ca-certificates.js';
export { hostRendezvous, joinRendezvous, localAddressToward, type HostedRendezvous, type RendezvousPoint } from './job-rendezvous.js';
