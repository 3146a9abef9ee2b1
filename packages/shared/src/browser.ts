// What the dashboard may import: the stream protocol's types, the fleet reducer, roles and
// formatting. Nothing here imports Node, so esbuild bundles it for the page.

export { DEFAULT_QUERY, FleetTally, SORT_COLUMNS, deviceP50, fleetCounts, isFailing, matchesQuery, queryFleet, reorderDevices, sortUsesHealth, type FleetCounts, type FleetQuery, type SortColumn, type StatusFilter } from './fleet-query.js';
export { JOB_RUN_STATES, JOB_STATES, ROUND_STATES, countsText, deploymentActive, jobActive, jobEnded, type JobRunState, type JobState, type RoundState } from './states.js';
export { FleetModel, type FleetChange, type JobLogLine, type JobMetricPoint } from './fleet-model.js';
export { formatAgo, formatBytes, formatElapsed } from './format.js';
export { betterOf, lowerIsBetter } from './metric-rule.js';
export { ROLES, isRole, roleAllows, type Role } from './roles.js';
export { STREAM_CLOSE, type DeploymentSummary, type DeviceProblem, type DeviceSummary, type FleetEvent, type FleetSnapshot, type JobSummary, type RolloutSummary, type StreamMessage, type RoundSummary, type FederatedSummary } from './stream.js';
export type { HealthMessage, ReportedModel } from './messages.js';
export { checkLabel, formatLabels, parseLabels, type Labels } from './labels.js';
