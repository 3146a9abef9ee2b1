// Running the fleet from the dashboard in real headless Chromium, through the relay's HTTP API:
// find devices (search, filters, sort, counts), enroll one with a token shown once, deploy from
// the page and watch the rollout, roll back, label, attach for training, submit and cancel jobs,
// remove a device; refusals show the relay's message; a viewer is offered none of it; a phone
// width does not overflow.

import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { packBundle } from '@outpost/shared';
import { CHROMIUM, launchBrowser } from './helpers/browser.js';
import { AGENT_BIN, FIXTURES, enrollDevice, runCli, startAgent, startRelay, tempDir, type TestRelay } from './helpers/programs.js';
import { needPackage } from './helpers/system-package.js';
import { waitFor } from './helpers/wait.js';

const EXAMPLE = fileURLToPath(new URL('../examples/classifier', import.meta.url));

async function logIn(page: Page, relay: TestRelay, token: string): Promise<void> {
  await page.goto(relay.httpUrl);
  await page.locator('#login').waitFor();
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.locator('#whoami .name').waitFor();
}

/** The device ids of the fleet table's rows, top to bottom. */
const rowIds = (page: Page) => page.locator('#fleet tbody tr:not(.spacer)').evaluateAll((rows) => rows.map((r) => r.id.replace(/^device-/, '')));

/** Confirms the open confirmation dialog. */
async function confirm(page: Page): Promise<void> {
  await page.click('#confirm button[type=submit]');
  await page.locator('#confirm').waitFor({ state: 'detached' });
}

t.test('the dashboard runs the fleet', { skip: needPackage(CHROMIUM, 'chromium') }, async (t) => {
  const relay = await startRelay(t);
  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const lab = await enrollDevice(t, relay, 'lab-cam', 'site=lab');
  const farm = await enrollDevice(t, relay, 'farm-cam', 'site=farm');
  const idle = await enrollDevice(t, relay, 'attic-cam', 'site=farm');
  await startAgent(t, lab);
  await startAgent(t, farm);

  const browser = await launchBrowser(relay);
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(relay.httpUrl);
  await page.locator('#login').waitFor();
  t.notOk(await page.locator('#nav').isVisible(), 'the nav is hidden until logged in');
  await logIn(page, relay, relay.token);
  t.ok(await page.locator('#nav').isVisible());

  await t.test('find devices: counts, search, filters, sort', async (t) => {
    await page.locator(`#device-${farm.deviceId}[data-online="true"]`).waitFor();
    await page.locator(`#device-${lab.deviceId}[data-online="true"]`).waitFor();
    await page.locator('#fleet-summary [data-count="online"]', { hasText: '2 online' }).waitFor();
    t.match(await page.locator('#fleet-summary [data-count="all"]').textContent(), /3 devices/);
    t.match(await page.locator('#fleet-summary [data-count="offline"]').textContent(), /1 offline/);
    t.same(await rowIds(page), [farm.deviceId, lab.deviceId, idle.deviceId], 'online first, then by name');

    await page.fill('#fleet-search', 'lab-');
    await waitFor('only lab-cam', async () => (await rowIds(page)).join() === lab.deviceId);
    await page.fill('#fleet-search', farm.deviceId.slice(0, 10));
    await waitFor('by id', async () => (await rowIds(page)).join() === farm.deviceId);
    await page.fill('#fleet-search', '');
    await page.selectOption('#fleet-label', 'site=farm');
    await waitFor('the farm devices', async () => (await rowIds(page)).sort().join() === [farm.deviceId, idle.deviceId].sort().join());
    await page.click('#fleet-summary [data-count="offline"]');
    await waitFor('offline farm devices', async () => (await rowIds(page)).join() === idle.deviceId);
    t.match(await page.locator('#fleet-matching').textContent(), /1 of 3 devices match/);
    await page.click('#fleet-summary [data-count="all"]');
    await page.selectOption('#fleet-label', '');
    await page.click('th button[data-sort="name"]');
    await waitFor('by name', async () => (await rowIds(page)).join() === [idle.deviceId, farm.deviceId, lab.deviceId].join());
    await page.click('th button[data-sort="name"]');
    await waitFor('by name, descending', async () => (await rowIds(page)).join() === [lab.deviceId, farm.deviceId, idle.deviceId].join());
  });

  await t.test('deploy from the page, watch the rollout, roll back', async (t) => {
    await page.click('#fleet-deploy');
    await page.locator('#deploy').waitFor();
    await page.selectOption('#deploy-target-kind', 'selector');
    await page.fill('#deploy-selector', 'site=nowhere');
    await page.click('#deploy button[type=submit]');
    await page.locator('#deploy .error', { hasText: 'site=nowhere' }).waitFor();
    t.pass('a refused deploy shows the relay\'s message, and the dialog stays');
    await page.fill('#deploy-selector', 'site=lab');
    await page.selectOption('#deploy-strategy', 'rolling');
    await page.fill('#deploy-batch', '1');
    await page.click('#deploy button[type=submit]');
    await page.locator('#deployment-detail h1', { hasText: 'linear:1' }).waitFor();
    await page.locator(`#deployment-devices tr[data-device="${lab.deviceId}"][data-state="serving"]`).waitFor();
    await page.locator('#deployment-detail h1 .badge', { hasText: 'succeeded' }).waitFor();
    t.match(await page.locator('#deployment-detail').textContent(), /every device with site=lab/, 'the target said');
    t.match(await page.locator('#deployment-detail').textContent(), /rolling, batch 1/, 'and the strategy');
    const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2]!);
    const api = await relay.api<{ state: string; strategy: { kind: string } }>('GET', `/v1/deployments/${id}`);
    t.match(api.body, { state: 'succeeded', strategy: { kind: 'rolling' } }, 'made through the API with the flags');

    await page.click('#deployment-rollback');
    await confirm(page);
    await page.locator('#deployment-detail h1 .badge', { hasText: 'rolled-back' }).waitFor();
    await waitFor('the model unloaded', async () => (await relay.api<{ models: unknown[] }>('GET', `/v1/devices/${lab.deviceId}`)).body.models.length === 0);
    await page.click('nav a[data-view=deployments]');
    await page.locator(`#deployment-${id}[data-state="rolled-back"]`).waitFor();
    t.pass('rolled back, in the table too');
  });

  await t.test('enroll a device with a token shown once', async (t) => {
    await page.click('nav a[data-view=fleet]');
    await page.click('#fleet-enroll');
    await page.fill('#enroll input[name=labels]', 'site=garage');
    await page.click('#enroll button[type=submit]');
    const command = (await page.locator('#enroll-command').textContent())!;
    t.match(command, new RegExp(`^outpost-agent enroll --relay ${relay.httpUrl} --token \\S+$`));
    await page.click('#enroll button:has-text("Close")');
    const dataDir = tempDir(t, 'agent-garage');
    const token = command.split(' --token ')[1]!;
    const res = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', token, '--name', 'garage-cam', '--data-dir', dataDir]);
    t.equal(res.code, 0, res.stderr);
    const { deviceId } = JSON.parse(readFileSync(join(dataDir, 'device.json'), 'utf8')) as { deviceId: string };
    await page.locator(`#device-${deviceId}`, { hasText: 'garage-cam' }).waitFor();
    t.pass('the enrolled device shows up');
    const again = await runCli(AGENT_BIN, ['enroll', '--relay', relay.httpUrl, '--token', token, '--name', 'again', '--data-dir', tempDir(t, 'agent-again')]);
    t.not(again.code, 0, 'the token is single-use');
  });

  await t.test('label a device, attach it for training, remove another', async (t) => {
    await page.click(`#device-${lab.deviceId} a.device`);
    await page.locator('#device-info h1', { hasText: 'lab-cam' }).waitFor();
    await page.click('#device-labels');
    await page.fill('#labels-input', 'site=lab, floor=2');
    await page.click('#labels button[type=submit]');
    await page.locator('#device-labels-value', { hasText: /^(floor=2,site=lab|site=lab,floor=2)$/ }).waitFor();
    await page.click('#device-labels');
    await page.fill('#labels-input', 'floor');
    await page.click('#labels button[type=submit]');
    await page.locator('#labels .error', { hasText: 'use key=value' }).waitFor();
    await page.click('#labels button:has-text("Cancel")');
    await page.click('#device-attach');
    await page.locator('#device-training', { hasText: /^attached$/ }).waitFor();
    const targets = await relay.api<{ targets: Array<{ name: string; attached: boolean }> }>('GET', '/v1/targets');
    t.equal(targets.body.targets.find((x) => x.name === lab.deviceId)?.attached, true, 'attached through the API');
    await page.click('#device-detach');
    await page.locator('#device-training', { hasText: 'not attached' }).waitFor();
    // A reloaded (or shared) device link opens that device, once the stream's snapshot is in.
    await page.reload();
    await page.locator('#device-info h1', { hasText: 'lab-cam' }).waitFor();
    await page.locator('#device-labels-value', { hasText: /floor=2/ }).waitFor();
    t.pass('a reloaded device page shows the device');

    await page.goto(`${relay.httpUrl}/#/devices/${idle.deviceId}`);
    await page.locator('#device-info h1', { hasText: 'attic-cam' }).waitFor();
    await page.click('#device-remove');
    await confirm(page);
    await page.locator('#fleet').waitFor();
    await waitFor('the row gone', async () => !(await rowIds(page)).includes(idle.deviceId));
    t.equal((await relay.api('GET', `/v1/devices/${idle.deviceId}`)).status, 404, 'removed');
  });

  await t.test('submit a job from the page, follow it; cancel another', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-bundle-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const bundle = join(dir, 'job.tar.gz');
    await packBundle(EXAMPLE, bundle);
    await page.click('nav a[data-view=jobs]');
    await page.click('#jobs-submit');
    await page.setInputFiles('#job-bundle', bundle);
    await page.fill('#job-command', 'node train.js');
    await page.click('#job-submit button[type=submit]');
    await page.locator('#job-detail h1 .badge', { hasText: 'succeeded' }).waitFor();
    await page.locator('#job-logs', { hasText: 'outpost:metric loss=' }).waitFor();
    await page.locator('#job-metrics tr[data-metric="accuracy"]').waitFor();
    t.pass('submitted and followed');

    const slow = await relay.cli('jobs', 'submit', EXAMPLE, '--target', 'local', '--command', 'node -e "setTimeout(() => {}, 120000)"');
    t.equal(slow.code, 0, slow.stderr);
    const id = slow.stdout.trim();
    await page.goto(`${relay.httpUrl}/#/jobs/${id}`);
    await page.locator('#job-detail h1 .badge', { hasText: 'running' }).waitFor();
    await page.click('#job-cancel');
    await confirm(page);
    await page.locator('#job-detail h1 .badge', { hasText: 'canceled' }).waitFor();
    t.equal((await relay.api<{ state: string }>('GET', `/v1/jobs/${id}`)).body.state, 'canceled');
  });

  await t.test('a viewer is offered no actions, and the API refuses them anyway', async (t) => {
    const made = await relay.cli('tokens', 'create', '--name', 'wall', '--role', 'viewer');
    t.equal(made.code, 0, made.stderr);
    await page.click('#logout');
    await logIn(page, relay, made.stdout.trim());
    await page.locator(`#device-${lab.deviceId}`).waitFor();
    t.equal(await page.locator('#fleet-deploy, #fleet-enroll').count(), 0, 'no deploy or enroll on the fleet page');
    await page.click(`#device-${lab.deviceId} a.device`);
    await page.locator('#device-info h1', { hasText: 'lab-cam' }).waitFor();
    t.equal(await page.locator('#device-info .actions button').count(), 0, 'no device actions');
    // What the page would send, sent with the viewer's token: the relay says why not.
    const refused = (await page.evaluate(`(async () => {
      const res = await fetch('/v1/deployments', { method: 'POST', headers: { authorization: 'Bearer ' + sessionStorage.getItem('outpost.token'), 'content-type': 'application/json' }, body: JSON.stringify({ model: 'linear', selector: { site: 'lab' } }) });
      return { status: res.status, body: await res.json() };
    })()`)) as { status: number; body: { error: { message: string } } };
    t.equal(refused.status, 403);
    t.match(refused.body.error.message, /needs the deployer role; token wall is a viewer/);
  });

  await t.test('a phone width does not overflow', async (t) => {
    await page.setViewportSize({ width: 375, height: 740 });
    const drawn: Record<string, string> = { '#/': '#fleet tbody tr:not(.spacer)', [`#/devices/${lab.deviceId}`]: '#charts canvas', '#/deployments': '#deployments-table tbody tr[data-state]', '#/jobs': '#jobs-table tbody tr[data-state]' };
    for (const [hash, content] of Object.entries(drawn)) {
      await page.goto(`${relay.httpUrl}/${hash}`);
      await page.locator(content).first().waitFor();
      const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      t.equal(overflow, 0, `${hash} fits 375 px`);
    }
  });

  t.same(errors, [], 'no script errors');
});
