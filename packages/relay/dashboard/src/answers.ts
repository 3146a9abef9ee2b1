// The shapes of the relay API's answers the page reads (besides the stream's, from shared).

import type { JobSummary, RoundSummary } from '@outpost/shared/browser';

/** `GET /v1/jobs/{id}` (and each of `GET /v1/jobs`): a federated job's rounds come with it. */
export type JobWithRounds = JobSummary & { rounds?: RoundSummary[] };

/** `GET /v1/targets`: the relay host (`local`) and every device, as training targets. */
export interface Target {
  name: string;
  kind: string;
  deviceName?: string;
  attached: boolean;
  trains: boolean;
}

/** `GET /v1/models`. */
export interface ModelList {
  models: Array<{ name: string; latestVersion: number; versions: number }>;
}

/** `GET /v1/models/{name}`: the versions there are (deleted and pruned ones are not). */
export interface ModelVersions {
  name: string;
  versions: Array<{ version: number; createdAt: string }>;
}
