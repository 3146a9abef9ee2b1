// The fleet as a stream client sees it: devices, deployments and jobs, kept current by stream
// messages. One reducer for `fleet watch` and the dashboard; browser-safe (no Node imports).
// `apply` says what it changed, so a view redraws only that.

import { betterOf } from './metric-rule.js';
import { deploymentActive, jobActive } from './states.js';
import type { DeploymentSummary, DeviceSummary, JobSummary, RoundSummary, StreamMessage } from './stream.js';

export type JobLogLine = Extract<StreamMessage, { type: 'job.log' }>['lines'][number];
export type JobMetricPoint = Extract<StreamMessage, { type: 'job.metric' }>['points'][number] & { rank: number };

/** What one message changed. `reset`: everything (a snapshot). */
export type FleetChange =
  | { kind: 'reset' }
  | { kind: 'device'; id: string; removed: boolean; /** Only health and last seen: what a heartbeat moves. */ healthOnly: boolean }
  | { kind: 'deployment'; id: string }
  | { kind: 'job'; id: string }
  | { kind: 'none' };

const NONE: FleetChange = { kind: 'none' };

export interface FleetModelLimits {
  /** Job log lines kept per job: the tail is what a person reads live. */
  logLines: number;
  /** Metric points kept per job (the oldest go first). */
  metricPoints: number;
}

export class FleetModel {
  readonly devices = new Map<string, DeviceSummary>();
  readonly deployments = new Map<string, DeploymentSummary>();
  readonly jobs = new Map<string, JobSummary>();
  readonly jobLogs = new Map<string, JobLogLine[]>();
  readonly jobMetrics = new Map<string, JobMetricPoint[]>();
  /** A federated job's round attempts seen on the stream, in the order they came. */
  readonly jobRounds = new Map<string, RoundSummary[]>();
  lastSeq = 0;
  readonly #limits: FleetModelLimits;

  constructor(limits: Partial<FleetModelLimits> = {}) {
    this.#limits = { logLines: 500, metricPoints: 10_000, ...limits };
  }

  apply(m: StreamMessage): FleetChange {
    this.lastSeq = m.seq;
    switch (m.type) {
      case 'snapshot': {
        // A snapshot carries every active deployment and job, and the newest ended ones. Ended
        // ones it leaves out (older, read from the API) stay; an active one it leaves out ended
        // while this client was away, in a way only the API can say: it goes.
        this.devices.clear();
        for (const d of m.devices) this.devices.set(d.id, d);
        const deployments = new Set(m.deployments.map((d) => d.id));
        for (const [id, d] of this.deployments) if (deploymentActive(d.state) && !deployments.has(id)) this.deployments.delete(id);
        for (const d of m.deployments) this.deployments.set(d.id, d);
        const jobs = new Set(m.jobs.map((j) => j.id));
        for (const [id, j] of this.jobs) if (jobActive(j.state) && !jobs.has(id)) this.jobs.delete(id);
        for (const j of m.jobs) this.jobs.set(j.id, j);
        return { kind: 'reset' };
      }
      case 'device.enrolled':
      case 'device.updated':
        this.devices.set(m.device.id, { ...this.devices.get(m.device.id), ...m.device });
        return this.#device(m.device.id, false);
      case 'device.removed':
        this.devices.delete(m.deviceId);
        return { kind: 'device', id: m.deviceId, removed: true, healthOnly: false };
      case 'device.status': {
        const d = this.devices.get(m.deviceId);
        if (!d) return NONE;
        d.online = m.online;
        d.lastSeen = m.lastSeen;
        return this.#device(d.id, false);
      }
      case 'device.health': {
        const d = this.devices.get(m.deviceId);
        if (!d) return NONE;
        d.health = m.health;
        d.lastSeen = m.ts;
        return this.#device(d.id, true);
      }
      case 'device.models': {
        const d = this.devices.get(m.deviceId);
        if (!d) return NONE;
        d.models = m.models;
        return this.#device(d.id, false);
      }
      case 'device.problem': {
        const d = this.devices.get(m.deviceId);
        if (!d) return NONE;
        d.problem = m.problem;
        return this.#device(d.id, false);
      }
      case 'device.quota':
        return NONE;
      case 'deployment.created':
        this.deployments.set(m.deployment.id, m.deployment);
        return { kind: 'deployment', id: m.deployment.id };
      case 'deployment.progress': {
        const d = this.deployments.get(m.deploymentId);
        const r = d?.devices.find((x) => x.deviceId === m.deviceId);
        if (!d || !r) return NONE;
        const was = (d.counts[r.state] ?? 1) - 1;
        if (was > 0) d.counts[r.state] = was;
        else delete d.counts[r.state];
        r.state = m.state;
        r.reason = m.reason;
        r.updatedAt = m.ts;
        d.counts[m.state] = (d.counts[m.state] ?? 0) + 1;
        return { kind: 'deployment', id: d.id };
      }
      case 'deployment.state': {
        const d = this.deployments.get(m.deploymentId);
        if (!d) return NONE;
        d.state = m.state;
        return { kind: 'deployment', id: d.id };
      }
      case 'job.created':
        this.jobs.set(m.job.id, m.job);
        return { kind: 'job', id: m.job.id };
      case 'job.state': {
        const j = this.jobs.get(m.jobId);
        if (!j) return NONE;
        j.state = m.state;
        j.error = m.error;
        if (m.state === 'running' && !j.startedAt) j.startedAt = m.ts;
        if (!jobActive(m.state) && !j.finishedAt) j.finishedAt = m.ts;
        return { kind: 'job', id: j.id };
      }
      case 'job.run': {
        const j = this.jobs.get(m.jobId);
        if (!j) return NONE;
        const run = { rank: m.rank, target: m.target, state: m.state, exitCode: m.exitCode, error: m.error };
        const i = j.runs.findIndex((x) => x.rank === m.rank);
        if (i >= 0) j.runs[i] = run;
        else j.runs.push(run);
        return { kind: 'job', id: j.id };
      }
      case 'job.log': {
        const lines = this.jobLogs.get(m.jobId) ?? [];
        lines.push(...m.lines);
        if (lines.length > this.#limits.logLines) lines.splice(0, lines.length - this.#limits.logLines);
        this.jobLogs.set(m.jobId, lines);
        return { kind: 'job', id: m.jobId };
      }
      case 'job.round': {
        // Each attempt once, updated in place; the job's count of aggregated rounds follows.
        const rounds = this.jobRounds.get(m.jobId) ?? [];
        const i = rounds.findIndex((r) => r.round === m.round.round && r.attempt === m.round.attempt);
        if (i >= 0) rounds[i] = m.round;
        else rounds.push(m.round);
        this.jobRounds.set(m.jobId, rounds);
        const f = this.jobs.get(m.jobId)?.federated;
        if (f) {
          f.completed = rounds.filter((r) => r.state === 'aggregated').length;
          f.waiting = null;
        }
        return { kind: 'job', id: m.jobId };
      }
      case 'job.metric': {
        const j = this.jobs.get(m.jobId);
        const points = this.jobMetrics.get(m.jobId) ?? [];
        for (const p of m.points) {
          points.push({ ...p, rank: m.rank });
          if (!j) continue;
          const cur = j.metrics[p.name];
          j.metrics[p.name] = { latest: p.value, step: p.step, best: cur ? betterOf(p.name, cur.best, p.value) : p.value };
        }
        if (points.length > this.#limits.metricPoints) points.splice(0, points.length - this.#limits.metricPoints);
        this.jobMetrics.set(m.jobId, points);
        return { kind: 'job', id: m.jobId };
      }
    }
  }

  /** Adds deployments read from the API, keeping what the stream already said of each. */
  addDeployments(list: DeploymentSummary[]): void {
    for (const d of list) if (!this.deployments.has(d.id)) this.deployments.set(d.id, d);
  }

  /** Adds jobs read from the API, keeping what the stream already said of each. */
  addJobs(list: JobSummary[]): void {
    for (const j of list) if (!this.jobs.has(j.id)) this.jobs.set(j.id, j);
  }

  /** A device's name where there is one, else its id. */
  deviceName(id: string): string {
    return this.devices.get(id)?.name ?? id;
  }

  clear(): void {
    this.devices.clear();
    this.deployments.clear();
    this.jobs.clear();
    this.jobLogs.clear();
    this.jobMetrics.clear();
    this.lastSeq = 0;
  }

  #device(id: string, healthOnly: boolean): FleetChange {
    return { kind: 'device', id, removed: false, healthOnly };
  }
}
