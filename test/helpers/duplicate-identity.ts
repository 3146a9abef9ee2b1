// Two agents running with one identity, as after cloning a device's SD card: the relay marks the
// device duplicate-connection (API, CLI, stream, dashboard), the agent whose connection is taken
// says so in one line and backs off, a finished deployment stays finished, and with one agent
// stopped the mark clears by itself. Run on the embedded broker and on Mosquitto
// (test/duplicate-identity*.test.ts).

import type { Test } from 'tap';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import type { DeviceProblem, StreamMessage } from '@outpost/shared';
import { AGENT_BIN, FIXTURES, enrollDevice, runCli, startAgent, tempDir, type Device, type TestAgent, type TestRelay } from './programs.js';
import { openStream } from './stream.js';
import { holdsFor, waitFor } from './wait.js';
import type { Page } from 'playwright-core';
import { launchBrowser } from './browser.js';
import mqtt from 'mqtt';

export { CHROMIUM } from './browser.js';

const DUPLICATE_LINE = "another agent is connected with this device's identity (device.json copied?): backing off; stop the other agent or enroll this one as a new device";

interface DeviceView {
  id: string;
  online: boolean;
  problem: DeviceProblem | null;
}
interface DeploymentView {
  id: string;
  state: string;
  devices: Array<{ deviceId: string; state: string }>;
}

/** The dashboard, logged in and following the stream (headless Chromium). */
export async function openDashboard(t: Test, relay: TestRelay): Promise<Page> {
  const browser = await launchBrowser(relay);
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(relay.httpUrl);
  await page.fill('#token', relay.token);
  await page.click('#login button[type=submit]');
  await page.locator('#conn.live').waitFor();
  return page;
}

export async function twoAgentsOneIdentity(t: Test, relay: TestRelay, opts: { dashboard?: Page; mosquitto?: string } = {}): Promise<void> {
  const { dashboard } = opts;
  const device = await enrollDevice(t, relay, 'device1');
  // The SD card is cloned right after enrollment: the copy has the identity, not the model.
  const copy = { ...device, dataDir: tempDir(t, 'agent-copy') };
  cpSync(device.dataDir, copy.dataDir, { recursive: true });
  const first = await startAgent(t, device);

  t.equal((await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear')).code, 0);
  const deploy = await relay.cli('deploy', 'linear', '--device', 'device1', '--wait', '--json');
  t.equal(deploy.code, 0, deploy.stderr);
  const deployment = JSON.parse(deploy.stdout) as DeploymentView;
  t.equal(deployment.state, 'succeeded');

  const stream = await openStream(relay.httpUrl, relay.token);
  t.teardown(() => stream.close());
  const second = await startAgent(t, copy);
  const agents: Array<{ agent: TestAgent; device: Device }> = [{ agent: first, device }, { agent: second, device: copy }];
  const connected = async (d: Device) => (JSON.parse((await runCli(AGENT_BIN, ['status', '--json', '--data-dir', d.dataDir])).stdout) as { connected: boolean }).connected;
  const show = async () => (await relay.api<DeviceView>('GET', `/v1/devices/${device.deviceId}`)).body;

  await t.test('the relay marks the device duplicate-connection', async (t) => {
    const marked = await waitFor('the device marked duplicate-connection', async () => ((await show()).problem?.kind === 'duplicate-connection' ? (await show()).problem! : undefined), 30_000);
    t.ok(marked.takeovers >= 3, `${marked.takeovers} takeovers counted`);
    t.match(marked.message, /^two agents are using this device's identity \(\d+ takeovers in the last minute\): stop one, or enroll the copy as a new device/);

    const cli = await relay.cli('devices', 'show', 'device1');
    t.equal(cli.code, 0, cli.stderr);
    t.match(cli.stdout, /^problem {4}duplicate-connection: two agents are using this device's identity \(\d+ takeovers in the last minute\): stop one, or enroll the copy as a new device/m);
    const list = await relay.cli('devices', 'list');
    t.match(list.stdout, /PROBLEM/);
    t.match(list.stdout.split('\n').find((l) => l.startsWith(device.deviceId)) ?? '', /duplicate-connection/);

    const event = await stream.next('device.problem', (m) => m.deviceId === device.deviceId && m.problem !== null);
    t.equal(event.problem!.kind, 'duplicate-connection', 'on the fleet stream');
    t.equal(relay.logs.filter((l) => /two agents are using this device's identity/.test(String(l.msg))).length, 1, 'the relay says so once');
  });

  await t.test('the dashboard shows it', { skip: dashboard ? false : 'no dashboard in this run' }, async (t) => {
    if (dashboard) {
      const row = dashboard.locator(`#device-${device.deviceId}[data-problem="duplicate-connection"]`);
      await row.waitFor();
      t.match(await row.locator('.badge.duplicate-connection').getAttribute('title'), /^two agents are using this device's identity/, 'the badge says what to do');
      await row.locator('a.device').click();
      t.match(await dashboard.locator('#device-problem').textContent(), /stop one, or enroll the copy as a new device/, 'and the device page');
      await dashboard.goBack();
    }
  });

  await t.test('the agent whose connection was taken says so once and backs off', async (t) => {
    const told = await waitFor('an agent that tells why it backs off', () => agents.find((a) => a.agent.logs.some((l) => l.msg === DUPLICATE_LINE)), 30_000);
    const line = told.agent.logs.find((l) => l.msg === DUPLICATE_LINE)!;
    t.ok((line.retryInS as number) >= 15, `it waits ${line.retryInS as number} s, not a second`);
    t.equal(told.agent.logs.filter((l) => l.msg === DUPLICATE_LINE).length, 1, 'one line');
  });

  await t.test('the finished deployment stays succeeded', async (t) => {
    const d = (await relay.api<DeploymentView>('GET', `/v1/deployments/${deployment.id}`)).body;
    t.equal(d.state, 'succeeded');
    t.same(d.devices.map((x) => x.state), ['serving']);
    const regressions = stream.messages.filter((m: StreamMessage) => (m.type === 'deployment.state' || m.type === 'deployment.progress') && m.deploymentId === deployment.id);
    t.same(regressions, [], 'no step of it went back while the copies took turns');
  });

  await t.test('with one agent stopped, the mark clears by itself', async (t) => {
    // The one backing off (`outpost-agent status` says it is not connected) is stopped.
    const away = await waitFor('an agent away', async () => {
      for (const a of agents) if (!(await connected(a.device))) return a;
      return undefined;
    }, 40_000);
    await away.agent.stop();
    await waitFor('the mark cleared', async () => ((await show()).problem === null ? true : undefined), 30_000);
    await stream.next('device.problem', (m) => m.deviceId === device.deviceId && m.problem === null);
    await holdsFor('one agent, online and unmarked', async () => {
      const d = await show();
      return d.online && d.problem === null;
    }, 2000, 200);
    t.notMatch((await relay.cli('devices', 'show', 'device1')).stdout, /problem/);
    const stays = agents.find((a) => a !== away)!.agent;
    await waitFor('the agent told the notice is gone', () => stays.logs.some((l) => l.msg === 'the relay no longer sees another agent with this identity') || undefined);
  });

  // Mosquitto's ACL lets a device write anywhere under its own prefix, its notice included
  // (the embedded broker refuses it): what the agent and the relay make of a notice not the relay's.
  await t.test('a notice the relay does not stand by is cleared; the agent shrugs off odd ones', { skip: opts.mosquitto ? false : 'the embedded broker refuses a device publish there' }, async (t) => {
    if (!opts.mosquitto) return;
    const stays = agents.find((a) => a.agent.proc.exitCode === null && a.agent.proc.signalCode === null)!.agent;
    const topic = `outpost/v1/devices/${device.deviceId}/notice`;
    const client = await mqtt.connectAsync(opts.mosquitto, { clientId: `probe-${device.deviceId}`, username: device.deviceId, reconnectPeriod: 0 });
    t.teardown(() => client.endAsync());
    const seen: string[] = [];
    client.on('message', (_topic, payload) => seen.push(payload.toString()));
    await client.subscribeAsync(topic, { qos: 1 });
    await client.publishAsync(topic, 'not json', { qos: 1 });
    await waitFor('the agent ignores a malformed notice', () => stays.logs.some((l) => l.msg === 'malformed notice ignored') || undefined);
    await waitFor('the relay clears that one too', () => (seen.includes('') ? true : undefined));
    seen.length = 0;
    await client.publishAsync(topic, JSON.stringify({ kind: 'mystery', since: 1, message: 'a kind from a later relay' }), { qos: 1, retain: true });
    await waitFor('the agent logs a kind it does not know', () => stays.logs.some((l) => l.msg === 'the relay says: a kind from a later relay') || undefined);
    // Its retained copy comes back to the relay, which is not marking the device: it clears it.
    await waitFor('the relay clears the notice', () => (seen.includes('') ? true : undefined));
    t.ok(seen.indexOf('') > seen.findIndex((m) => m.includes('mystery')), 'after it was published');
    t.ok(stays.proc.exitCode === null, 'the agent runs on');
  });
}

