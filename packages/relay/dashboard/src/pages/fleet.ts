// The fleet page: summary counts, search and filters, and a table of every matching device.
// Built for 10,000 devices and 1,000 heartbeats a second: only the rows in view exist in the
// DOM (fixed row height, spacer rows above and below); a stream message marks what it touched;
// one redraw per frame moves the devices that changed to their new places (binary search; a
// whole re-sort only when the query changes or hundreds changed at once), keeps the counts one
// device at a time, and rewrites only the rows in view that changed.

import {
  DEFAULT_QUERY,
  FleetTally,
  deviceP50,
  formatAgo,
  formatBytes,
  queryFleet,
  reorderDevices,
  sortUsesHealth,
  type DeviceSummary,
  type FleetChange,
  type FleetQuery,
  type SortColumn,
} from '@outpost/shared/browser';
import { enrollDialog } from '../actions/enroll-dialog.js';
import { deployDialog } from '../actions/deploy-dialog.js';
import { launch } from '../dialog.js';
import { badge, card, el, muted, show } from '../dom.js';
import { onNextFrame } from '../frame.js';
import type { Page } from '../page.js';
import { session } from '../session.js';
import { fleet } from '../stream.js';

/** Must match `#fleet tbody tr` in app.css: rows are this tall, so scroll position → rows. */
export const ROW_HEIGHT = 44;
const OVERSCAN = 8;
const RESORT_MS = 500;
/** More changed devices than this in one frame (a reconnect storm): sort the fleet again instead. */
const RESORT_PAST = 500;

const COLUMNS: Array<{ key: SortColumn; title: string; numeric?: boolean }> = [
  { key: 'name', title: 'Device' },
  { key: 'state', title: 'State' },
  { key: 'models', title: 'Models' },
  { key: 'cpu', title: 'CPU', numeric: true },
  { key: 'memory', title: 'Memory', numeric: true },
  { key: 'p50', title: 'p50', numeric: true },
  { key: 'lastSeen', title: 'Last seen' },
];

// Kept across visits, so coming back from a device shows the same search.
let query: FleetQuery = { ...DEFAULT_QUERY };

export function modelsCell(d: DeviceSummary): Node[] {
  if (d.models.length === 0) return [muted('-')];
  return d.models.map((m) => el('span', { class: 'model', title: m.reason ?? '' }, `${m.name}:${m.version} `, badge(m.state)));
}

/** A problem only a person can fix (two agents on one identity): a badge that says what to do. */
export function problemBadge(d: DeviceSummary): HTMLElement | null {
  return d.problem ? badge(d.problem.kind, d.problem.message) : null;
}

export class FleetPage implements Page {
  #order: DeviceSummary[] = [];
  /** Sort the whole fleet again (a new query, a snapshot, a storm). */
  #orderDirty = true;
  /** Devices to move within the order, as they are now (undefined: removed). */
  readonly #moved = new Map<string, DeviceSummary | undefined>();
  readonly #tally = new FleetTally();
  #countsDirty = true;
  #lastSort = 0;
  #lastCounts = 0;
  /** The label and model options last drawn, to leave the selects alone when they did not change. */
  #options = '';
  /** Devices whose row must be drawn again. */
  readonly #changed = new Set<string>();
  /** The rows in the DOM now, by device id. */
  #rows = new Map<string, HTMLTableRowElement>();
  #window = { first: -1, last: -1 };
  #ages: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #resort: ReturnType<typeof setTimeout> | undefined;

  readonly #scroll = el('div', { id: 'fleet-scroll', class: 'fleet-scroll' });
  readonly #body = el('tbody');
  readonly #top = el('td', { colSpan: COLUMNS.length });
  readonly #bottom = el('td', { colSpan: COLUMNS.length });
  readonly #summary = el('div', { class: 'summary-counts', id: 'fleet-summary' });
  readonly #matching = el('p', { class: 'muted', id: 'fleet-matching' });
  readonly #labelSelect = el('select', { id: 'fleet-label', 'aria-label': 'label' });
  readonly #modelSelect = el('select', { id: 'fleet-model', 'aria-label': 'model' });
  readonly #empty = el('p', { class: 'empty' });
  readonly #head = el('tr');

  open(): void {
    const search = el('input', { id: 'fleet-search', type: 'search', placeholder: 'Search name, id or label', value: query.text, 'aria-label': 'search' });
    search.addEventListener('input', () => this.#setQuery({ text: search.value }));
    const status = el(
      'select',
      { id: 'fleet-status', 'aria-label': 'status' },
      ['all', 'online', 'offline', 'failing'].map((s) => el('option', { value: s, selected: query.status === s }, s === 'all' ? 'any status' : s)),
    );
    status.addEventListener('change', () => {
      this.#setQuery({ status: status.value as FleetQuery['status'] });
      this.#countsDirty = true; // the highlighted count follows
    });
    const modelState = el(
      'select',
      { id: 'fleet-model-state', 'aria-label': 'model state' },
      el('option', { value: '' }, 'any model state'),
      ['serving', 'healthy', 'downloading', 'loading', 'failed'].map((s) => el('option', { value: s, selected: query.modelState === s }, s)),
    );
    modelState.addEventListener('change', () => this.#setQuery({ modelState: modelState.value || null }));
    this.#labelSelect.addEventListener('change', () => this.#setQuery({ label: this.#labelSelect.value || null }));
    this.#modelSelect.addEventListener('change', () => this.#setQuery({ model: this.#modelSelect.value || null }));

    const actions = el('div', { class: 'actions' });
    if (session.can('deployer'))
      actions.append(el('button', { type: 'button', id: 'fleet-deploy', onclick: () => launch(() => deployDialog({ selector: query.label })) }, query.label ? `Deploy to ${query.label}` : 'Deploy…'));
    if (session.can('admin')) actions.append(el('button', { type: 'button', id: 'fleet-enroll', class: 'secondary', onclick: () => launch(() => enrollDialog()) }, 'Enroll a device…'));

    this.#head.replaceChildren(...COLUMNS.map((c) => this.#headerCell(c)));
    this.#body.replaceChildren(el('tr', { class: 'spacer' }, this.#top), el('tr', { class: 'spacer' }, this.#bottom));
    this.#scroll.replaceChildren(el('table', { id: 'fleet', class: 'fleet' }, el('thead', {}, this.#head), this.#body));
    this.#scroll.addEventListener('scroll', () => onNextFrame(this.#draw), { passive: true });
    show(
      card(
        { class: 'fleet-card' },
        el('div', { class: 'title-row' }, el('h1', {}, 'Fleet'), actions),
        this.#summary,
        el('div', { class: 'filters' }, search, status, this.#labelSelect, this.#modelSelect, modelState),
        this.#matching,
        this.#empty,
        this.#scroll,
      ),
    );
    window.addEventListener('resize', this.#onResize);
    // "Last seen" ages, without a message to move them.
    this.#ages = setInterval(() => {
      for (const id of this.#rows.keys()) this.#changed.add(id);
      onNextFrame(this.#draw);
    }, 5000);
    this.#recount();
    this.#orderDirty = true;
    this.#draw();
  }

  #recount(): void {
    this.#tally.clear();
    for (const d of fleet.devices.values()) this.#tally.set(d.id, d);
    this.#countsDirty = true;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#ages);
    clearTimeout(this.#resort);
    window.removeEventListener('resize', this.#onResize);
    this.#rows.clear();
    this.#window = { first: -1, last: -1 };
  }

  change(c: FleetChange): void {
    if (c.kind === 'reset') {
      this.#recount();
      this.#orderDirty = true;
      this.#moved.clear();
      // Every device may have changed: draw each row in view again.
      for (const id of this.#rows.keys()) this.#changed.add(id);
      this.#window = { first: -1, last: -1 };
    } else if (c.kind === 'device') {
      this.#changed.add(c.id);
      const d = fleet.devices.get(c.id);
      if (!c.healthOnly) {
        this.#tally.set(c.id, d);
        this.#countsDirty = true;
      }
      if (!c.healthOnly || sortUsesHealth(query.sort)) this.#moved.set(c.id, d);
    } else return;
    onNextFrame(this.#draw);
  }

  #onResize = () => onNextFrame(this.#draw);

  #setQuery(change: Partial<FleetQuery>): void {
    query = { ...query, ...change };
    this.#orderDirty = true;
    this.#lastSort = 0; // a person asked: now, not in 500 ms
    this.#lastCounts = 0;
    if ('label' in change) {
      const deploy = document.getElementById('fleet-deploy');
      if (deploy) deploy.textContent = query.label ? `Deploy to ${query.label}` : 'Deploy…';
    }
    this.#head.replaceChildren(...COLUMNS.map((c) => this.#headerCell(c)));
    this.#scroll.scrollTop = 0;
    onNextFrame(this.#draw);
  }

  #headerCell(c: (typeof COLUMNS)[number]): HTMLTableCellElement {
    const active = query.sort === c.key;
    const arrow = active ? (query.descending ? ' ▾' : ' ▴') : '';
    const button = el('button', { type: 'button', class: 'sort', 'data-sort': c.key }, c.title + arrow);
    button.addEventListener('click', () => this.#setQuery(active ? { descending: !query.descending } : { sort: c.key, descending: false }));
    return el('th', { class: c.numeric ? 'num' : null, 'aria-sort': active ? (query.descending ? 'descending' : 'ascending') : 'none' }, button);
  }

  // One redraw: an arrow function, so the frame scheduler coalesces it by identity. Geometry is
  // read before anything is written, so the browser lays the page out once per frame. Changed
  // devices move in the order every frame; counts are drawn, and the whole fleet re-sorted
  // (a new query, a snapshot, a storm), at most every 500 ms.
  #draw = (): void => {
    if (this.#closed) return;
    const view = { top: this.#scroll.scrollTop, height: this.#scroll.clientHeight || 600 };
    const now = performance.now();
    let later = Infinity;
    if (this.#countsDirty) {
      const wait = this.#lastCounts + RESORT_MS - now;
      if (wait <= 0) {
        this.#countsDirty = false;
        this.#lastCounts = now;
        this.#drawCounts();
      } else later = wait;
    }
    if (this.#moved.size > RESORT_PAST) this.#orderDirty = true;
    if (this.#orderDirty) {
      const wait = this.#lastSort + RESORT_MS - now;
      if (wait <= 0) {
        this.#orderDirty = false;
        this.#moved.clear();
        this.#lastSort = now;
        this.#order = queryFleet(fleet.devices.values(), query);
        this.#window = { first: -1, last: -1 };
        this.#drawMatching();
      } else later = Math.min(later, wait);
    } else if (this.#moved.size > 0) {
      this.#order = reorderDevices(this.#order, this.#moved, query);
      this.#moved.clear();
      this.#window = { first: -1, last: -1 };
      this.#drawMatching();
    }
    if (later !== Infinity && this.#resort === undefined) {
      this.#resort = setTimeout(() => {
        this.#resort = undefined;
        onNextFrame(this.#draw);
      }, later);
    }
    this.#drawRows(view);
  };

  #drawCounts(): void {
    const c = this.#tally.counts();
    const filter = (label: string, n: number, status: FleetQuery['status'], kind: string) =>
      el('button', { type: 'button', class: `count ${kind}${query.status === status ? ' active' : ''}`, 'data-count': status, onclick: () => this.#statusFilter(status) }, el('strong', {}, String(n)), ` ${label}`);
    this.#summary.replaceChildren(
      filter('devices', c.total, 'all', 'total'),
      filter('online', c.online, 'online', 'online'),
      filter('offline', c.offline, 'offline', 'offline'),
      filter('failing', c.failing, 'failing', 'failed'),
      ...c.models.slice(0, 8).map((m) => el('button', { type: 'button', class: 'count model-count', 'data-model': m.model, onclick: () => this.#modelFilter(m.model) }, el('strong', {}, String(m.devices)), ` ${m.model}`)),
    );
    const options = (select: HTMLSelectElement, any: string, values: string[], current: string | null) => {
      const list = current !== null && !values.includes(current) ? [current, ...values] : values;
      select.replaceChildren(el('option', { value: '' }, any), ...list.map((v) => el('option', { value: v, selected: v === current }, v)));
    };
    const models = c.models.map((m) => m.model);
    const drawn = JSON.stringify([c.labels, models, query.label, query.model]);
    if (drawn !== this.#options) {
      this.#options = drawn;
      options(this.#labelSelect, 'any label', c.labels, query.label);
      options(this.#modelSelect, 'any model', models, query.model);
    }
    const none = c.total === 0;
    this.#empty.hidden = !none;
    this.#scroll.hidden = none;
    this.#empty.textContent = none ? 'No devices yet. Enroll one: make an enrollment token (Enroll a device, or outpost-relay tokens enroll), then run outpost-agent enroll on the device.' : '';
  }

  #statusFilter(status: FleetQuery['status']): void {
    (document.getElementById('fleet-status') as HTMLSelectElement).value = status;
    this.#setQuery({ status });
    this.#countsDirty = true;
  }

  #modelFilter(model: string): void {
    this.#setQuery({ model: query.model === model ? null : model });
    this.#countsDirty = true;
  }

  #drawMatching(): void {
    const total = fleet.devices.size;
    const n = this.#order.length;
    this.#matching.textContent = total === 0 ? '' : n === total ? `showing all ${total} devices` : `${n} of ${total} devices match`;
  }

  #drawRows(view: { top: number; height: number }): void {
    // The list may have shrunk under a scrolled table: the view is at most its end.
    const top = Math.min(view.top, Math.max(0, this.#order.length * ROW_HEIGHT - view.height));
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.#order.length, Math.ceil((top + view.height) / ROW_HEIGHT) + OVERSCAN);
    if (first === this.#window.first && last === this.#window.last) {
      // Same rows in view: rewrite only the ones whose device changed.
      for (const id of this.#changed) {
        const row = this.#rows.get(id);
        const d = fleet.devices.get(id);
        if (row && d) this.#fill(row, d);
      }
      this.#changed.clear();
      return;
    }
    const rows = new Map<string, HTMLTableRowElement>();
    for (let i = first; i < last; i++) {
      // The device as it is now: a snapshot or an update replaces the object the order holds.
      const d = fleet.devices.get(this.#order[i]!.id);
      // Removed while a storm's re-sort waits its 500 ms: left out until then.
      if (!d) continue;
      let row = this.#rows.get(d.id);
      if (!row) {
        row = el('tr');
        this.#fill(row, d);
      } else if (this.#changed.has(d.id)) this.#fill(row, d);
      rows.set(d.id, row);
    }
    this.#changed.clear();
    // Move as little as possible: rows that left go, rows that stay stay where they are, new
    // ones go in between. Scrolling by a few rows touches only those few.
    for (const [id, row] of this.#rows) if (!rows.has(id)) row.remove();
    let cursor = this.#top.parentElement!.nextSibling;
    for (const row of rows.values()) {
      if (cursor === row) cursor = row.nextSibling;
      else this.#body.insertBefore(row, cursor);
    }
    this.#rows = rows;
    this.#window = { first, last };
    this.#top.style.height = `${first * ROW_HEIGHT}px`;
    this.#bottom.style.height = `${(this.#order.length - last) * ROW_HEIGHT}px`;
  }

  /**
   * Draws a device's row: each cell is rewritten only when what it shows changed, so a heartbeat
   * touches its numbers, not the row's links and badges (less layout, and links stay clickable).
   */
  #fill(row: HTMLTableRowElement, d: DeviceSummary): void {
    row.id = `device-${d.id}`;
    row.dataset.online = String(d.online);
    row.dataset.problem = d.problem ? d.problem.kind : '';
    const h = d.health;
    const p50 = deviceP50(d);
    const cells: Array<[key: string, draw: () => Array<Node | string> | string]> = [
      [`${d.id}\0${d.name}`, () => [el('a', { class: 'device', href: `#/devices/${encodeURIComponent(d.id)}` }, d.name), el('div', { class: 'muted id' }, d.id)]],
      [`${d.online}\0${d.problem?.kind ?? ''}\0${d.problem?.message ?? ''}`, () => [badge(d.online ? 'online' : 'offline'), ' ', ...(d.problem ? [problemBadge(d)!] : [])]],
      [JSON.stringify(d.models.map((m) => [m.name, m.version, m.state, m.reason])), () => modelsCell(d)],
      [h ? `${h.cpuPercent.toFixed(0)}%` : '-', () => (h ? `${h.cpuPercent.toFixed(0)}%` : '-')],
      [h ? `${formatBytes(h.memory.usedBytes)} / ${formatBytes(h.memory.totalBytes)}` : '-', () => (h ? `${formatBytes(h.memory.usedBytes)} / ${formatBytes(h.memory.totalBytes)}` : '-')],
      [p50 === null ? '-' : `${p50} ms`, () => (p50 === null ? '-' : `${p50} ms`)],
      [formatAgo(d.lastSeen), () => formatAgo(d.lastSeen)],
    ];
    let drawn = DRAWN.get(row);
    if (!drawn) {
      row.replaceChildren(...CELL_CLASSES.map((c) => el('td', { class: c })));
      drawn = [];
      DRAWN.set(row, drawn);
    }
    cells.forEach(([key, draw], i) => {
      if (drawn[i] === key) return;
      drawn[i] = key;
      const td = row.children[i] as HTMLTableCellElement;
      const content = draw();
      if (typeof content === 'string') td.textContent = content;
      else td.replaceChildren(...content);
    });
  }
}

const CELL_CLASSES = ['name', 'state', 'models', 'num', 'num', 'num', 'muted'];
/** What each row's cells show now, by row. */
const DRAWN = new WeakMap<HTMLTableRowElement, string[]>();
