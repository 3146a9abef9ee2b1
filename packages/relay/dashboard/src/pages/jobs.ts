// Jobs: a table (id, target, state, started, duration, best metric; a federated job's round)
// and a page per job with its logs following live, a chart of each metric over steps (over
// rounds for a federated job, with its Rounds), outputs to download, the model version it
// registered and its rollout, and cancel for deployers.

import { countsText, formatAgo, formatBytes, formatElapsed, jobActive, lowerIsBetter, type FleetChange, type JobLogLine, type JobMetricPoint, type JobSummary } from '@outpost/shared/browser';
import uPlot from 'uplot';
import { submitJobDialog } from '../actions/job-dialog.js';
import type { JobWithRounds } from '../answers.js';
import { api, download as fetchFile, get } from '../api.js';
import { act, confirmAction, launch } from '../dialog.js';
import { badge, card, el, fill, muted, show } from '../dom.js';
import { onNextFrame } from '../frame.js';
import type { Page } from '../page.js';
import { session } from '../session.js';
import { fleet } from '../stream.js';
import { RoundChart, RoundsSection, mergeRounds, roundProgress, runLabel } from './rounds.js';

/** Log lines a job page keeps (the model keeps the same tail of what streams in). */
const LOG_TAIL = 500;
const COLORS = ['#2f6fde', '#1f9d55', '#c27c0e', '#c0392b', '#8e44ad', '#16a085'];

/** A target as people know it: a device's name, else the selector or `local`. */
const targetName = (t: string) => fleet.deviceName(t);

function duration(j: JobSummary): string {
  if (!j.startedAt) return '-';
  const end = j.finishedAt ? Date.parse(j.finishedAt) : Date.now();
  return formatElapsed(end - Date.parse(j.startedAt));
}

/**
 * One metric's best value, named: what a person compares jobs by. The same metric for every
 * job, however its metrics arrived: a loss if there is one, else the first name in order.
 */
function bestMetric(j: JobSummary): string {
  const names = Object.keys(j.metrics).sort();
  const name = names.find((n) => /loss/i.test(n)) ?? names[0];
  const m = name === undefined ? undefined : j.metrics[name];
  return name && m ? `${name} ${m.best}${lowerIsBetter(name) ? ' (lowest)' : ' (highest)'}` : '-';
}

/** A federated job's progress under its state: `round k of R`. */
function roundCell(j: JobSummary): HTMLElement | null {
  const p = roundProgress(j);
  return p ? el('div', { class: 'muted job-round', title: p.title }, p.text) : null;
}

const sorted = () => [...fleet.jobs.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));

export class JobsPage implements Page {
  readonly #body = el('tbody');
  #timer: ReturnType<typeof setInterval> | undefined;

  open(): void {
    const submit = session.can('deployer') ? el('button', { type: 'button', id: 'jobs-submit', onclick: () => launch(() => submitJobDialog()) }, 'Submit…') : null;
    show(
      card(
        { id: 'jobs' },
        el('div', { class: 'title-row' }, el('h1', {}, 'Jobs'), submit),
        el('div', { class: 'table-scroll' }, el('table', { id: 'jobs-table' }, el('thead', {}, el('tr', {}, ['Job', 'Target', 'State', 'Started', 'Duration', 'Best metric'].map((h) => el('th', {}, h)))), this.#body)),
      ),
    );
    this.#draw();
    this.#timer = setInterval(() => onNextFrame(this.#draw), 1000); // running durations
  }

  close(): void {
    clearInterval(this.#timer);
  }

  change(c: FleetChange): void {
    if (c.kind === 'job' || c.kind === 'reset') onNextFrame(this.#draw);
  }

  #draw = (): void => {
    const list = sorted();
    if (list.length === 0) {
      this.#body.replaceChildren(el('tr', {}, el('td', { colSpan: 6, class: 'empty' }, 'No jobs yet. Submit one (Submit…, or outpost-relay jobs submit DIR --target local --command "…").')));
      return;
    }
    this.#body.replaceChildren(
      ...list.map((j) =>
        el(
          'tr',
          { id: `job-${j.id}`, 'data-state': j.state },
          el('td', {}, el('a', { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.id), el('div', { class: 'muted command' }, j.command)),
          el('td', {}, j.federated ? [el('span', { class: 'badge federated', title: 'federated: trained on each device, averaged on the relay each round' }, 'federated'), ' '] : null, targetName(j.target), j.nodes > 1 ? muted(` ×${j.nodes}`) : null),
          el('td', {}, badge(j.state), roundCell(j)),
          el('td', { class: 'muted' }, j.startedAt ? formatAgo(j.startedAt) : '-'),
          el('td', { class: 'num' }, duration(j)),
          el('td', { class: 'num' }, bestMetric(j)),
        ),
      ),
    );
  };
}

export class JobPage implements Page {
  #chart: uPlot | null = null;
  /** The newest point charted: the list is capped, so its length stops telling. */
  #chartedLast: JobMetricPoint | undefined;
  #drawnHead = '';
  #drawnOutputs = '';
  #closed = false;
  #loaded = false;
  /** The job was still running when the API was read: read again once it ends (the stream does not carry its model and outputs). */
  #readWhileActive = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #head = el('div');
  readonly #rounds = new RoundsSection();
  readonly #roundsCard = card({ id: 'job-rounds', hidden: true }, this.#rounds.node);
  readonly #metrics = el('div', { id: 'job-metrics' });
  readonly #chartHost = el('div', { class: 'job-chart', id: 'job-chart' });
  readonly #roundChart = new RoundChart();
  readonly #roundChartNote = el('p', { class: 'muted', hidden: true }, 'Per round: each metric averaged over the round\'s clients, weighted by their examples. The table above is what the clients reported, each run on its own.');
  readonly #logs = el('pre', { class: 'logs', id: 'job-logs' });
  readonly #follow = el('input', { type: 'checkbox', checked: true, id: 'job-follow' });
  readonly #outputs = el('div', { id: 'job-outputs' });

  constructor(readonly id: string) {}

  open(): void {
    show(
      card({ id: 'job-detail' }, this.#head),
      this.#roundsCard,
      card({}, el('h2', {}, 'Metrics'), this.#metrics, this.#chartHost, this.#roundChartNote, this.#roundChart.node),
      card({}, el('div', { class: 'title-row' }, el('h2', {}, 'Logs'), el('label', { class: 'check' }, this.#follow, ' follow')), this.#logs),
      card({}, el('h2', {}, 'Outputs'), this.#outputs),
    );
    void this.#load();
    // A running round's deadline counts down without a message to move it.
    this.#timer = setInterval(() => onNextFrame(this.#tick), 1000);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#chart?.destroy();
    this.#roundChart.destroy();
  }

  change(c: FleetChange): void {
    const j = fleet.jobs.get(this.id);
    // A client's name shows in the rounds, the rollout's state beside the model; heartbeats do not.
    const client = c.kind === 'device' && !c.healthOnly && (fleet.jobRounds.get(this.id) ?? []).some((r) => r.clients.some((x) => x.deviceId === c.id));
    const rollout = c.kind === 'deployment' && j?.model?.deploymentId === c.id;
    if ((c.kind === 'job' && c.id === this.id) || c.kind === 'reset' || client || rollout) onNextFrame(this.#draw);
  }

  #tick = (): void => {
    if (!this.#closed) this.#rounds.tick();
  };

  /**
   * The job as the API says it, into the fleet model: what the stream does not carry (model,
   * outputs, a federated job's waiting and rounds before the page opened) is taken; what the
   * stream said meanwhile of its state and runs stays.
   */
  #adopt(answer: JobWithRounds): void {
    const { rounds, ...job } = answer;
    const known = fleet.jobs.get(this.id);
    if (!known) fleet.addJobs([job]);
    else {
      known.model = job.model;
      known.outputs = job.outputs;
      known.federated = job.federated && known.federated ? { ...job.federated, completed: Math.max(job.federated.completed, known.federated.completed) } : job.federated;
      if (jobActive(known.state) && !jobActive(job.state)) Object.assign(known, { state: job.state, error: job.error, finishedAt: job.finishedAt });
    }
    if (rounds) mergeRounds(this.id, rounds);
  }

  /** Once a job seen running ends: its model, rollout and outputs, read again. */
  async #reread(): Promise<void> {
    try {
      const answer = await get<JobWithRounds>(`/v1/jobs/${encodeURIComponent(this.id)}`);
      if (this.#closed) return;
      this.#adopt(answer);
      this.#draw();
    } catch {
      // Refused: logged out, saying why; unreachable: what the page shows stays as it was.
    }
  }

  /** What the stream did not carry before the page opened: the log's tail, every metric point. */
  async #load(): Promise<void> {
    try {
      const id = encodeURIComponent(this.id);
      // Read even when the stream brought the job: its rounds so far, its model and outputs.
      const answer = await get<JobWithRounds>(`/v1/jobs/${id}`);
      if (this.#closed) return;
      this.#adopt(answer);
      this.#readWhileActive = jobActive(answer.state);
      const streamedPoints = fleet.jobMetrics.get(this.id)?.length ?? 0;
      const [lines, { points }] = await Promise.all([logTail(this.id), get<{ points: JobMetricPoint[] }>(`/v1/jobs/${id}/metrics`)]);
      if (this.#closed) return;
      // Lines the stream brought meanwhile are newer than what was read: keep both, once each.
      const streamed = fleet.jobLogs.get(this.id) ?? [];
      const seen = new Set(lines.map((l) => l.seq));
      fleet.jobLogs.set(this.id, [...lines, ...streamed.filter((l) => !seen.has(l.seq))].slice(-LOG_TAIL));
      // Points streamed while the read was under way follow it (one read twice lands on the same step).
      const since = (fleet.jobMetrics.get(this.id) ?? []).slice(streamedPoints);
      fleet.jobMetrics.set(this.id, [...points.map((p) => ({ name: p.name, value: p.value, step: p.step, rank: p.rank })), ...since]);
      this.#loaded = true;
      this.#draw();
    } catch (err) {
      this.#head.replaceChildren(el('h1', {}, 'No such job'), el('p', { class: 'error' }, (err as Error).message));
    }
  }

  #draw = (): void => {
    const j = fleet.jobs.get(this.id);
    if (!j || this.#closed) return;
    if (this.#loaded && this.#readWhileActive && !jobActive(j.state)) {
      this.#readWhileActive = false;
      void this.#reread();
    }
    // The head is drawn again only when what it shows changed (not per log line), so its Cancel
    // button stays put under a person's pointer.
    const head = JSON.stringify([j.state, j.error, j.runs, j.model, j.startedAt, j.finishedAt, j.federated?.rounds]);
    if (head !== this.#drawnHead) {
      this.#drawnHead = head;
      this.#drawHead(j);
    }
    if (j.federated) {
      this.#roundsCard.hidden = false;
      this.#rounds.draw(j);
    }
    const metrics = Object.entries(j.metrics);
    this.#metrics.replaceChildren(
      metrics.length
        ? el('table', { class: 'metrics' }, el('thead', {}, el('tr', {}, ['Metric', 'Latest', 'Best', 'Step'].map((h) => el('th', {}, h)))), el('tbody', {}, metrics.map(([name, m]) => el('tr', { 'data-metric': name }, el('td', {}, name), el('td', { class: 'num' }, String(m.latest)), el('td', { class: 'num' }, String(m.best)), el('td', { class: 'num' }, m.step === null ? '-' : String(m.step))))))
        : muted('No metrics yet: print lines like "outpost:metric loss=0.42 step=3".'),
    );
    // A federated job's runs are one per client per round, each of a few points: its metrics
    // chart is of the rounds' averages, over rounds.
    this.#chartHost.hidden = j.federated !== null;
    this.#roundChartNote.hidden = j.federated === null;
    if (j.federated) this.#roundChart.draw(j);
    else this.#drawChart();
    if (this.#loaded) this.#drawLogs(j);
    const outputs = JSON.stringify([j.outputs, j.state, j.federated ? j.outputs.map((o) => runLabel(j.id, o.rank)) : null]);
    if (outputs !== this.#drawnOutputs) {
      this.#drawnOutputs = outputs;
      this.#outputs.replaceChildren(
        j.outputs.length
          ? el('table', {}, el('tbody', {}, j.outputs.map((o) => el('tr', { 'data-output': o.path }, el('td', {}, j.federated ? `${runLabel(j.id, o.rank) ?? `rank ${o.rank}`}: ` : j.nodes > 1 ? `[${o.rank}] ` : '', o.path), el('td', { class: 'num' }, formatBytes(o.size)), el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: () => void download(o.sha256, o.path) }, 'Download'))))))
          : muted(jobActive(j.state) ? 'Files the job writes to OUTPOST_OUTPUT_DIR appear when it ends.' : 'This job wrote no outputs.'),
      );
    }
  };

  #drawHead(j: JobSummary): void {
    const actions = el('div', { class: 'actions' });
    if (session.can('deployer') && jobActive(j.state))
      actions.append(el('button', { type: 'button', class: 'danger', id: 'job-cancel', onclick: () => launch(() => confirmAction('Cancel job', `Cancel job ${j.id}? Its runs are stopped.`, 'Cancel job', () => api('POST', `/v1/jobs/${encodeURIComponent(j.id)}/cancel`))) }, 'Cancel…'));
    fill(
      this.#head,
      el('div', { class: 'title-row' }, el('h1', {}, `${j.id} `, badge(j.state)), actions),
      el('p', {}, el('code', {}, j.command)),
      j.error ? el('p', { class: 'error', id: 'job-error' }, j.error) : null,
      el(
        'dl',
        {},
        el('dt', {}, 'target'),
        el('dd', {}, targetName(j.target), j.nodes > 1 ? ` (${j.nodes} nodes)` : '', j.federated ? [' ', el('span', { class: 'badge federated' }, 'federated'), ` ${j.federated.rounds} round${j.federated.rounds === 1 ? '' : 's'}`] : null),
        el('dt', {}, 'started'),
        el('dd', {}, j.startedAt ? formatAgo(j.startedAt) : 'not yet'),
        el('dt', {}, 'duration'),
        el('dd', {}, duration(j)),
        el('dt', {}, 'runs'),
        el('dd', {}, j.federated ? federatedRuns(j) : j.runs.length ? j.runs.map((r) => el('span', { class: 'run' }, `rank ${r.rank} on ${targetName(r.target)} `, badge(r.state), r.exitCode !== null ? ` exit ${r.exitCode}` : '', r.error ? ` ${r.error}` : '', ' ')) : '-'),
        el('dt', {}, 'model'),
        el('dd', { id: 'job-model' }, j.model ? [`registered ${j.model.name}:${j.model.version}`, j.model.deploymentId ? [', rolled out: ', el('a', { href: `#/deployments/${encodeURIComponent(j.model.deploymentId)}` }, j.model.deploymentId)] : null] : '-'),
      ),
    );
  }

  #drawLogs(j: JobSummary): void {
    const lines = fleet.jobLogs.get(this.id) ?? [];
    // Several runs write to one log: a multi-node job's ranks, a federated job's clients.
    const ranked = j.nodes > 1 || j.federated !== null;
    this.#logs.textContent = lines.map((l) => `${ranked ? `[${l.rank}] ` : ''}${l.text}`).join('\n') || '(no output yet)';
    if (this.#follow.checked) this.#logs.scrollTop = this.#logs.scrollHeight;
  }

  #drawChart(): void {
    const points = fleet.jobMetrics.get(this.id) ?? [];
    if (points.length < 2 || points.at(-1) === this.#chartedLast) return;
    this.#chartedLast = points.at(-1);
    const names = [...new Set(points.map((p) => p.name))];
    const stepOf = (p: JobMetricPoint, i: number) => p.step ?? i;
    const steps = [...new Set(points.map(stepOf))].sort((a, b) => a - b);
    const index = new Map(steps.map((s, i) => [s, i]));
    const data: uPlot.AlignedData = [steps, ...names.map(() => steps.map((): number | null => null))];
    points.forEach((p, i) => {
      (data[names.indexOf(p.name) + 1] as Array<number | null>)[index.get(stepOf(p, i))!] = p.value;
    });
    if (this.#chart && this.#chart.series.length === names.length + 1) {
      this.#chart.setData(data);
      return;
    }
    this.#chart?.destroy();
    this.#chart = new uPlot(
      {
        width: Math.max(280, this.#chartHost.clientWidth),
        height: 200,
        scales: { x: { time: false } },
        series: [{ label: 'step' }, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true }))],
      },
      data,
      this.#chartHost,
    );
  }
}

/** A federated job's runs, one per client per round, counted by state (the rounds say which is whose). */
function federatedRuns(j: JobSummary): string {
  if (j.runs.length === 0) return '-';
  const counts: Record<string, number> = {};
  for (const r of j.runs) counts[r.state] = (counts[r.state] ?? 0) + 1;
  return `${j.runs.length} (one per client per round): ${countsText(counts)}`;
}

/** The last LOG_TAIL lines of a job's log: the API reads oldest first, so page to the end. */
async function logTail(id: string): Promise<JobLogLine[]> {
  const PAGE = 5000;
  let tail: JobLogLine[] = [];
  let after = 0;
  for (let pages = 0; pages < 200; pages++) {
    const { lines } = await get<{ lines: JobLogLine[] }>(`/v1/jobs/${encodeURIComponent(id)}/logs?after=${after}&limit=${PAGE}`);
    tail = [...tail, ...lines].slice(-LOG_TAIL);
    if (lines.length < PAGE) break;
    after = lines.at(-1)!.seq;
  }
  return tail;
}

/** Job outputs are artifacts: fetched with the token, saved through a blob link. */
async function download(sha256: string, path: string): Promise<void> {
  await act(async () => {
    const url = URL.createObjectURL(await fetchFile(`/v1/artifacts/${sha256}`));
    const a = el('a', { href: url, download: path.split('/').pop() ?? 'output' });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }, `downloading ${path}`);
}
