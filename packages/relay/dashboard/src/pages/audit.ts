// The audit log (admins): the newest entries, read when the page opens and on Refresh (a stream
// message does not redraw it, so a person can read it in peace).

import { get } from '../api.js';
import { badge, card, el, show } from '../dom.js';
import type { Page } from '../page.js';
import { session } from '../session.js';

interface AuditEntry {
  seq: number;
  at: string;
  who: string;
  action: string;
  target: string | null;
  outcome: string;
  status: number | null;
  address: string | null;
  detail: { message?: string } | null;
}

export class AuditPage implements Page {
  readonly #status = el('p', { class: 'summary', id: 'audit-status' }, 'loading…');
  readonly #body = el('tbody');
  #closed = false;

  open(): void {
    show(
      card(
        { id: 'audit' },
        el('h1', {}, 'Audit log ', el('button', { id: 'audit-refresh', type: 'button', class: 'secondary', onclick: () => void this.#load() }, 'Refresh')),
        this.#status,
        el('div', { class: 'table-scroll' }, el('table', { id: 'audit-entries' }, el('thead', {}, el('tr', {}, ['Time', 'Who', 'Action', 'Target', 'Outcome', 'From'].map((h) => el('th', {}, h)))), this.#body)),
      ),
    );
    void this.#load();
  }

  close(): void {
    this.#closed = true;
  }

  change(): void {}

  async #load(): Promise<void> {
    const me = session.me;
    if (!me || !session.can('admin')) {
      this.#status.className = 'error';
      this.#status.textContent = `the audit log is for admin tokens; ${me ? `token ${me.name} is a ${me.role}` : 'log in'}`;
      return;
    }
    try {
      const { entries } = await get<{ entries: AuditEntry[] }>('/v1/audit?limit=100');
      if (this.#closed) return;
      this.#body.replaceChildren(
        ...entries.map((e) =>
          el(
            'tr',
            { 'data-seq': String(e.seq), 'data-action': e.action, 'data-outcome': e.outcome },
            el('td', { class: 'muted' }, new Date(e.at).toLocaleString([], { hour12: false })),
            el('td', {}, e.who),
            el('td', {}, el('code', {}, e.action)),
            el('td', {}, e.target ?? '-'),
            el('td', { title: e.detail?.message ?? '' }, badge(e.outcome), e.status && e.outcome !== 'ok' ? ` ${e.status}` : ''),
            el('td', { class: 'muted' }, e.address ?? '-'),
          ),
        ),
      );
      this.#status.className = 'summary';
      this.#status.textContent = entries.length ? `the ${entries.length} newest entries, as of ${new Date().toLocaleTimeString([], { hour12: false })}` : 'nothing recorded yet';
    } catch (err) {
      if (this.#closed) return;
      this.#status.className = 'error';
      this.#status.textContent = (err as Error).message;
    }
  }
}
