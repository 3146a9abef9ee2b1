// The Outpost dashboard: one page, no build step. It logs in with an API token (kept in this
// browser session), follows the fleet stream over WebSocket, and draws with uPlot.
'use strict';

const TOKEN_KEY = 'outpost.token';
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
};
const badge = (state) => el('span', { class: `badge ${state}` }, state);
const bytes = (n) => {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
};
const ago = (iso) => {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};

// ---- state, kept current by the stream ----
const state = { devices: new Map(), deployments: new Map(), jobs: new Map(), logs: new Map(), metricPoints: new Map(), lastSeq: 0 };

function apply(m) {
  state.lastSeq = m.seq;
  switch (m.type) {
    case 'snapshot':
      state.devices = new Map(m.devices.map((d) => [d.id, d]));
      for (const d of m.deployments) state.deployments.set(d.id, d);
      for (const j of m.jobs) state.jobs.set(j.id, j);
      break;
    case 'job.created':
      state.jobs.set(m.job.id, m.job);
      break;
    case 'job.state': {
      const j = state.jobs.get(m.jobId);
      if (j) Object.assign(j, { state: m.state, error: m.error });
      break;
    }
    case 'job.run': {
      const j = state.jobs.get(m.jobId);
      if (!j) break;
      const r = j.runs.find((x) => x.rank === m.rank);
      if (r) Object.assign(r, { state: m.state, exitCode: m.exitCode, error: m.error });
      else j.runs.push({ rank: m.rank, target: m.target, state: m.state, exitCode: m.exitCode, error: m.error });
      break;
    }
    case 'job.log': {
      const lines = state.logs.get(m.jobId) || [];
      lines.push(...m.lines);
      state.logs.set(m.jobId, lines.slice(-200)); // the tail is what a person reads live
      break;
    }
    case 'job.metric': {
      const j = state.jobs.get(m.jobId);
      const points = state.metricPoints.get(m.jobId) || [];
      for (const p of m.points) {
        points.push(p);
        if (!j) continue;
        const cur = j.metrics[p.name];
        const lower = /loss|error|err|mse|mae|rmse|perplexity/i.test(p.name);
        j.metrics[p.name] = cur ? { latest: p.value, step: p.step, best: lower ? Math.min(cur.best, p.value) : Math.max(cur.best, p.value) } : { latest: p.value, best: p.value, step: p.step };
      }
      state.metricPoints.set(m.jobId, points);
      break;
    }
    case 'device.enrolled':
    case 'device.updated':
      state.devices.set(m.device.id, { ...state.devices.get(m.device.id), ...m.device });
      break;
    case 'device.removed':
      state.devices.delete(m.deviceId);
      break;
    case 'device.status': {
      const d = state.devices.get(m.deviceId);
      if (d) Object.assign(d, { online: m.online, lastSeen: m.lastSeen });
      break;
    }
    case 'device.health': {
      const d = state.devices.get(m.deviceId);
      if (d) Object.assign(d, { health: m.health, lastSeen: m.ts });
      break;
    }
    case 'device.models': {
      const d = state.devices.get(m.deviceId);
      if (d) d.models = m.models;
      break;
    }
    case 'device.problem': {
      const d = state.devices.get(m.deviceId);
      if (d) d.problem = m.problem;
      break;
    }
    case 'deployment.created':
      state.deployments.set(m.deployment.id, m.deployment);
      break;
    case 'deployment.progress': {
      const d = state.deployments.get(m.deploymentId);
      const r = d && d.devices.find((x) => x.deviceId === m.deviceId);
      if (r) {
        d.counts[r.state] = (d.counts[r.state] || 1) - 1;
        if (!d.counts[r.state]) delete d.counts[r.state];
        Object.assign(r, { state: m.state, reason: m.reason });
        d.counts[m.state] = (d.counts[m.state] || 0) + 1;
      }
      break;
    }
    case 'deployment.state': {
      const d = state.deployments.get(m.deploymentId);
      if (d) d.state = m.state;
      break;
    }
  }
}

// ---- talking to the relay ----
const token = () => sessionStorage.getItem(TOKEN_KEY);
// Who the token is ({ kind, id, name, role, expiresAt } from /v1/whoami), once logged in.
let me = null;
// A token ended by the relay (revoked, expired) closes the stream with this code.
const TOKEN_ENDED = 4401;

async function api(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${token()}` } });
  // The relay's own one-line reason, when it gave one (an offline device says where its logs are,
  // a revoked token says it was revoked).
  const reason = async () => { const body = await res.json().catch(() => null); return body && body.error ? body.error.message : null; };
  if (res.status === 401) { logout((await reason()) || 'your token was refused; log in again'); throw new Error('unauthorized'); }
  if (!res.ok) throw new Error((await reason()) || `${path}: ${res.status}`);
  return res.json();
}

let socket = null;
let backoff = 250;
function connect() {
  const url = new URL('/v1/fleet/stream', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('token', token());
  if (state.lastSeq) url.searchParams.set('since', String(state.lastSeq));
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => { backoff = 250; setConn(true); };
  ws.onmessage = (e) => { apply(JSON.parse(e.data)); scheduleRender(JSON.parse(e.data)); };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    if (e.code === TOKEN_ENDED) { logout(`${e.reason || 'your token ended'}: log in with another token`); return; }
    setConn(false);
    setTimeout(() => { if (token()) connect(); }, backoff);
    backoff = Math.min(backoff * 2, 5000);
  };
}

function setConn(live) {
  const c = $('#conn');
  c.hidden = false;
  c.className = `conn ${live ? 'live' : 'down'}`;
  c.textContent = live ? 'live' : 'reconnecting…';
}

// ---- views ----
let renderPending = false;
let lastMessage = null;
function scheduleRender(m) {
  lastMessage = m;
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(lastMessage); });
}

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const m = /^\/devices\/([^/]+)$/.exec(hash);
  if (m) return { view: 'device', id: decodeURIComponent(m[1]) };
  if (hash === '/deployments') return { view: 'deployments' };
  if (hash === '/jobs') return { view: 'jobs' };
  if (hash === '/audit') return { view: 'audit' };
  return { view: 'fleet' };
}

function render(message) {
  if (!token()) return;
  const r = route();
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === (r.view === 'device' ? 'fleet' : r.view));
  if (r.view === 'fleet') renderFleet();
  else if (r.view === 'device') renderDevice(r.id, message);
  else if (r.view === 'deployments') renderDeployments();
  else if (r.view === 'audit') renderAudit();
  else renderJobs();
}

function modelsCell(d) {
  if (!d.models || d.models.length === 0) return el('span', { class: 'muted' }, '-');
  return d.models.map((m) => el('span', { class: 'model' }, `${m.name}:${m.version} `, badge(m.state)));
}

// A problem only a person can fix (two agents on one identity): a badge that says what to do.
function problemBadge(d) {
  if (!d.problem) return null;
  const b = badge(d.problem.kind);
  b.title = d.problem.message;
  return b;
}

function p50(d) {
  const values = d.health ? Object.values(d.health.models).map((m) => m.p50Ms).filter((v) => v !== null) : [];
  return values.length ? `${Math.max(...values)} ms` : '-';
}

function renderFleet() {
  const devices = [...state.devices.values()].sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name));
  const online = devices.filter((d) => d.online).length;
  const rows = devices.map((d) =>
    el('tr', { id: `device-${d.id}`, 'data-online': String(d.online), 'data-problem': d.problem ? d.problem.kind : '' },
      el('td', {}, el('a', { class: 'device', href: `#/devices/${encodeURIComponent(d.id)}` }, d.name), el('div', { class: 'muted' }, d.id)),
      el('td', { class: 'state' }, badge(d.online ? 'online' : 'offline'), ' ', problemBadge(d)),
      el('td', {}, modelsCell(d)),
      el('td', { class: 'num' }, d.health ? `${d.health.cpuPercent.toFixed(0)}%` : '-'),
      el('td', { class: 'num' }, d.health ? `${bytes(d.health.memory.usedBytes)} / ${bytes(d.health.memory.totalBytes)}` : '-'),
      el('td', { class: 'num' }, p50(d)),
      el('td', { class: 'muted' }, ago(d.lastSeen)),
    ));
  $('#view').replaceChildren(
    el('div', { class: 'card' },
      el('h1', {}, 'Fleet'),
      el('p', { class: 'summary', id: 'fleet-summary' }, `${devices.length} devices, ${online} online`),
      devices.length === 0
        ? el('p', { class: 'empty' }, 'No devices yet. Make a token with outpost-relay tokens enroll, then run outpost-agent enroll on a device.')
        : el('table', { id: 'fleet' },
            el('thead', {}, el('tr', {}, ['Device', 'State', 'Models', 'CPU', 'Memory', 'p50', 'Last seen'].map((h) => el('th', {}, h)))),
            el('tbody', {}, rows))));
}

// Device page: charts from the health history, refreshed (at most every 2 s) on heartbeats.
let charts = { id: null, plots: [], fetchedAt: 0, loading: false };

const CHARTS = [
  { key: 'cpu', title: 'CPU', unit: '%', series: [{ label: 'CPU %', get: (p) => p.cpu, stroke: '#2f6fde' }] },
  { key: 'mem', title: 'Memory', unit: 'MiB', series: [{ label: 'used MiB', get: (p) => p.memUsed / 1048576, stroke: '#8e44ad' }, { label: 'agent RSS MiB', get: (p) => p.rss / 1048576, stroke: '#16a085' }] },
  { key: 'rate', title: 'Requests', unit: '/s', series: [{ label: 'requests/s', get: (p) => p.reqRate, stroke: '#1f9d55' }, { label: 'errors/s', get: (p) => p.errRate, stroke: '#c0392b' }] },
  { key: 'latency', title: 'Latency', unit: 'ms', series: [{ label: 'p50 ms', get: (p) => p.p50, stroke: '#c27c0e' }, { label: 'p99 ms', get: (p) => p.p99, stroke: '#c0392b' }] },
];

function renderDevice(id, message) {
  const d = state.devices.get(id);
  if (!d) {
    $('#view').replaceChildren(el('div', { class: 'card' }, el('h1', {}, 'No such device'), el('p', {}, el('a', { href: '#/' }, 'Back to the fleet'))));
    return;
  }
  const fresh = charts.id !== id || !document.getElementById('charts');
  if (fresh) {
    for (const p of charts.plots) p.destroy();
    charts = { id, plots: [], fetchedAt: 0, loading: false };
    const refresh = el('button', { id: 'device-logs-refresh', type: 'button', onclick: () => loadDeviceLogs(id) }, 'Refresh');
    $('#view').replaceChildren(
      el('div', { class: 'card', id: 'device-info' }),
      el('div', { class: 'charts', id: 'charts' }, CHARTS.map((c) => el('div', { class: 'card chart', id: `chart-${c.key}` }, el('h2', {}, `${c.title} (${c.unit})`)))),
      el('div', { class: 'card', id: 'device-logs' },
        el('h2', {}, 'Agent log ', refresh),
        el('p', { id: 'device-logs-status', class: 'muted' }),
        el('pre', { class: 'logs', id: 'device-log-lines', hidden: true })),
    );
  }
  const h = d.health;
  $('#device-info').replaceChildren(
    el('h1', {}, d.name, ' ', badge(d.online ? 'online' : 'offline'), ' ', problemBadge(d)),
    d.problem ? el('p', { class: 'problem', id: 'device-problem' }, d.problem.message) : null,
    el('dl', {},
      el('dt', {}, 'id'), el('dd', {}, d.id),
      el('dt', {}, 'labels'), el('dd', {}, Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-'),
      el('dt', {}, 'last seen'), el('dd', {}, ago(d.lastSeen)),
      el('dt', {}, 'models'), el('dd', {}, modelsCell(d)),
      el('dt', {}, 'agent'), el('dd', {}, h ? `up ${Math.round(h.uptimeS)} s, RSS ${bytes(h.memory.rssBytes)}, disk free ${bytes(h.disk.freeBytes)}` : '-'),
    ));
  const heartbeat = message && message.type === 'device.health' && message.deviceId === id;
  if (fresh || (heartbeat && Date.now() - charts.fetchedAt > 2000)) loadCharts(id);
  // The log is asked of the device: when the page opens, on Refresh, and when the device comes back.
  const back = message && message.type === 'device.status' && message.deviceId === id && message.online;
  if (fresh || back) loadDeviceLogs(id);
}

const logText = (l) => {
  const fields = Object.entries(l.fields || {}).map(([k, v]) => ` ${k}=${typeof v === 'string' && v && !/[\s"=]/.test(v) ? v : JSON.stringify(v)}`).join('');
  return `${new Date(l.ts).toLocaleTimeString([], { hour12: false })} ${l.level.toUpperCase().padEnd(5)} ${l.msg}${fields}`;
};

let logsLoading = false;
async function loadDeviceLogs(id) {
  if (logsLoading) return;
  logsLoading = true;
  const status = $('#device-logs-status');
  status.className = 'muted';
  status.textContent = 'asking the device…';
  try {
    const { lines } = await api(`/v1/devices/${encodeURIComponent(id)}/logs?limit=200`);
    if (charts.id !== id || !document.getElementById('device-log-lines')) return;
    const pre = $('#device-log-lines');
    pre.replaceChildren(...lines.map((l) => el('div', { class: `log-line ${l.level}`, 'data-seq': String(l.seq) }, logText(l))));
    pre.hidden = lines.length === 0;
    pre.scrollTop = pre.scrollHeight;
    status.textContent = `the ${lines.length} most recent lines, as of ${new Date().toLocaleTimeString([], { hour12: false })} (kept in memory on the device)`;
  } catch (err) {
    if (charts.id !== id || !document.getElementById('device-logs-status')) return;
    status.className = 'error';
    status.textContent = err.message;
  } finally {
    logsLoading = false;
  }
}

async function loadCharts(id) {
  if (charts.loading) return;
  charts.loading = true;
  try {
    const series = await api(`/v1/devices/${encodeURIComponent(id)}/health?range=1h`);
    if (charts.id !== id) return;
    charts.fetchedAt = Date.now();
    const xs = series.points.map((p) => p.ts / 1000);
    CHARTS.forEach((c, i) => {
      const data = [xs, ...c.series.map((s) => series.points.map((p) => s.get(p)))];
      const plot = charts.plots[i];
      if (plot) plot.setData(data);
      else {
        const host = document.getElementById(`chart-${c.key}`);
        charts.plots[i] = new uPlot(
          { width: Math.max(300, host.clientWidth - 40), height: 200, series: [{}, ...c.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: true }))], axes: [{}, { size: 60 }] },
          data,
          host,
        );
      }
    });
  } finally {
    charts.loading = false;
  }
}

function progressBar(d) {
  const total = d.devices.length || 1;
  return el('div', { class: 'progress', title: Object.entries(d.counts).map(([s, n]) => `${n} ${s}`).join(', ') },
    Object.entries(d.counts).map(([s, n]) => el('span', { class: s, style: `width:${(100 * n) / total}%` })));
}

function renderDeployments() {
  const list = [...state.deployments.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  $('#view').replaceChildren(
    el('div', { class: 'card' }, el('h1', {}, 'Deployments'),
      list.length === 0 ? el('p', { class: 'empty' }, 'No deployments yet: outpost-relay deploy NAME --device ID') : null),
    ...list.map((d) => {
      const card = el('div', { class: 'card deployment', id: `deployment-${d.id}`, 'data-state': d.state },
        el('h2', {}, `${d.model}:${d.version} `, badge(d.state), ' ', el('span', { class: 'muted' }, d.id)),
        el('p', { class: 'summary counts' }, Object.entries(d.counts).map(([s, n]) => `${n} ${s}`).join(', ')),
        progressBar(d),
        el('table', {}, el('tbody', {}, d.devices.map((x) => {
          const dev = state.devices.get(x.deviceId);
          return el('tr', { 'data-device': x.deviceId, 'data-state': x.state },
            el('td', {}, dev ? dev.name : x.deviceId), el('td', {}, badge(x.state)), el('td', { class: 'muted' }, x.reason || ''));
        }))));
      return card;
    }),
  );
}

let jobCharts = [];
function renderJobs() {
  for (const c of jobCharts) c.destroy();
  jobCharts = [];
  const list = [...state.jobs.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt))).slice(0, 20);
  $('#view').replaceChildren(
    el('div', { class: 'card' }, el('h1', {}, 'Jobs'),
      list.length === 0 ? el('p', { class: 'empty' }, 'No jobs yet. Submit one with outpost-relay jobs submit DIR --target local --command "…"') : null),
    ...list.map((j) => {
      const metrics = Object.entries(j.metrics);
      const logs = state.logs.get(j.id) || [];
      const card = el('div', { class: 'card job', id: `job-${j.id}`, 'data-state': j.state },
        el('h2', {}, `${j.id} `, badge(j.state), ' ', el('span', { class: 'muted' }, `on ${j.target}${j.nodes > 1 ? ` ×${j.nodes}` : ''}`)),
        el('p', { class: 'summary' }, el('code', {}, j.command), j.error ? el('span', { class: 'error' }, ` ${j.error}`) : null, j.model ? ` → model ${j.model.name}:${j.model.version}` : ''),
        metrics.length ? el('table', { class: 'metrics' }, el('thead', {}, el('tr', {}, ['Metric', 'Latest', 'Best', 'Step'].map((h) => el('th', {}, h)))),
          el('tbody', {}, metrics.map(([name, m]) => el('tr', { 'data-metric': name }, el('td', {}, name), el('td', { class: 'num' }, m.latest), el('td', { class: 'num' }, m.best), el('td', { class: 'num' }, m.step ?? '-'))))) : null,
        el('div', { class: 'job-chart' }),
        logs.length ? el('pre', { class: 'logs' }, logs.slice(-20).map((l) => `${j.nodes > 1 ? `[${l.rank}] ` : ''}${l.text}`).join('\n')) : null,
      );
      return card;
    }),
  );
  for (const j of list) {
    const points = state.metricPoints.get(j.id);
    if (!points || points.length < 2) continue;
    const names = [...new Set(points.map((p) => p.name))];
    const steps = [...new Set(points.map((p, i) => p.step ?? i))].sort((a, b) => a - b);
    const data = [steps, ...names.map((n) => steps.map((s) => { const p = points.find((q, i) => q.name === n && (q.step ?? i) === s); return p ? p.value : null; }))];
    const host = document.querySelector(`#job-${j.id} .job-chart`);
    jobCharts.push(new uPlot({ width: Math.max(300, host.clientWidth), height: 160, scales: { x: { time: false } }, series: [{ label: 'step' }, ...names.map((n, i) => ({ label: n, stroke: ['#2f6fde', '#1f9d55', '#c27c0e', '#c0392b'][i % 4], width: 2, spanGaps: true }))] }, data, host));
  }
}

// Audit page (admins): the newest entries, read when the page opens and on Refresh (a stream
// message does not redraw it, so a person can read it in peace).
let auditShown = false;
function renderAudit() {
  if (auditShown && document.getElementById('audit')) return;
  auditShown = true;
  const refresh = el('button', { id: 'audit-refresh', type: 'button', onclick: () => loadAudit() }, 'Refresh');
  $('#view').replaceChildren(
    el('div', { class: 'card', id: 'audit' },
      el('h1', {}, 'Audit log ', refresh),
      el('p', { class: 'summary', id: 'audit-status' }, 'loading…'),
      el('table', { id: 'audit-entries' },
        el('thead', {}, el('tr', {}, ['Time', 'Who', 'Action', 'Target', 'Outcome', 'From'].map((h) => el('th', {}, h)))),
        el('tbody', {}))));
  loadAudit();
}

async function loadAudit() {
  const status = $('#audit-status');
  if (!me || me.role !== 'admin') {
    status.className = 'error';
    status.textContent = `the audit log is for admin tokens; ${me ? `token ${me.name} is a ${me.role}` : 'log in'}`;
    return;
  }
  try {
    const { entries } = await api('/v1/audit?limit=100');
    if (!document.getElementById('audit-entries')) return;
    $('#audit-entries tbody').replaceChildren(...entries.map((e) =>
      el('tr', { 'data-seq': String(e.seq), 'data-action': e.action, 'data-outcome': e.outcome },
        el('td', { class: 'muted' }, new Date(e.at).toLocaleString([], { hour12: false })),
        el('td', {}, e.who),
        el('td', {}, el('code', {}, e.action)),
        el('td', {}, e.target || '-'),
        el('td', { title: e.detail && e.detail.message ? e.detail.message : '' }, badge(e.outcome), e.status && e.outcome !== 'ok' ? ` ${e.status}` : ''),
        el('td', { class: 'muted' }, e.address || '-'))));
    status.className = 'summary';
    status.textContent = entries.length ? `the ${entries.length} newest entries, as of ${new Date().toLocaleTimeString([], { hour12: false })}` : 'nothing recorded yet';
  } catch (err) {
    if (!document.getElementById('audit-status')) return;
    status.className = 'error';
    status.textContent = err.message;
  }
}

function showWhoami() {
  const w = $('#whoami');
  w.hidden = !me;
  w.replaceChildren(...(me ? [el('span', { class: 'name' }, me.name), el('span', { class: 'role' }, me.role)] : []));
  w.title = me ? `token ${me.id}${me.expiresAt ? `, expires ${me.expiresAt}` : ''}` : '';
  $('#nav-audit').hidden = !me || me.role !== 'admin';
}

// ---- log in and out ----
function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (socket) { const s = socket; socket = null; s.close(); }
  state.devices.clear();
  state.deployments.clear();
  state.jobs.clear();
  state.lastSeq = 0;
  me = null;
  auditShown = false;
  showWhoami();
  $('#view').replaceChildren();
  for (const id of ['#nav', '#logout', '#conn']) $(id).hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
}

async function start() {
  $('#login').hidden = true;
  for (const id of ['#nav', '#logout']) $(id).hidden = false;
  try {
    me = await api('/v1/whoami');
    showWhoami();
    const { deployments } = await api('/v1/deployments?limit=50');
    for (const d of deployments) if (!state.deployments.has(d.id)) state.deployments.set(d.id, d);
    const { jobs } = await api('/v1/jobs');
    for (const j of jobs) if (!state.jobs.has(j.id)) state.jobs.set(j.id, j);
  } catch {
    return;
  }
  connect();
}

$('#login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const value = $('#token').value.trim();
  const res = await fetch('/v1/whoami', { headers: { authorization: `Bearer ${value}` } });
  if (!res.ok) {
    // A revoked or expired token is told so; anything else is not an API token.
    const body = await res.json().catch(() => null);
    const said = body && body.error && /revoked|expired/.test(body.error.message) ? ` (${body.error.message})` : '';
    $('#login-error').textContent = `That token was refused${said}. Use an API token (opa_…).`;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, value);
  $('#token').value = '';
  start();
});
$('#logout').addEventListener('click', () => logout());
window.addEventListener('hashchange', () => { auditShown = false; render(null); });
setInterval(() => { if (route().view === 'fleet') render(null); }, 5000); // "last seen" ages

if (token()) start();
else logout();
