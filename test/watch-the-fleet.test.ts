// Operators watch the fleet live: the WebSocket stream (snapshot, then changes, resumable with
// ?since=), health history, Prometheus metrics, and `fleet watch --json`.

import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { StreamMessage } from '@outpost/shared';
import { FIXTURES, RELAY_BIN, enrollDevice, startAgent, startRelay } from './helpers/programs.js';
import { openStream, refusedUpgrade } from './helpers/stream.js';
import { waitFor } from './helpers/wait.js';
import { TEST_STORE } from './helpers/test-store.js';

t.test('the fleet stream, health history and metrics', async (t) => {
  const relay = await startRelay(t);
  const d = await enrollDevice(t, relay, 'watched', 'site=lab');
  const streamUrl = `${relay.httpUrl.replace(/^http/, 'ws')}/v1/fleet/stream`;

  await t.test('a missing or wrong token is refused before the upgrade', async (t) => {
    t.equal(await refusedUpgrade(streamUrl), 401);
    t.equal(await refusedUpgrade(`${streamUrl}?token=opa_000000000000_wrongwrongwrongwrongwrong`), 401);
    t.equal(await refusedUpgrade(streamUrl, { authorization: `Bearer ${d.secret}` }), 401, 'a device secret is not an API token');
  });

  const stream = await openStream(relay.httpUrl, relay.token);
  t.teardown(() => stream.close());
  let agent: Awaited<ReturnType<typeof startAgent>>;
  const outer = t; // the agent outlives the subtest that starts it

  await t.test('snapshot first, then each change, with growing seqs', async (t) => {
    const snap = await stream.next('snapshot');
    t.match(snap.devices, [{ id: d.deviceId, name: 'watched', labels: { site: 'lab' }, online: false }]);
    t.same(snap.jobs, []);
    agent = await startAgent(outer, d);
    await stream.next('device.status', (m) => m.deviceId === d.deviceId && m.online);
    const health = await stream.next('device.health', (m) => m.deviceId === d.deviceId);
    t.ok(health.health.cpuPercent >= 0);
    t.ok(health.health.memory.rssBytes > 0);

    await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
    t.equal((await relay.cli('deploy', 'linear', '--device', d.deviceId)).code, 0);
    const created = await stream.next('deployment.created');
    t.match(created.deployment, { model: 'linear', version: 1, state: 'in-progress', devices: [{ deviceId: d.deviceId, state: 'pending' }] });
    await stream.next('deployment.progress', (m) => m.state === 'downloading');
    await stream.next('deployment.progress', (m) => m.state === 'loading');
    // The device's report comes first, then what it means for the deployment.
    await stream.next('device.models', (m) => m.models.some((x) => x.name === 'linear' && x.state === 'serving'));
    await stream.next('deployment.progress', (m) => m.state === 'serving');
    await stream.next('deployment.state', (m) => m.deploymentId === created.deployment.id && m.state === 'succeeded');

    const seqs = stream.messages.map((m) => m.seq);
    t.same(seqs, [...seqs].sort((a, b) => a - b), 'seq only grows');
    t.equal(new Set(seqs.slice(1)).size, seqs.length - 1, 'no seq repeats');
    t.ok(stream.messages.every((m) => typeof m.type === 'string' && !Number.isNaN(Date.parse(m.ts))), 'every message has a type and a timestamp');
  });

  await t.test('?since= resumes where a client left off; too old gets a snapshot', async (t) => {
    // A copy: the live array keeps growing with heartbeats while the resumed stream opens.
    const all = [...stream.messages];
    const since = all[all.length - 4]!.seq;
    const resumed = await openStream(relay.httpUrl, relay.token, `?since=${since}`);
    t.teardown(() => resumed.close());
    await waitFor('the missed messages', () => resumed.messages.length >= 3);
    t.same(resumed.messages.slice(0, 3).map((m) => m.seq), all.slice(-3).map((m) => m.seq), 'exactly the ones after since');
    t.notOk(resumed.messages.some((m) => m.type === 'snapshot'));
    const old = await openStream(relay.httpUrl, `${relay.token}`, '?since=5');
    t.teardown(() => old.close());
    t.equal((await old.next('snapshot')).devices.length, 1, 'outside the window: a fresh snapshot');
  });

  await t.test('health history and metrics', async (t) => {
    await agent.infer('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    const series = await waitFor('a few heartbeats in the history', async () => {
      const res = await relay.api<{ points: Array<{ ts: number; cpu: number; memUsed: number; reqRate: number; p50: number | null }> }>('GET', `/v1/devices/${d.deviceId}/health`);
      return res.body.points.length >= 3 && res.body.points.some((p) => p.reqRate > 0) ? res.body : undefined;
    });
    t.ok(series.points.every((p, i) => i === 0 || p.ts >= series.points[i - 1]!.ts), 'oldest first');
    t.ok(series.points.some((p) => p.p50 !== null), 'latency is there once requests came');
    const week = await relay.api<{ points: unknown[] }>('GET', `/v1/devices/${d.deviceId}/health?range=7d`);
    t.ok(week.body.points.length >= series.points.length);
    t.equal((await relay.api('GET', `/v1/devices/${d.deviceId}/health?range=forever`)).status, 400);

    t.equal((await relay.fetch(`${relay.httpUrl}/metrics`)).status, 401, 'metrics need a token');
    const text = await (await relay.fetch(`${relay.httpUrl}/metrics`, { headers: { authorization: `Bearer ${relay.token}` } })).text();
    t.match(text, /^outpost_devices\{online="true"\} 1$/m);
    t.match(text, /^outpost_deployments\{state="succeeded"\} 1$/m);
    t.match(text, /^outpost_stream_clients [1-9]/m);
    t.match(text, /^outpost_mqtt_messages_in_total [1-9]/m);
    t.match(text, /^outpost_mqtt_messages_out_total [1-9]/m);
    t.match(text, /^outpost_http_request_duration_seconds_count\{method="GET",route="\/v1\/devices\/:id\/health",status="200"\} [1-9]/m);

    const agentMetrics = await (await fetch(`${agent.httpUrl}/metrics`)).text();
    t.match(agentMetrics, /^outpost_agent_inference_requests_total\{model="linear"\} 1$/m);
    t.match(agentMetrics, /^outpost_agent_inference_duration_seconds_count\{model="linear"\} 1$/m);
    t.match(agentMetrics, /^outpost_agent_model_load_seconds_count\{model="linear"\} 1$/m);
    t.match(agentMetrics, /^outpost_agent_process_resident_memory_bytes \d+/m);
  });

  await t.test('fleet watch --json prints the stream and reconnects after a relay restart', async (t) => {
    const watch = spawn(process.execPath, [RELAY_BIN, 'fleet', 'watch', '--json', '--relay', relay.httpUrl, '--ca', relay.caFile!, '--token', relay.token], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => watch.kill('SIGKILL'));
    const lines: StreamMessage[] = [];
    let stderr = '';
    let buf = '';
    watch.stdout.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const p of parts) lines.push(JSON.parse(p) as StreamMessage);
    });
    watch.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    await waitFor('the snapshot', () => lines.some((m) => m.type === 'snapshot'));
    t.equal(lines[0]!.type, 'snapshot');
    await relay.cli('devices', 'label', d.deviceId, 'zone=b');
    await waitFor('the label change', () => lines.some((m) => m.type === 'device.updated' && m.device.labels.zone === 'b'));

    await relay.stop();
    // Counted before the new relay starts: its snapshot may arrive before the notice is seen.
    const before = lines.length;
    const again = await startRelay(t, { dataDir: relay.dataDir, extraArgs: ['--http-port', new URL(relay.httpUrl).port, '--mqtt-port', new URL(relay.mqttUrl).port] });
    await waitFor('a reconnect notice', () => /reconnecting/.test(stderr));
    // On SQLite the new relay numbers from its start: the client is past its window and gets a
    // snapshot. On PostgreSQL the store numbers events: the client resumes where it was.
    if (TEST_STORE === 'sqlite') await waitFor('a fresh snapshot from the new relay', () => lines.slice(before).some((m) => m.type === 'snapshot'));
    await again.cli('devices', 'label', d.deviceId, 'zone=c');
    await waitFor('events from the new relay', () => lines.some((m) => m.type === 'device.updated' && m.device.labels.zone === 'c'));
    const seqs = lines.map((m) => m.seq);
    t.same(seqs, [...seqs].sort((a, b) => a - b), 'seq keeps growing across the restart');
  });
});
