// Which deployment and job states are over, and how a deployment's progress reads: one rule
// for the CLI, `fleet watch` and the dashboard. Browser-safe.

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
