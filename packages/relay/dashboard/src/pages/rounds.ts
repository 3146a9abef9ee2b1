// A federated job's rounds, on its page: the settings, why it waits, one row per attempt (asked,
// averaged, examples, dropped, the averaged metrics), the clients dropped and why, the running
// round's deadline counting down, the final model and its rollout, and a chart of the averaged
// metrics per round. Rounds come from the job's API answer, then from `job.round` on the stream.

import { formatElapsed, jobActive, jobEnded, lowerIsBetter, type JobSummary, type RoundState, type RoundSummary } from '@outpost/shared/browser';
import uPlot from 'uplot';
import { badge, el, fill, muted } from '../dom.js';
import { fleet } from '../stream.js';

/** The metric a client weights its update with; a round's `metrics` carries its sum. */
const EXAMPLES_METRIC = 'num_examples';
/** Metric columns the rounds table has room for. */
const METRIC_COLUMNS = 4;
const COLORS = ['#2f6fde', '#1f9d55', '#c27c0e', '#c0392b', '#8e44ad', '#16a085'];

/** The badge classes the stylesheet colours, for the states a round has. */
const TONE: Record<RoundState, string> = { running: 'running', aggregated: 'ok', retried: 'pending', canceled: 'canceled' };
const roundBadge = (state: RoundState, title?: string) => el('span', { class: `badge ${state} ${TONE[state]}`, title }, state);

/** `2`, or `2.3` for the third attempt at round 2 (as `jobs show` prints it). */
const roundLabel = (r: RoundSummary) => (r.attempt > 1 ? `${r.round}.${r.attempt}` : String(r.round));

const examples = (r: RoundSummary) => r.participants.reduce((n, p) => n + p.numExamples, 0);

const formatMetric = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));

/**
 * Rounds read from the API, into the fleet model beside those the stream brought: an attempt
 * the stream already saw close stays closed (the read may have begun before it closed).
 */
export function mergeRounds(jobId: string, rounds: readonly RoundSummary[]): void {
  const known = fleet.jobRounds.get(jobId) ?? [];
  for (const r of rounds) {
    const i = known.findIndex((k) => k.round === r.round && k.attempt === r.attempt);
    if (i < 0) known.push(r);
    else if (known[i]!.state === 'running' || r.state !== 'running') known[i] = r;
  }
  fleet.jobRounds.set(jobId, known);
  const f = fleet.jobs.get(jobId)?.federated;
  if (f) f.completed = Math.max(f.completed, known.filter((r) => r.state === 'aggregated').length);
}

/** Which client of which round a federated job's run is, by rank: `round 2 · fed-a`. */
export function runLabel(jobId: string, rank: number): string | null {
  for (const r of fleet.jobRounds.get(jobId) ?? []) {
    const c = r.clients.find((x) => x.rank === rank);
    if (c) return `round ${roundLabel(r)} · ${fleet.deviceName(c.deviceId)}`;
  }
  return null;
}

/** A job's round attempts, in order. */
export function roundsOf(jobId: string): RoundSummary[] {
  return [...(fleet.jobRounds.get(jobId) ?? [])].sort((a, b) => a.round - b.round || a.attempt - b.attempt);
}

/** Rounds averaged so far: what the job says, or what the page saw, whichever knows more. */
function completed(j: JobSummary, rounds: RoundSummary[]): number {
  return Math.max(j.federated?.completed ?? 0, rounds.filter((r) => r.state === 'aggregated').length);
}

/** `round k of R`: the round under way (or next), or the last one reached once the job ended; null for other jobs. */
export function roundProgress(j: JobSummary): { text: string; title: string } | null {
  const f = j.federated;
  if (!f) return null;
  const rounds = roundsOf(j.id);
  const done = completed(j, rounds);
  const last = rounds.at(-1);
  const reached = Math.max(last?.round ?? 0, done);
  const next = j.state === 'running' && (last === undefined || last.state === 'aggregated') && reached < f.rounds;
  const k = next ? reached + 1 : reached;
  return { text: k === 0 ? `${f.rounds} round${f.rounds === 1 ? '' : 's'}` : `round ${k} of ${f.rounds}`, title: `${done} of ${f.rounds} round${f.rounds === 1 ? '' : 's'} averaged` };
}

/** Metric names the rounds averaged, losses first, then by name; examples have their own column. */
function metricNames(rounds: RoundSummary[]): string[] {
  const names = [...new Set(rounds.flatMap((r) => Object.keys(r.metrics)))].filter((n) => n !== EXAMPLES_METRIC);
  return names.sort((a, b) => Number(/loss/i.test(b)) - Number(/loss/i.test(a)) || a.localeCompare(b));
}

interface Row {
  tr: HTMLTableRowElement;
  drawn: string;
}

/** The Rounds card of a job's page: drawn for federated jobs only, each part only when what it shows changed. */
export class RoundsSection {
  readonly #progress = el('span', { class: 'muted', id: 'job-rounds-progress' });
  readonly #settings = el('p', { class: 'muted', id: 'job-rounds-settings' });
  readonly #waiting = el('p', { id: 'job-rounds-waiting', hidden: true });
  readonly #countdown = el('p', { id: 'job-round-countdown', hidden: true });
  readonly #head = el('tr');
  readonly #body = el('tbody');
  readonly #dropped = el('ul', { id: 'job-rounds-dropped' });
  readonly #droppedBox = el('div', { hidden: true }, el('h3', {}, 'Dropped clients'), this.#dropped);
  readonly #model = el('p', { id: 'job-rounds-model' });
  readonly node = el(
    'div',
    {},
    el('div', { class: 'title-row' }, el('h2', {}, 'Rounds'), this.#progress),
    this.#settings,
    this.#waiting,
    this.#countdown,
    el('div', { class: 'table-scroll' }, el('table', { id: 'job-rounds-table' }, el('thead', {}, this.#head), this.#body)),
    this.#droppedBox,
    this.#model,
  );
  #rows = new Map<string, Row>();
  #drawn = { settings: '', head: '', dropped: '', model: '' };
  /** The attempt under way, for the countdown, and how many of its clients' runs ended. */
  #running: RoundSummary | undefined;
  #answered = 0;

  /** Draws what changed of job `j`'s rounds. */
  draw(j: JobSummary): void {
    const f = j.federated;
    if (!f) return;
    const rounds = roundsOf(j.id);
    const progress = roundProgress(j)!;
    this.#progress.title = progress.title;
    const done = completed(j, rounds);
    const progressText = `${progress.text} · ${done} averaged`;
    if (this.#progress.textContent !== progressText) this.#progress.textContent = progressText;

    const settings = JSON.stringify([f.strategy, f.proximalMu, f.initialModel, f.minClients, f.fraction, f.roundDeadlineMs, f.rounds]);
    if (settings !== this.#drawn.settings) {
      this.#drawn.settings = settings;
      fill(
        this.#settings,
        `${f.strategy}${f.strategy === 'fedprox' ? ` (mu ${f.proximalMu})` : ''} from `,
        el('code', {}, `${f.initialModel.name}:${f.initialModel.version}`),
        `, ${f.rounds} round${f.rounds === 1 ? '' : 's'}; each needs at least ${f.minClients} client${f.minClients === 1 ? '' : 's'}, asks a fraction ${f.fraction} of those free, and closes ${formatElapsed(f.roundDeadlineMs)} after it starts`,
      );
    }

    // The relay says why only when asked (the job's API answer); a round starting ends it.
    const waiting = jobActive(j.state) && f.waiting ? f.waiting : '';
    this.#waiting.hidden = !waiting;
    if (waiting && this.#waiting.lastChild?.textContent !== waiting) fill(this.#waiting, el('span', { class: 'badge waiting pending' }, 'waiting'), ' ', waiting);

    this.#drawTable(rounds);
    this.#drawDropped(rounds);
    this.#drawModel(j);
    this.#running = jobActive(j.state) ? rounds.find((r) => r.state === 'running') : undefined;
    const ended = new Set(j.runs.filter((x) => jobEnded(x.state)).map((x) => x.rank));
    this.#answered = this.#running?.clients.filter((c) => ended.has(c.rank)).length ?? 0;
    this.tick();
  }

  /** The running round's deadline, counted down in place (each second, by the page's timer). */
  tick(now = Date.now()): void {
    const r = this.#running;
    this.#countdown.hidden = !r;
    if (!r) return;
    const left = r.deadlineAt ? Date.parse(r.deadlineAt) - now : null;
    const text = `round ${roundLabel(r)} running on ${r.clients.length} client${r.clients.length === 1 ? '' : 's'} (${this.#answered} done): ${left === null ? 'no deadline' : left > 0 ? `closes in ${formatElapsed(left)} at the latest` : 'its deadline passed: closing…'}`;
    if (this.#countdown.textContent !== text) this.#countdown.textContent = text;
  }

  #drawTable(rounds: RoundSummary[]): void {
    const names = metricNames(rounds).slice(0, METRIC_COLUMNS);
    const head = JSON.stringify(names);
    if (head !== this.#drawn.head) {
      this.#drawn.head = head;
      fill(this.#head, ['Round', 'State', 'Asked', 'Averaged', 'Examples', 'Dropped'].map((h) => el('th', {}, h)), names.map((n) => el('th', { title: `${n}: averaged over the round's clients, weighted by their examples${lowerIsBetter(n) ? ' (lower is better)' : ''}` }, n)));
    }
    if (rounds.length === 0) {
      this.#rows.clear();
      this.#body.replaceChildren(el('tr', {}, el('td', { colSpan: 6 + names.length, class: 'empty' }, 'No round has started yet.')));
      return;
    }
    // Rows are kept per attempt and rewritten only when it (or a client's name) changed.
    const rows = new Map<string, Row>();
    const list = rounds.map((r) => {
      const key = `${r.round}.${r.attempt}`;
      const clients = r.clients.map((c) => fleet.deviceName(c.deviceId));
      const drawn = JSON.stringify([r, clients, names]);
      let row = this.#rows.get(key);
      if (!row || row.drawn !== drawn) row = { tr: this.#row(r, clients, names), drawn };
      rows.set(key, row);
      return row.tr;
    });
    this.#rows = rows;
    const same = list.length === this.#body.children.length && list.every((tr, i) => this.#body.children[i] === tr);
    if (!same) this.#body.replaceChildren(...list);
  }

  #row(r: RoundSummary, clients: string[], names: string[]): HTMLTableRowElement {
    const closed = r.state !== 'running';
    const global = `starts from ${r.globalSha256.slice(0, 12)}${r.resultSha256 ? `, averaged into ${r.resultSha256.slice(0, 12)}` : ''}`;
    return el(
      'tr',
      { 'data-round': r.round, 'data-attempt': r.attempt, 'data-state': r.state, title: global },
      el('td', { class: 'num', title: r.attempt > 1 ? `attempt ${r.attempt} at round ${r.round}` : undefined }, roundLabel(r)),
      el('td', {}, roundBadge(r.state), r.error ? el('div', { class: 'muted reason' }, r.error) : null),
      el('td', { class: 'num asked', title: clients.join(', ') }, String(r.clients.length)),
      el('td', { class: 'num averaged', title: r.participants.map((p) => `${fleet.deviceName(p.deviceId)}: ${p.numExamples} examples`).join('\n') || undefined }, closed ? String(r.participants.length) : '-'),
      el('td', { class: 'num examples' }, closed && r.participants.length ? String(examples(r)) : '-'),
      el('td', { class: 'num dropped' }, closed ? String(r.dropped.length) : '-'),
      names.map((n) => el('td', { class: 'num', 'data-metric': n }, r.metrics[n] === undefined ? '-' : formatMetric(r.metrics[n]))),
    );
  }

  #drawDropped(rounds: RoundSummary[]): void {
    const dropped = rounds.flatMap((r) => r.dropped.map((d) => ({ r, d, name: fleet.deviceName(d.client) })));
    const key = JSON.stringify(dropped.map(({ r, d, name }) => [r.round, r.attempt, d, name]));
    if (key === this.#drawn.dropped) return;
    this.#drawn.dropped = key;
    this.#droppedBox.hidden = dropped.length === 0;
    fill(
      this.#dropped,
      dropped.map(({ r, d, name }) => el('li', { 'data-round': r.round, 'data-attempt': r.attempt, 'data-device': d.client }, `round ${roundLabel(r)}: `, el('a', { href: `#/devices/${encodeURIComponent(d.client)}` }, name), `: ${d.reason}`)),
    );
  }

  #drawModel(j: JobSummary): void {
    const id = j.model?.deploymentId;
    const deployment = id ? fleet.deployments.get(id) : undefined;
    const key = JSON.stringify([j.model, j.state, j.federated?.rounds, deployment?.state]);
    if (key === this.#drawn.model) return;
    this.#drawn.model = key;
    if (!j.model) {
      fill(this.#model, muted(jobActive(j.state) ? `The final model is registered when round ${j.federated?.rounds} is averaged.` : 'No final model was registered.'));
      return;
    }
    fill(
      this.#model,
      'final model ',
      el('code', {}, `${j.model.name}:${j.model.version}`),
      id ? [', rolled out: ', el('a', { href: `#/deployments/${encodeURIComponent(id)}`, id: 'job-rounds-deployment' }, `deployment ${id}`), deployment ? [' ', badge(deployment.state)] : null] : null,
    );
  }
}

/** The rounds' averaged metrics over the rounds (x = round), one line each. */
export class RoundChart {
  readonly node = el('div', { class: 'job-chart', id: 'job-round-chart' });
  #chart: uPlot | null = null;
  #names = '';
  #drawn = '';

  draw(j: JobSummary): void {
    const total = j.federated?.rounds ?? 1;
    const rounds = roundsOf(j.id).filter((r) => r.state === 'aggregated');
    const names = metricNames(rounds);
    const drawn = JSON.stringify(rounds.map((r) => [r.round, r.metrics]));
    if (rounds.length === 0 || names.length === 0 || drawn === this.#drawn) return;
    this.#drawn = drawn;
    const data: uPlot.AlignedData = [rounds.map((r) => r.round), ...names.map((n) => rounds.map((r) => r.metrics[n] ?? null))];
    if (this.#chart && this.#names === JSON.stringify(names)) {
      this.#chart.setData(data);
      if (this.#chart.cursor.idx == null) this.#chart.setLegend({ idx: rounds.length - 1 });
      return;
    }
    this.#names = JSON.stringify(names);
    this.#chart?.destroy();
    this.#chart = new uPlot(
      {
        width: Math.max(280, this.node.clientWidth),
        height: 200,
        // Every round has its place from the start, so the line grows toward the last one.
        scales: { x: { time: false, range: total > 1 ? [1, total] : [0.5, 1.5] } },
        axes: [{ incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) }, {}],
        series: [{ label: 'round' }, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, points: { show: true } }))],
        // With nothing hovered the legend shows the newest round, not blanks.
        legend: { live: true },
        cursor: { lock: false },
        hooks: { ready: [(u) => u.setLegend({ idx: u.data[0].length - 1 })], setCursor: [(u) => u.cursor.idx == null && u.setLegend({ idx: u.data[0].length - 1 })] },
      },
      data,
      this.node,
    );
  }

  destroy(): void {
    this.#chart?.destroy();
    this.#chart = null;
  }
}
