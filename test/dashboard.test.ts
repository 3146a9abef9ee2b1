// The web dashboard in real headless Chromium: log in, see who is logged in and with which
// role, see a device appear, watch its row go online and offline, follow a deployment's
// progress, see the device's charts and agent log, read the audit log as an admin, and be
// logged out when the token is revoked.

import t from 'tap';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { CHROMIUM, launchBrowser } from './helpers/browser.js';
import { FIXTURES, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { needPackage } from './helpers/system-package.js';
import { waitFor } from './helpers/wait.js';

const EXAMPLE = fileURLToPath(new URL('../examples/classifier', import.meta.url));

t.test('the dashboard follows the fleet live', { skip: needPackage(CHROMIUM, 'chromium') }, async (t) => {
  const relay = await startRelay(t);
  const browser: Browser = await launchBrowser(relay);
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const foreign: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(relay.httpUrl) && !r.url().startsWith(relay.httpUrl.replace('http', 'ws'))) foreign.push(r.url());
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(relay.httpUrl);
  await page.locator('#login').waitFor();
  await page.fill('#token', 'opa_000000000000_wrongwrongwrongwrongwrong');
  await page.click('#login button[type=submit]');
  await page.locator('#login-error', { hasText: 'refused' }).waitFor();
  await page.fill('#token', relay.token);
  await page.click('#login button[type=submit]');
  await page.locator('.empty', { hasText: 'No devices yet' }).waitFor();
  await page.locator('#conn.live').waitFor();
  t.equal(await page.locator('#whoami .name').textContent(), 'admin', 'who is logged in');
  t.equal(await page.locator('#whoami .role').textContent(), 'admin', 'and with which role');
  t.ok(await page.locator('#nav-audit').isVisible(), 'an admin sees the audit log');

  const d = await enrollDevice(t, relay, 'browser-cam');
  const row = page.locator(`#device-${d.deviceId}`);
  await row.waitFor();
  t.equal(await row.getAttribute('data-online'), 'false', 'enrolled, not yet running');
  const agent = await startAgent(t, d);
  await page.locator(`#device-${d.deviceId}[data-online="true"]`).waitFor();
  t.pass('the row turns online');

  await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  await page.click('nav a[data-view=deployments]');
  const dep = JSON.parse((await relay.cli('deploy', 'linear', '--device', d.deviceId, '--json')).stdout) as { id: string };
  await page.locator(`#deployment-${dep.id}[data-state="succeeded"]`).waitFor();
  t.match(await page.locator(`#deployment-${dep.id} .counts`).textContent(), /1 serving/, 'the table shows progress');
  t.match(await page.locator(`#deployment-${dep.id}`).textContent(), /browser-cam/, 'the target by its name');
  await page.click(`#deployment-${dep.id} a`);
  await page.locator('#deployment-detail h1', { hasText: 'linear:1' }).waitFor();
  t.equal(await page.locator(`#deployment-devices tr[data-device="${d.deviceId}"]`).getAttribute('data-state'), 'serving', 'per-device progress');
  t.match(await page.locator(`#deployment-devices tr[data-device="${d.deviceId}"]`).textContent(), /browser-cam/, 'devices by name');

  await agent.infer('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  await page.click('nav a[data-view=fleet]');
  await page.click(`#device-${d.deviceId} a.device`);
  await page.locator('#device-info h1', { hasText: 'browser-cam' }).waitFor();
  await page.waitForFunction("document.querySelectorAll('#charts canvas').length >= 4");
  t.pass('four charts drawn');
  // With nothing hovered, each legend shows the newest values rather than blanks.
  await page.waitForFunction("[...document.querySelectorAll('#chart-cpu .u-legend .u-value')].some((v) => /\\d/.test(v.textContent))");
  t.pass('the legend shows the latest value');
  const ranged = page.waitForRequest((r) => r.url().includes(`/v1/devices/${d.deviceId}/health?range=24h`));
  await page.click('#range-picker button[data-range="24h"]');
  await ranged;
  await page.locator('#range-picker button.active[data-range="24h"]').waitFor();
  t.pass('the time range picker reads that range of the history');
  await page.locator('#device-log-lines .log-line', { hasText: 'model serving model=linear version=1' }).waitFor();
  t.match(await page.locator('#device-logs-status').textContent(), /most recent lines/, 'the agent log, asked of the device');
  // A line logged after the page opened shows on Refresh.
  t.equal((await relay.cli('deployments', 'rollback', dep.id)).code, 0);
  await waitFor('the model unloaded', async () => (await relay.api<{ models: unknown[] }>('GET', `/v1/devices/${d.deviceId}`)).body.models.length === 0);
  const unloaded = page.locator('#device-log-lines .log-line', { hasText: 'model no longer desired: unloaded' });
  await waitFor('the line in the agent log', async () => {
    await page.click('#device-logs-refresh');
    await page.locator('#device-logs-status', { hasText: 'most recent lines' }).waitFor();
    return (await unloaded.count()) === 1;
  });
  t.pass('Refresh shows a new line');
  if (process.env.OUTPOST_SCREENSHOTS) await page.screenshot({ fullPage: true, path: join(process.env.OUTPOST_SCREENSHOTS, 'device.png') });

  await page.click('nav a[data-view=fleet]');
  await agent.kill();
  await page.locator(`#device-${d.deviceId}[data-online="false"]`).waitFor();
  t.pass('the row turns offline when the agent is killed');
  await page.click(`#device-${d.deviceId} a.device`);
  await page.locator('#device-logs-status.error', { hasText: `device ${d.deviceId} is offline: its logs are on the device (journalctl -u outpost-agent or its stdout)` }).waitFor();
  t.pass('an offline device\'s page says where its logs are');
  await page.click('nav a[data-view=jobs]');
  await page.locator('.empty', { hasText: 'No jobs yet' }).waitFor();
  const job = (await relay.cli('jobs', 'submit', EXAMPLE, '--target', 'local', '--command', 'node train.js')).stdout.trim();
  await page.locator(`#job-${job}[data-state="succeeded"]`).waitFor();
  t.match(await page.locator(`#job-${job}`).textContent(), /loss 0\.\d+ \(lowest\)/, 'the table shows the best metric');
  await page.click(`#job-${job} a`);
  await page.locator('#job-metrics tr[data-metric="accuracy"]').waitFor();
  await page.locator('#job-logs', { hasText: 'outpost:metric loss=' }).waitFor();
  await page.locator('#job-chart canvas').first().waitFor();
  t.pass('the job\'s logs, metrics and their chart');
  if (process.env.OUTPOST_SCREENSHOTS) await page.screenshot({ path: join(process.env.OUTPOST_SCREENSHOTS, 'jobs.png') });

  // The audit log, newest first, for admins; Refresh reads it again.
  await page.click('nav a[data-view=audit]');
  const deployed = page.locator(`#audit-entries tr[data-action="deploy"][data-outcome="ok"]`);
  await deployed.waitFor();
  t.match(await deployed.textContent(), new RegExp(`admin.*deploy.*${dep.id}.*ok.*127\\.0\\.0\\.1`));
  await page.locator(`#audit-entries tr[data-action="device.enroll"]`, { hasText: `device ${d.deviceId}` }).waitFor();
  await page.locator('#audit-entries tr[data-action="job.submit"]', { hasText: job }).waitFor();
  const seqs = await page.locator('#audit-entries tbody tr').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-seq'))));
  t.same(seqs, [...seqs].sort((a, b) => b - a), 'newest first');
  const made = await relay.cli('tokens', 'create', '--name', 'wall-screen', '--role', 'viewer');
  t.equal(made.code, 0, made.stderr);
  await page.click('#audit-refresh');
  await page.locator('#audit-entries tr[data-action="token.create"]', { hasText: 'wall-screen' }).waitFor();
  t.pass('Refresh shows the new entry');
  if (process.env.OUTPOST_SCREENSHOTS) await page.screenshot({ path: join(process.env.OUTPOST_SCREENSHOTS, 'audit.png') });

  // A viewer: its name and role, no audit log; revoked, the page logs out and says why.
  await page.click('#logout');
  await page.fill('#token', made.stdout.trim());
  await page.click('#login button[type=submit]');
  await page.locator('#whoami .name', { hasText: 'wall-screen' }).waitFor();
  t.equal(await page.locator('#whoami .role').textContent(), 'viewer');
  t.notOk(await page.locator('#nav-audit').isVisible(), 'a viewer is not offered the audit log');
  // Still at #/audit, where the admin was.
  await page.locator('#audit-status.error', { hasText: 'the audit log is for admin tokens; token wall-screen is a viewer' }).waitFor();
  await page.click('nav a[data-view=fleet]');
  await page.locator(`#device-${d.deviceId}`).waitFor();
  t.pass('a viewer sees the fleet');
  await page.locator('#conn.live').waitFor();
  t.equal((await relay.cli('tokens', 'revoke', 'wall-screen')).code, 0);
  await page.locator('#login-error', { hasText: 'the token was revoked: log in with another token' }).waitFor();
  t.ok(await page.locator('#login').isVisible(), 'logged out when the token was revoked');
  await page.fill('#token', made.stdout.trim());
  await page.click('#login button[type=submit]');
  await page.locator('#login-error', { hasText: 'That token was refused (token wall-screen was revoked at ' }).waitFor();
  t.pass('a revoked token cannot log in again, and is told why');

  t.same(foreign, [], 'every asset comes from the relay');
  t.same(errors, [], 'no script errors');
});
