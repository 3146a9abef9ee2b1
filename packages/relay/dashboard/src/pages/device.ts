// A device's page: what it is and runs, each model's last error with its reason, charts of its
// health history over a chosen range (legends show the latest values), the agent's recent log
// (asked of the device), and the actions its role allows: labels, training, deploy, remove.

import { formatAgo, formatBytes, formatLabels, type FleetChange, type StreamMessage } from '@outpost/shared/browser';
import uPlot from 'uplot';
import { deployDialog } from '../actions/deploy-dialog.js';
import { labelsDialog } from '../actions/labels-dialog.js';
import type { Target } from '../answers.js';
import { api, get } from '../api.js';
import { act, confirmAction, launch } from '../dialog.js';
import { badge, card, el, fill, muted, show } from '../dom.js';
import { onNextFrame } from '../frame.js';
import type { Page } from '../page.js';
import { session } from '../session.js';
import { fleet } from '../stream.js';
import { modelsCell, problemBadge } from './fleet.js';

interface HealthPoint {
  ts: number;
  cpu: number;
  memUsed: number;
  rss: number;
  reqRate: number;
  errRate: number;
  p50: number | null;
  p99: number | null;
}

interface LogLine {
  seq: number;
  ts: number;
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

const RANGES = ['15m', '1h', '24h', '7d'] as const;
type Range = (typeof RANGES)[number];
let range: Range = '1h';

const CHARTS: Array<{ key: string; title: string; unit: string; series: Array<{ label: string; get: (p: HealthPoint) => number | null; stroke: string }> }> = [
  { key: 'cpu', title: 'CPU', unit: '%', series: [{ label: 'CPU %', get: (p) => p.cpu, stroke: '#2f6fde' }] },
  { key: 'mem', title: 'Memory', unit: 'MiB', series: [{ label: 'used MiB', get: (p) => p.memUsed / 1048576, stroke: '#8e44ad' }, { label: 'agent RSS MiB', get: (p) => p.rss / 1048576, stroke: '#16a085' }] },
  { key: 'rate', title: 'Requests', unit: '/s', series: [{ label: 'requests/s', get: (p) => p.reqRate, stroke: '#1f9d55' }, { label: 'errors/s', get: (p) => p.errRate, stroke: '#c0392b' }] },
  { key: 'latency', title: 'Latency', unit: 'ms', series: [{ label: 'p50 ms', get: (p) => p.p50, stroke: '#c27c0e' }, { label: 'p99 ms', get: (p) => p.p99, stroke: '#c0392b' }] },
];

const logText = (l: LogLine) => {
  const fields = Object.entries(l.fields ?? {})
    .map(([k, v]) => ` ${k}=${typeof v === 'string' && v && !/[\s"=]/.test(v) ? v : JSON.stringify(v)}`)
    .join('');
  return `${new Date(l.ts).toLocaleTimeString([], { hour12: false })} ${l.level.toUpperCase().padEnd(5)} ${l.msg}${fields}`;
};

export class DevicePage implements Page {
  #plots: uPlot[] = [];
  #fetchedAt = 0;
  #chartsLoading = false;
  #chartsAgain = false;
  #logsLoading = false;
  #closed = false;
  #attached: boolean | null = null;
  readonly #info = card({ id: 'device-info' });
  readonly #logLines = el('pre', { class: 'logs', id: 'device-log-lines', hidden: true });
  readonly #logStatus = el('p', { id: 'device-logs-status', class: 'muted' });

  constructor(readonly id: string) {}

  open(): void {
    if (!fleet.devices.has(this.id)) {
      show(card({}, el('h1', {}, 'No such device'), el('p', {}, el('a', { href: '#/' }, 'Back to the fleet'))));
      return;
    }
    const picker = el(
      'div',
      { class: 'range-picker', id: 'range-picker', role: 'group', 'aria-label': 'time range' },
      RANGES.map((r) =>
        el('button', { type: 'button', class: r === range ? 'active' : 'secondary', 'data-range': r, onclick: () => this.#setRange(r) }, r),
      ),
    );
    show(
      this.#info,
      el('div', { class: 'charts-head' }, el('h2', {}, 'Health'), picker),
      el('div', { class: 'charts', id: 'charts' }, CHARTS.map((c) => card({ class: 'chart', id: `chart-${c.key}` }, el('h3', {}, `${c.title} (${c.unit})`)))),
      card(
        { id: 'device-logs' },
        el('h2', {}, 'Agent log ', el('button', { id: 'device-logs-refresh', type: 'button', class: 'secondary', onclick: () => void this.#loadLogs() }, 'Refresh')),
        this.#logStatus,
        this.#logLines,
      ),
    );
    this.#drawInfo();
    void this.#loadCharts();
    void this.#loadLogs();
    void this.#loadTarget();
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#plots) p.destroy();
    this.#plots = [];
  }

  change(c: FleetChange, m: StreamMessage): void {
    if (c.kind === 'reset' || (c.kind === 'device' && c.id === this.id)) onNextFrame(this.#drawInfo);
    // Charts follow heartbeats, at most every 2 s; the log is asked again when the device returns.
    if (m.type === 'device.health' && m.deviceId === this.id && Date.now() - this.#fetchedAt > 2000) void this.#loadCharts();
    if (m.type === 'device.status' && m.deviceId === this.id && m.online) void this.#loadLogs();
  }

  #setRange(r: Range): void {
    range = r;
    this.#fetchedAt = 0;
    for (const b of document.querySelectorAll<HTMLButtonElement>('#range-picker button')) b.className = b.dataset.range === r ? 'active' : 'secondary';
    void this.#loadCharts();
  }

  #drawInfo = (): void => {
    const d = fleet.devices.get(this.id);
    if (!d) {
      this.#info.replaceChildren(el('h1', {}, 'Removed'), el('p', {}, 'This device was removed. ', el('a', { href: '#/' }, 'Back to the fleet')));
      return;
    }
    const h = d.health;
    const errors = d.models.filter((m) => m.reason);
    // What onnxruntime said last, per model, from the heartbeat (a model may serve and still fail some requests).
    const runtimeErrors = Object.entries(h?.models ?? {}).filter(([, m]) => m.lastError);
    const actions = el('div', { class: 'actions' });
    if (session.can('deployer')) actions.append(el('button', { type: 'button', id: 'device-deploy', onclick: () => launch(() => deployDialog({ device: d.id })) }, 'Deploy…'));
    if (session.can('admin')) {
      actions.append(el('button', { type: 'button', class: 'secondary', id: 'device-labels', onclick: () => launch(() => labelsDialog(d)) }, 'Labels…'));
      if (this.#attached !== null)
        actions.append(
          el('button', { type: 'button', class: 'secondary', id: this.#attached ? 'device-detach' : 'device-attach', onclick: () => void this.#setTraining(!this.#attached) }, this.#attached ? 'Detach from training' : 'Attach for training'),
        );
      actions.append(
        el('button', {
          type: 'button',
          class: 'danger',
          id: 'device-remove',
          onclick: () =>
            launch(() => confirmAction('Remove device', `Remove ${d.name} (${d.id})? Its credentials stop working at once; the agent must enroll again to come back.`, 'Remove', async () => {
              await api('DELETE', `/v1/devices/${encodeURIComponent(d.id)}`);
              location.hash = '#/';
            })),
        }, 'Remove…'),
      );
    }
    fill(
      this.#info,
      el('div', { class: 'title-row' }, el('h1', {}, d.name, ' ', badge(d.online ? 'online' : 'offline'), ' ', problemBadge(d)), actions),
      d.problem ? el('p', { class: 'problem', id: 'device-problem' }, d.problem.message) : null,
      el(
        'dl',
        {},
        el('dt', {}, 'id'),
        el('dd', {}, d.id),
        el('dt', {}, 'labels'),
        el('dd', { id: 'device-labels-value' }, formatLabels(d.labels) || '-'),
        el('dt', {}, 'last seen'),
        el('dd', {}, formatAgo(d.lastSeen)),
        el('dt', {}, 'models'),
        el('dd', {}, modelsCell(d)),
        el('dt', {}, 'accelerators'),
        el('dd', { id: 'device-accelerators' }, `${d.accelerators?.join(', ') || '-'}${d.executionProviders?.length ? ` (execution providers: ${d.executionProviders.join(', ')})` : ''}`),
        el('dt', {}, 'training'),
        el('dd', { id: 'device-training' }, this.#attached === null ? '-' : this.#attached ? 'attached' : 'not attached'),
        el('dt', {}, 'agent'),
        el('dd', {}, h ? `up ${Math.round(h.uptimeS)} s, RSS ${formatBytes(h.memory.rssBytes)}, disk free ${formatBytes(h.disk.freeBytes)}` : '-'),
      ),
      errors.length || runtimeErrors.length
        ? el(
            'div',
            { class: 'model-errors', id: 'device-model-errors' },
            el('h2', {}, 'Last errors'),
            el(
              'ul',
              {},
              errors.map((m) => el('li', { 'data-model': m.name }, el('strong', {}, `${m.name}:${m.version} `), badge(m.state), ` ${m.reason}`, m.at ? muted(` (${formatAgo(new Date(m.at).toISOString())})`) : null)),
              runtimeErrors.map(([name, m]) => el('li', { 'data-model': name, class: 'runtime-error' }, el('strong', {}, `${name} `), `inference failed: ${m.lastError!.message}`, muted(` (${formatAgo(new Date(m.lastError!.at).toISOString())})`))),
            ),
          )
        : null,
    );
  };

  async #loadTarget(): Promise<void> {
    try {
      const { targets } = await get<{ targets: Target[] }>('/v1/targets');
      const t = targets.find((x) => x.name === this.id);
      if (this.#closed || !t) return;
      this.#attached = t.attached;
      this.#drawInfo();
    } catch {
      // The page works without it: the training row says '-'.
    }
  }

  async #setTraining(attach: boolean): Promise<void> {
    const ok = await act(() => api('POST', `/v1/targets/${encodeURIComponent(this.id)}/${attach ? 'attach' : 'detach'}`), attach ? 'attached for training' : 'detached from training');
    if (ok) await this.#loadTarget();
  }

  async #loadCharts(): Promise<void> {
    // One read at a time; a range picked meanwhile is read when this one ends.
    if (this.#chartsLoading) {
      this.#chartsAgain = true;
      return;
    }
    this.#chartsLoading = true;
    const asked = range;
    try {
      const series = await get<{ points: HealthPoint[] }>(`/v1/devices/${encodeURIComponent(this.id)}/health?range=${asked}`);
      if (this.#closed || asked !== range) return;
      this.#fetchedAt = Date.now();
      const xs = series.points.map((p) => p.ts / 1000);
      CHARTS.forEach((c, i) => {
        const data: uPlot.AlignedData = [xs, ...c.series.map((s) => series.points.map((p) => s.get(p)))];
        const plot = this.#plots[i];
        if (plot) plot.setData(data);
        else {
          const host = document.getElementById(`chart-${c.key}`);
          if (!host) return;
          this.#plots[i] = new uPlot(
            {
              width: Math.max(280, host.clientWidth - 32),
              height: 200,
              series: [{}, ...c.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: true }))],
              axes: [{}, { size: 60 }],
              // With nothing hovered the legend shows the newest point, not blanks.
              legend: { live: true },
              cursor: { lock: false },
              hooks: { ready: [(u) => u.setLegend({ idx: u.data[0].length - 1 })], setCursor: [(u) => u.cursor.idx == null && u.setLegend({ idx: u.data[0].length - 1 })] },
            },
            data,
            host,
          );
        }
        const p = this.#plots[i];
        if (p && p.cursor.idx == null) p.setLegend({ idx: xs.length - 1 });
      });
    } catch {
      // A failed read leaves the last charts; the next heartbeat tries again.
    } finally {
      this.#chartsLoading = false;
      if (this.#chartsAgain && !this.#closed) {
        this.#chartsAgain = false;
        void this.#loadCharts();
      }
    }
  }

  async #loadLogs(): Promise<void> {
    if (this.#logsLoading) return;
    this.#logsLoading = true;
    this.#logStatus.className = 'muted';
    this.#logStatus.textContent = 'asking the device…';
    try {
      const { lines } = await get<{ lines: LogLine[] }>(`/v1/devices/${encodeURIComponent(this.id)}/logs?limit=200`);
      if (this.#closed) return;
      this.#logLines.replaceChildren(...lines.map((l) => el('div', { class: `log-line ${l.level}`, 'data-seq': String(l.seq) }, logText(l))));
      this.#logLines.hidden = lines.length === 0;
      this.#logLines.scrollTop = this.#logLines.scrollHeight;
      this.#logStatus.textContent = `the ${lines.length} most recent lines, as of ${new Date().toLocaleTimeString([], { hour12: false })} (kept in memory on the device)`;
    } catch (err) {
      if (this.#closed) return;
      this.#logStatus.className = 'error';
      this.#logStatus.textContent = (err as Error).message;
    } finally {
      this.#logsLoading = false;
    }
  }
}
