// The states of jobs and their runs, which deployment and job states are over, and how a
// deployment's progress reads: one rule for the relay, the agent, the CLI, `fleet watch` and the
// dashboard. Browser-safe.

/** A job: waiting for targets, running on them, or ended. */
export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** One rank of a job on its target (`starting` until the process runs). */
export const JOB_RUN_STATES = ['starting', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobRunState = (typeof JOB_RUN_STATES)[number];

/**
 * One attempt at a federated round: clients training, the updates averaged, too few good updates
 * (the round is asked again), or the job ended while it ran.
 */
export const ROUND_STATES = ['running', 'aggregated', 'retried', 'canceled'] as const;
export type RoundState = (typeof ROUND_STATES)[number];

/** A job or a run that is over: it takes no more lines, metrics or outputs. */
export const jobEnded = (state: JobState | JobRunState): boolean => state === 'succeeded' || state === 'failed' || state === 'canceled';

const DEPLOYMENT_ACTIVE: ReadonlySet<string> = new Set(['in-progress', 'waiting-for-devices']);
const JOB_ACTIVE: ReadonlySet<string> = new Set(['queued', 'running']);

/** A deployment still moving devices (or waiting for some to match). */
export const deploymentActive = (state: string): boolean => DEPLOYMENT_ACTIVE.has(state);

/** A job queued or running. */
export const jobActive = (state: string): boolean => JOB_ACTIVE.has(state);

/** `3 serving, 1 failed`: a deployment's devices per state. */
export function countsText(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
}
