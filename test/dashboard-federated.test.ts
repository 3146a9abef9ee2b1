// Federated jobs in the dashboard, in real headless Chromium: a real relay and two real agents
// train examples/federated in rounds. The jobs table says a job is federated and which round it
// is at; its page lists each round as it begins and ends, live and without a reload (each client
// waits at a gate file per round, so the test decides when a round may end), with the updates
// averaged, their examples and metrics, the running round's deadline counting down, the final
// model and a link to its rollout; a client whose update was refused is named, with why; a
// round waiting for clients says why until it starts.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { CHROMIUM, launchBrowser } from './helpers/browser.js';
import { enrollDevice, startAgent, startRelay, tempDir, type Device, type TestRelay } from './helpers/programs.js';
import { needPackage } from './helpers/system-package.js';
import { waitFor } from './helpers/wait.js';

const EXAMPLE = fileURLToPath(new URL('../examples/federated', import.meta.url));
// The example's client, held while `hold-N` is in its data folder (N the round: the test lets
// each round end when it has seen it run), and with federated.test.ts's `fault` hook.
const COMMAND = 'while [ -f "$OUTPOST_DATA_DIR/hold-$OUTPOST_ROUND" ]; do sleep 0.1; done; FAULT="$(cat "$OUTPOST_DATA_DIR/fault" 2>/dev/null)" node train.js';

interface Job {
  id: string;
  state: string;
  model: { name: string; version: number; deploymentId?: string } | null;
  rounds: Array<{ round: number; attempt: number; state: string; participants: Array<{ deviceId: string; numExamples: number }>; metrics: Record<string, number> }>;
}

async function logIn(page: Page, relay: TestRelay): Promise<void> {
  await page.goto(relay.httpUrl);
  await page.locator('#login').waitFor();
  await page.fill('#token', relay.token);
  await page.click('#login button[type=submit]');
  await page.locator('#whoami .name').waitFor();
  await page.locator('#conn.live').waitFor();
}

/** The text of a rounds-table row's cells, by class or metric name ('' for a column not there). */
async function cells(page: Page, round: number, attempt = 1): Promise<Record<string, string>> {
  const row = page.locator(`#job-rounds-table tr[data-round="${round}"][data-attempt="${attempt}"]`);
  await row.waitFor();
  const out: Record<string, string> = {};
  for (const [k, selector] of [...['asked', 'averaged', 'examples', 'dropped'].map((c) => [c, `td.${c}`]), ...['loss', 'accuracy'].map((m) => [m, `td[data-metric="${m}"]`])] as Array<[string, string]>) {
    const cell = row.locator(selector);
    out[k] = (await cell.count()) ? ((await cell.textContent()) ?? '').trim() : '';
  }
  return out;
}

const shown = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));

t.test('the dashboard shows federated jobs round by round', { skip: needPackage(CHROMIUM, 'chromium') }, async (t) => {
  const relay = await startRelay(t);
  const data = tempDir(t, 'federated-data');
  execFileSync(process.execPath, [join(EXAMPLE, 'make-data.js'), data, '--devices', '2'], { stdio: 'ignore' });
  const initial = join(tempDir(t, 'initial'), 'initial.onnx');
  execFileSync(process.execPath, [join(EXAMPLE, 'init.js'), initial], { stdio: 'ignore' });
  t.equal((await relay.cli('models', 'push', initial, '--name', 'fed')).code, 0);

  // device-1 has 150 rows, device-2 200 (make-data.js).
  const shard = (i: number) => join(data, `device-${i + 1}`);
  const devices: Device[] = [];
  for (const [i, name] of ['fed-a', 'fed-b'].entries()) {
    const d = await enrollDevice(t, relay, name, 'pool=fed');
    t.equal((await relay.cli('targets', 'attach', d.deviceId, '--training')).code, 0);
    await startAgent(t, d, ['--accept-training', '--dataset', `local=${shard(i)}`]);
    devices.push(d);
  }
  const ids = devices.map((d) => d.deviceId);
  const bothOnline = () => waitFor('both clients online', async () => (await relay.api<{ devices: Array<{ id: string; online: boolean }> }>('GET', '/v1/devices')).body.devices.filter((d) => ids.includes(d.id) && d.online).length === 2 || undefined, 30_000);
  await bothOnline();
  const hold = (round: number) => [0, 1].forEach((i) => writeFileSync(join(shard(i), `hold-${round}`), ''));
  const release = (round: number) => [0, 1].forEach((i) => rmSync(join(shard(i), `hold-${round}`), { force: true }));
  t.teardown(() => [1, 2].forEach(release));
  const submit = (extra: string[]) => relay.cli('jobs', 'submit', EXAMPLE, '--federated', '--target', 'pool=fed', '--initial-model', 'fed', '--dataset', 'local', '--command', COMMAND, '--json', ...extra);
  const job = async (id: string) => (await relay.api<Job>('GET', `/v1/jobs/${id}`)).body;

  const browser = await launchBrowser(relay);
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await logIn(page, relay);
  /** The first job's rollout of its final model. */
  let rollout: string | undefined;
  const round = (n: number, state: string) => page.locator(`#job-rounds-table tr[data-round="${n}"][data-attempt="1"][data-state="${state}"]`);

  await t.test('a federated job in the table, then on its page round by round, live', async (t) => {
    hold(1);
    hold(2);
    await page.click('nav a[data-view=jobs]');
    await page.locator('#jobs-table').waitFor();
    const res = await submit(['--rounds', '2', '--min-clients', '2', '--register-model', 'fed', '--deploy-selector', 'pool=fed']);
    t.equal(res.code, 0, res.stderr);
    const id = (JSON.parse(res.stdout) as Job).id;
    const row = page.locator(`#job-${id}`);
    await row.locator('.badge.federated', { hasText: 'federated' }).waitFor();
    await row.locator('.job-round', { hasText: 'round 1 of 2' }).waitFor();
    t.match(await row.textContent(), /federated pool=fed/, 'the table says the job is federated, beside its target');

    await page.click(`#job-${id} a`);
    await page.locator('#job-rounds-settings', { hasText: 'fedavg from fed:1, 2 rounds; each needs at least 2 clients, asks a fraction 1 of those free, and closes 10m 00s after it starts' }).waitFor();
    t.pass('the settings: strategy, initial model, rounds, minimum clients, fraction, deadline');
    // Anything the page shows from here on came without a reload: a reload would lose this.
    await page.evaluate('window.outpostTestMark = "still the same page"');

    await round(1, 'running').waitFor();
    await page.locator('#job-round-countdown', { hasText: /^round 1 running on 2 clients \(0 done\): closes in \d+m \d\ds at the latest$/ }).waitFor();
    t.pass('the running round and its deadline counting down');
    const before = await page.locator('#job-round-countdown').textContent();
    await waitFor('the countdown to move', async () => (await page.locator('#job-round-countdown').textContent()) !== before || undefined, 5000);
    t.same(await cells(page, 1), { asked: '2', averaged: '-', examples: '-', dropped: '-', loss: '', accuracy: '' }, 'asked 2; nothing averaged yet');
    t.equal(await page.locator('#job-rounds-table tr[data-round="2"]').count(), 0, 'round 2 not begun');
    await page.locator('#job-rounds-model', { hasText: 'The final model is registered when round 2 is averaged.' }).waitFor();

    release(1);
    await round(1, 'aggregated').waitFor();
    await round(2, 'running').waitFor();
    t.pass('round 1 averaged, then round 2 running, live');
    if (process.env.OUTPOST_SCREENSHOTS) await page.screenshot({ fullPage: true, path: join(process.env.OUTPOST_SCREENSHOTS, 'federated-running.png') });
    await page.locator('#job-rounds-progress', { hasText: 'round 2 of 2 · 1 averaged' }).waitFor();
    await page.locator('#job-round-countdown', { hasText: /^round 2 running on 2 clients/ }).waitFor();
    await page.locator('#job-round-chart canvas').first().waitFor();
    t.pass('the chart of the rounds\' averaged metrics, from round 1 on');

    release(2);
    await round(2, 'aggregated').waitFor();
    await page.locator('#job-detail h1 .badge', { hasText: 'succeeded' }).waitFor();
    t.ok(await page.locator('#job-round-countdown').isHidden(), 'no countdown once no round runs');
    const done = await job(id);
    t.equal(done.state, 'succeeded');
    t.ok(done.model?.deploymentId, 'the relay made a rollout of the final model');
    rollout = done.model!.deploymentId;
    await page.locator('#job-rounds-model', { hasText: `final model fed:${done.model!.version}, rolled out: deployment ${done.model!.deploymentId}` }).waitFor();
    t.equal(await page.locator('#job-rounds-deployment').getAttribute('href'), `#/deployments/${done.model!.deploymentId}`, 'a link to the rollout');
    await page.locator('#job-model', { hasText: `registered fed:${done.model!.version}, rolled out: ${done.model!.deploymentId}` }).waitFor();
    t.equal(await page.evaluate('window.outpostTestMark'), 'still the same page', 'every round came in without a reload');

    t.same(await page.locator('#job-rounds-table tbody tr').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-round'), r.getAttribute('data-state')])), [['1', 'aggregated'], ['2', 'aggregated']], 'both rounds, averaged');
    for (const r of done.rounds) {
      t.same(await cells(page, r.round), { asked: '2', averaged: '2', examples: '350', dropped: '0', loss: shown(r.metrics.loss!), accuracy: shown(r.metrics.accuracy!) }, `round ${r.round}: 2 averaged, 150 + 200 examples, the averaged loss and accuracy`);
    }
    t.ok(await page.locator('#job-rounds-dropped').isHidden(), 'nobody dropped');
    t.ok(await page.locator('#job-chart').isHidden(), 'no chart over steps: a federated job\'s is over rounds');
    await page.locator('#job-rounds-progress', { hasText: 'round 2 of 2 · 2 averaged' }).waitFor();
    if (process.env.OUTPOST_SCREENSHOTS) await page.screenshot({ fullPage: true, path: join(process.env.OUTPOST_SCREENSHOTS, 'federated-job.png') });

    await page.click('#job-rounds-deployment');
    await page.locator('#deployment-detail h1', { hasText: `fed:${done.model!.version}` }).waitFor();
    t.pass('the link opens the rollout');
    await page.click('nav a[data-view=jobs]');
    await page.locator(`#job-${id}[data-state="succeeded"] .job-round`, { hasText: 'round 2 of 2' }).waitFor();
    t.pass('the table: round 2 of 2, succeeded');
  });

  await t.test('a client whose update was refused is named, with why', async (t) => {
    // The rollout over and both clients online (one loading a model may miss heartbeats), so the round asks both.
    if (rollout) await waitFor('the rollout to end', async () => (await relay.api<{ state: string }>('GET', `/v1/deployments/${rollout}`)).body.state === 'succeeded' || undefined, 60_000);
    await bothOnline();
    writeFileSync(join(shard(1), 'fault'), 'nan');
    t.teardown(() => rmSync(join(shard(1), 'fault'), { force: true }));
    const res = await submit(['--rounds', '1', '--min-clients', '1']);
    t.equal(res.code, 0, res.stderr);
    const id = (JSON.parse(res.stdout) as Job).id;
    const ended = await waitFor(`job ${id} to end`, async () => ((j) => (j.state === 'succeeded' || j.state === 'failed' ? j : undefined))(await job(id)), 60_000, 200);
    t.same(ended.rounds.map((r) => [r.round, r.attempt, r.state, r.participants.map((p) => p.deviceId)]), [[1, 1, 'aggregated', [ids[0]]]], 'the relay averaged fed-a\'s update alone');
    await page.click(`#job-${id} a`);
    await round(1, 'aggregated').waitFor();
    const { asked, averaged, examples, dropped: count } = await cells(page, 1);
    t.same({ asked, averaged, examples, dropped: count }, { asked: '2', averaged: '1', examples: '150', dropped: '1' }, 'fed-a averaged alone (150 examples); fed-b dropped');
    const dropped = page.locator(`#job-rounds-dropped li[data-round="1"][data-device="${ids[1]}"]`);
    await dropped.waitFor();
    t.match(await dropped.textContent(), /^round 1: fed-b: update refused: initializer W has a non-finite value \(NaN\)/, 'by its name, with the relay\'s reason');
    t.equal(await dropped.locator('a').getAttribute('href'), `#/devices/${ids[1]}`, 'linked to its page');
    await page.locator('#job-detail h1 .badge', { hasText: 'succeeded' }).waitFor();
    if (process.env.OUTPOST_SCREENSHOTS) await page.screenshot({ fullPage: true, path: join(process.env.OUTPOST_SCREENSHOTS, 'federated-dropped.png') });
  });

  await t.test('a round waiting for clients says why, until it starts', async (t) => {
    // fed-b busy with another job (held at a gate of its own): a round needing both waits.
    writeFileSync(join(shard(1), 'hold-busy'), '');
    t.teardown(() => rmSync(join(shard(1), 'hold-busy'), { force: true }));
    const busy = await relay.cli('jobs', 'submit', EXAMPLE, '--target', ids[1]!, '--dataset', 'local', '--command', 'while [ -f "$OUTPOST_DATA_DIR/hold-busy" ]; do sleep 0.1; done', '--json');
    t.equal(busy.code, 0, busy.stderr);
    const busyId = (JSON.parse(busy.stdout) as Job).id;
    await waitFor('fed-b busy', async () => (await relay.api<{ runs: Array<{ state: string }> }>('GET', `/v1/jobs/${busyId}`)).body.runs.some((r) => r.state === 'running') || undefined, 30_000);
    const res = await submit(['--rounds', '1', '--min-clients', '2']);
    t.equal(res.code, 0, res.stderr);
    const id = (JSON.parse(res.stdout) as Job).id;
    // The relay says why only when asked (no stream message carries it): the page reads it on open.
    await waitFor('the relay to say the round waits', async () => (await relay.api<{ federated: { waiting: string | null } }>('GET', `/v1/jobs/${id}`)).body.federated.waiting || undefined, 30_000);
    await page.click('nav a[data-view=jobs]');
    await page.locator(`#job-${id} .job-round`, { hasText: 'round 1 of 1' }).waitFor();
    await page.click(`#job-${id} a`);
    await page.locator('#job-rounds-waiting', { hasText: /^waiting round 1 waits for clients: 1 of the 2 it needs are free/ }).waitFor();
    t.pass('the waiting reason, from the relay');
    await page.locator('#job-rounds-table .empty', { hasText: 'No round has started yet.' }).waitFor();
    rmSync(join(shard(1), 'hold-busy'));
    await round(1, 'aggregated').waitFor();
    t.ok(await page.locator('#job-rounds-waiting').isHidden(), 'no longer waiting once its round began');
    t.same(await cells(page, 1).then(({ asked, averaged }) => ({ asked, averaged })), { asked: '2', averaged: '2' }, 'both clients, once fed-b was free');
  });

  t.same(errors, [], 'no script errors');
});
