// The Outpost dashboard: log in with an API token, follow the fleet stream, and run the fleet
// from the browser through the same HTTP API as the CLI. Routes are hash paths; each page is
// one file in pages/, told of stream changes while it is open.

import type { JobWithRounds } from './answers.js';
import { get } from './api.js';
import { $, el } from './dom.js';
import type { Page } from './page.js';
import { AuditPage } from './pages/audit.js';
import { DeploymentPage, DeploymentsPage } from './pages/deployments.js';
import { DevicePage } from './pages/device.js';
import { FleetPage } from './pages/fleet.js';
import { JobPage, JobsPage } from './pages/jobs.js';
import { mergeRounds } from './pages/rounds.js';
import { session, type Whoami } from './session.js';
import { connect, disconnect, fleet, onChange, onConnection, snapshotOrTimeout } from './stream.js';
import type { DeploymentSummary } from '@outpost/shared/browser';

let page: Page | null = null;

/** `%zz` in a pasted link is not a reason to show nothing. */
function decoded(id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  try {
    return decodeURIComponent(id);
  } catch {
    return id;
  }
}

function pageFor(hash: string): { page: Page; nav: string } {
  const path = hash.replace(/^#/, '') || '/';
  const [, section, id] = /^\/([a-z]+)(?:\/([^/]+))?$/.exec(path) ?? [];
  const ref = decoded(id);
  if (section === 'devices' && ref) return { page: new DevicePage(ref), nav: 'fleet' };
  if (section === 'deployments') return { page: ref ? new DeploymentPage(ref) : new DeploymentsPage(), nav: 'deployments' };
  if (section === 'jobs') return { page: ref ? new JobPage(ref) : new JobsPage(), nav: 'jobs' };
  if (section === 'audit') return { page: new AuditPage(), nav: 'audit' };
  return { page: new FleetPage(), nav: 'fleet' };
}

function route(): void {
  page?.close();
  page = null;
  if (!session.me) return;
  const next = pageFor(location.hash);
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) a.classList.toggle('active', a.dataset.view === next.nav);
  page = next.page;
  page.open();
}

onChange((change, message) => {
  page?.change(change, message);
  // After a snapshot (a reconnect past the window), read again what it does not carry.
  if (change.kind === 'reset' && ++snapshots > 1) void loadHistory();
});

/** Snapshots since log-in: every one after the first means the page was away too long. */
let snapshots = 0;

/** Deployments and jobs older than the stream's snapshot carries. */
async function loadHistory(): Promise<void> {
  try {
    const [{ deployments }, { jobs }] = await Promise.all([get<{ deployments: DeploymentSummary[] }>('/v1/deployments?limit=200'), get<{ jobs: JobWithRounds[] }>('/v1/jobs')]);
    fleet.addDeployments(deployments);
    fleet.addJobs(jobs.map(({ rounds, ...job }) => job));
    // A federated job's rounds so far: the stream brings only those that begin or end from now on.
    for (const j of jobs) if (j.rounds) mergeRounds(j.id, j.rounds);
    page?.change({ kind: 'reset' }, { type: 'snapshot', devices: [], deployments: [], jobs: [], seq: fleet.lastSeq, ts: new Date().toISOString() });
  } catch {
    // Refused: logged out, saying why; unreachable: the stream reconnects and asks again.
  }
}
onConnection((live) => {
  const c = $('#conn');
  c.hidden = false;
  c.className = `conn ${live ? 'live' : 'down'}`;
  c.textContent = live ? 'live' : 'reconnecting…';
});

function showWhoami(): void {
  const me = session.me;
  const w = $('#whoami');
  w.hidden = !me;
  w.replaceChildren(...(me ? [el('span', { class: 'name' }, me.name), el('span', { class: 'role' }, me.role)] : []));
  w.title = me ? `token ${me.id}${me.expiresAt ? `, expires ${me.expiresAt}` : ''}` : '';
  $('#nav-audit').hidden = !session.can('admin');
}

function loggedOut(message: string): void {
  disconnect();
  snapshots = 0;
  page?.close();
  page = null;
  showWhoami();
  $('#view').replaceChildren();
  for (const id of ['#nav', '#logout', '#conn']) $(id).hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message;
}
session.onEnd(loggedOut);

/** Who the token is, or why not: the relay's refusal, or that it cannot be reached. */
async function whoami(token: string): Promise<Whoami | string> {
  let res: Response;
  try {
    res = await fetch('/v1/whoami', { headers: { authorization: `Bearer ${token}` } });
  } catch {
    return 'The relay cannot be reached: is it running? Reload to try again.';
  }
  if (res.ok) return (await res.json()) as Whoami;
  // A revoked or expired token is told so; anything else is not an API token.
  const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
  const said = body?.error?.message && /revoked|expired/.test(body.error.message) ? ` (${body.error.message})` : '';
  return `That token was refused${said}. Use an API token (opa_…).`;
}

async function start(token: string): Promise<void> {
  const me = await whoami(token);
  if (typeof me === 'string') {
    session.end(me);
    return;
  }
  session.begin(token, me);
  $('#login').hidden = true;
  for (const id of ['#nav', '#logout']) $(id).hidden = false;
  showWhoami();
  await loadHistory();
  if (!session.me) return;
  connect();
  // A page opened before the snapshot would find no devices (a reloaded device page).
  await snapshotOrTimeout(5000);
  if (session.me) route();
}

$('#login').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $<HTMLInputElement>('#token');
  const value = input.value.trim();
  input.value = '';
  void start(value);
});
$('#logout').addEventListener('click', () => session.end());
window.addEventListener('hashchange', route);

const saved = session.token();
if (saved) void start(saved);
else loggedOut('');
