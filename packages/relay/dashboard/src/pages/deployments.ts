// Deployments: a table of them all (model, version, target, strategy, state, progress, age), and
// a page per deployment: its stages, each device's state with its reason and the health
// window's countdown, filterable by state, with cancel and roll back for deployers.

import { countsText as stateCounts, deploymentActive, formatAgo, formatElapsed, formatLabels, type DeploymentSummary, type FleetChange } from '@outpost/shared/browser';
import { deployDialog } from '../actions/deploy-dialog.js';
import { api, get } from '../api.js';
import { confirmAction, launch } from '../dialog.js';
import { badge, card, el, muted, show } from '../dom.js';
import { onNextFrame } from '../frame.js';
import type { Page } from '../page.js';
import { session } from '../session.js';
import { fleet } from '../stream.js';

export function progressBar(d: DeploymentSummary): HTMLElement {
  const total = d.devices.length || 1;
  return el(
    'div',
    { class: 'progress', title: countsText(d) },
    Object.entries(d.counts).map(([s, n]) => el('span', { class: s, style: `width:${(100 * n) / total}%` })),
  );
}

const countsText = (d: DeploymentSummary) => stateCounts(d.counts);

const targetText = (d: DeploymentSummary) => (d.selector ? formatLabels(d.selector) : d.devices.length === 1 ? fleet.deviceName(d.devices[0]!.deviceId) : `${d.devices.length} devices`);

const strategyText = (d: DeploymentSummary) => {
  const s = d.strategy;
  if (!s) return 'all at once';
  const parts = [s.kind === 'rolling' ? `rolling, batch ${s.batch}` : 'all at once'];
  if (s.canary) parts.push(`canary ${s.canary}`);
  if (s.failureThreshold !== null) parts.push(`tolerates ${s.failureThreshold} failed`);
  if (s.healthWindowMs) parts.push(`health window ${formatElapsed(s.healthWindowMs)}`);
  return parts.join(', ');
};

/** Superseded: a newer deployment of the model took over its devices (all or some). */
function supersededBadge(d: DeploymentSummary): HTMLElement | null {
  const n = d.counts.superseded ?? 0;
  if (n === 0) return null;
  return badge('superseded', n === d.devices.length ? 'a newer deployment of this model took over every device' : `${n} of ${d.devices.length} devices now follow a newer deployment`);
}

const sorted = () => [...fleet.deployments.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));

export class DeploymentsPage implements Page {
  readonly #body = el('tbody');

  open(): void {
    const deploy = session.can('deployer') ? el('button', { type: 'button', id: 'deployments-new', onclick: () => launch(() => deployDialog()) }, 'Deploy…') : null;
    show(
      card(
        { id: 'deployments' },
        el('div', { class: 'title-row' }, el('h1', {}, 'Deployments'), deploy),
        el('div', { class: 'table-scroll' }, el('table', { id: 'deployments-table' }, el('thead', {}, el('tr', {}, ['Model', 'Version', 'Target', 'Strategy', 'State', 'Progress', 'Age'].map((h) => el('th', {}, h)))), this.#body)),
      ),
    );
    this.#draw();
  }

  close(): void {}

  change(c: FleetChange): void {
    if (c.kind === 'deployment' || c.kind === 'reset') onNextFrame(this.#draw);
  }

  #draw = (): void => {
    const list = sorted();
    if (list.length === 0) {
      this.#body.replaceChildren(el('tr', {}, el('td', { colSpan: 7, class: 'empty' }, 'No deployments yet. Deploy a model to devices (Deploy…, or outpost-relay deploy NAME --device ID).')));
      return;
    }
    this.#body.replaceChildren(
      ...list.map((d) =>
        el(
          'tr',
          { id: `deployment-${d.id}`, 'data-state': d.state },
          el('td', {}, el('a', { href: `#/deployments/${encodeURIComponent(d.id)}` }, d.model), el('div', { class: 'muted id' }, d.id)),
          el('td', { class: 'num' }, String(d.version)),
          el('td', {}, targetText(d)),
          el('td', { class: 'muted' }, strategyText(d)),
          el('td', {}, badge(d.state), ' ', supersededBadge(d)),
          el('td', { class: 'progress-cell' }, progressBar(d), el('div', { class: 'counts muted' }, countsText(d))),
          el('td', { class: 'muted' }, formatAgo(d.createdAt)),
        ),
      ),
    );
  };
}

export class DeploymentPage implements Page {
  #filter = '';
  #drawnHead = '';
  #drawnFilter = '';
  #deviceRows = new Map<string, { tr: HTMLTableRowElement; drawn: string; countdown: HTMLElement; since: HTMLElement }>();
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #head = el('div');
  readonly #rows = el('tbody');
  readonly #states = el('select', { id: 'deployment-state-filter', 'aria-label': 'device state' });

  constructor(readonly id: string) {}

  open(): void {
    this.#states.addEventListener('change', () => {
      this.#filter = this.#states.value;
      this.#draw();
    });
    show(
      card({ id: 'deployment-detail' }, this.#head),
      card(
        {},
        el('div', { class: 'title-row' }, el('h2', {}, 'Devices'), this.#states),
        el('div', { class: 'table-scroll' }, el('table', { id: 'deployment-devices' }, el('thead', {}, el('tr', {}, ['Device', 'State', 'Reason', 'Since'].map((h) => el('th', {}, h)))), this.#rows)),
      ),
    );
    if (!fleet.deployments.has(this.id)) {
      get<DeploymentSummary>(`/v1/deployments/${encodeURIComponent(this.id)}`).then(
        (d) => {
          fleet.addDeployments([d]);
          this.#draw();
        },
        (err: Error) => this.#head.replaceChildren(el('h1', {}, 'No such deployment'), el('p', { class: 'error' }, err.message)),
      );
    } else this.#draw();
    // The health window counts down without a message to move it.
    this.#timer = setInterval(() => onNextFrame(this.#draw), 1000);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  change(c: FleetChange): void {
    const d = fleet.deployments.get(this.id);
    // A device's name or state may show here; its heartbeats do not.
    const mine = c.kind === 'device' && !c.healthOnly && d?.devices.some((x) => x.deviceId === c.id);
    if ((c.kind === 'deployment' && c.id === this.id) || c.kind === 'reset' || mine) onNextFrame(this.#draw);
  }

  #draw = (): void => {
    const d = fleet.deployments.get(this.id);
    if (!d) return;
    // The head and the filter are drawn again only when what they show changed, so their
    // buttons and select stay put under a person's pointer while the countdown ticks.
    const head = JSON.stringify([d.state, d.counts]);
    if (head !== this.#drawnHead) {
      this.#drawnHead = head;
      this.#drawHead(d);
    }
    const states = [...new Set(d.devices.map((x) => x.state))].sort();
    if (this.#filter && !states.includes(this.#filter)) states.push(this.#filter);
    const filter = JSON.stringify([states, d.counts, this.#filter]);
    if (filter !== this.#drawnFilter) {
      this.#drawnFilter = filter;
      this.#states.replaceChildren(el('option', { value: '' }, `every state (${d.devices.length})`), ...states.map((s) => el('option', { value: s, selected: s === this.#filter }, `${s} (${d.counts[s] ?? 0})`)));
    }
    const windowMs = d.strategy?.healthWindowMs ?? 0;
    const now = Date.now();
    // Rows are kept per device and rewritten only when the device's state, reason or name
    // changed; the countdown's text is set in place, so a link stays put under the pointer.
    const rows = new Map<string, { tr: HTMLTableRowElement; drawn: string; countdown: HTMLElement; since: HTMLElement }>();
    const list: HTMLTableRowElement[] = [];
    for (const x of d.devices.filter((x) => this.#filter === '' || x.state === this.#filter).slice(0, 2000)) {
      const key = JSON.stringify([x.state, x.reason, x.updatedAt, fleet.deviceName(x.deviceId)]);
      let row = this.#deviceRows.get(x.deviceId);
      if (!row || row.drawn !== key) {
        const countdown = muted('');
        const since = el('td', { class: 'muted since' });
        const tr = el(
          'tr',
          { 'data-device': x.deviceId, 'data-state': x.state },
          el('td', {}, el('a', { href: `#/devices/${encodeURIComponent(x.deviceId)}` }, fleet.deviceName(x.deviceId))),
          el('td', {}, badge(x.state), countdown),
          el('td', { class: 'muted reason' }, x.reason ?? ''),
          since,
        );
        row = { tr, drawn: key, countdown, since };
      }
      const left = x.state === 'serving' && windowMs > 0 && x.updatedAt ? Date.parse(x.updatedAt) + windowMs - now : null;
      const text = left === null ? '' : left > 0 ? ` healthy in ${formatElapsed(left)}` : ' judging health…';
      if (row.countdown.textContent !== text) row.countdown.textContent = text;
      const age = x.updatedAt ? formatAgo(x.updatedAt, now) : '-';
      if (row.since.textContent !== age) row.since.textContent = age;
      rows.set(x.deviceId, row);
      list.push(row.tr);
    }
    this.#deviceRows = rows;
    // Only when the rows themselves changed: the same nodes in the same order stay where they are.
    const same = list.length === this.#rows.children.length && list.every((tr, i) => this.#rows.children[i] === tr);
    if (!same) this.#rows.replaceChildren(...list);
  };

  #drawHead(d: DeploymentSummary): void {
    const actions = el('div', { class: 'actions' });
    if (session.can('deployer') && deploymentActive(d.state))
      actions.append(el('button', { type: 'button', class: 'secondary', id: 'deployment-cancel', onclick: () => launch(() => confirmAction('Cancel deployment', `Stop deployment ${d.id}? Devices that have it keep it; the rest are not sent it.`, 'Cancel deployment', () => api('POST', `/v1/deployments/${encodeURIComponent(d.id)}/cancel`))) }, 'Cancel…'));
    if (session.can('deployer') && d.state !== 'rolled-back')
      actions.append(el('button', { type: 'button', class: 'danger', id: 'deployment-rollback', onclick: () => launch(() => confirmAction('Roll back', `Roll back ${d.model}:${d.version}? Its devices return to the version they served before.`, 'Roll back', () => api('POST', `/v1/deployments/${encodeURIComponent(d.id)}/rollback`))) }, 'Roll back…'));
    const released = d.devices.filter((x) => x.state !== 'waiting').length;
    this.#head.replaceChildren(
      el('div', { class: 'title-row' }, el('h1', {}, `${d.model}:${d.version} `, badge(d.state), ' ', supersededBadge(d)), actions),
      el('p', { class: 'muted' }, d.id, ` · created ${formatAgo(d.createdAt)}`),
      el(
        'dl',
        {},
        el('dt', {}, 'target'),
        el('dd', {}, d.selector ? `every device with ${formatLabels(d.selector)} (now and later)` : targetText(d)),
        el('dt', {}, 'strategy'),
        el('dd', {}, strategyText(d)),
        el('dt', {}, 'stages'),
        el('dd', { id: 'deployment-stages' }, d.strategy?.canary ? `canary: the first ${d.strategy.canary}, then the rest; ` : '', `${released} of ${d.devices.length} released`),
      ),
      progressBar(d),
      el('p', { class: 'summary counts' }, countsText(d)),
    );
  }
}
