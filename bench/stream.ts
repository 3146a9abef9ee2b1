// bench/stream: N simulated devices (real MQTT connections with real credentials) heartbeat
// and toggle their status against a real relay process, while one client follows the fleet
// stream. Prints the delay from a device's message to the stream event (p50/p99), and the
// relay's CPU and memory over the run.
//
//   npx tsx bench/stream.ts [--devices 1000] [--heartbeat 2] [--seconds 30] [--toggles 20]

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { WebSocket } from 'ws';
import type { HealthMessage, StreamMessage } from '@outpost/shared';
import { cpuSeconds, memory, quantile } from './proc-stats.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    heartbeat: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '30' },
    toggles: { type: 'string', default: '20' },
  },
});
const N = Number(values.devices);
const HEARTBEAT_S = Number(values.heartbeat);
const SECONDS = Number(values.seconds);
const TOGGLES_PER_S = Number(values.toggles);
const RELAY_BIN = new URL('../packages/relay/dist/cli/main.js', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'outpost-bench-stream-'));
// --insecure: the stream's fan-out is what is measured, not TLS.
const relay = spawn(process.execPath, [RELAY_BIN, 'start', '--insecure', '--data-dir', dir, '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0'], {
  stdio: ['ignore', 'ignore', 'ignore'],
  env: { ...process.env, OUTPOST_LOG_LEVEL: 'warn' },
});
const cleanup = () => {
  relay.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);

async function waitForFile(file: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${file} never appeared`);
}
const runtime = JSON.parse(await waitForFile(join(dir, 'relay.json'))) as { httpUrl: string; mqttUrl: string };
const token = (await waitForFile(join(dir, 'admin.token'))).trim();
const post = async <T>(path: string, body: unknown, bearer = token): Promise<T> => {
  const res = await fetch(`${runtime.httpUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
};

// Enroll the simulated devices through the real API.
const t0 = performance.now();
const devices: Array<{ deviceId: string; secret: string }> = [];
for (let i = 0; i < N; i += 50) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(50, N - i) }, async (_, j) => {
      const { token: enrollToken } = await post<{ token: string }>('/v1/tokens/enroll', {});
      return post<{ deviceId: string; secret: string }>('/v1/enroll', { name: `sim-${i + j}` }, enrollToken);
    }),
  );
  devices.push(...batch);
}
const enrollS = (performance.now() - t0) / 1000;

// The stream client, measuring delays.
const healthDelays: number[] = [];
const statusDelays: number[] = [];
const statusSent = new Map<string, number>();
let streamMessages = 0;
const ws = new WebSocket(`${runtime.httpUrl.replace('http', 'ws')}/v1/fleet/stream`, { headers: { authorization: `Bearer ${token}` } });
let measuring = false;
ws.on('message', (data) => {
  const now = Date.now();
  const m = JSON.parse(data.toString()) as StreamMessage;
  streamMessages++;
  if (!measuring) return;
  if (m.type === 'device.health') healthDelays.push(now - m.health.ts);
  else if (m.type === 'device.status') {
    const key = `${m.deviceId}:${m.online}`;
    const sent = statusSent.get(key);
    if (sent !== undefined) {
      statusDelays.push(now - sent);
      statusSent.delete(key);
    }
  }
});
await new Promise((r) => ws.once('open', r));

// Connect every device.
const t1 = performance.now();
const clients: MqttClient[] = await Promise.all(
  devices.map(
    (d) =>
      new Promise<MqttClient>((resolve, reject) => {
        const c = mqtt.connect(runtime.mqttUrl, { clientId: d.deviceId, username: d.deviceId, password: d.secret, reconnectPeriod: 0, keepalive: 60 });
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      }),
  ),
);
const connectS = (performance.now() - t1) / 1000;
const topic = (i: number, leaf: string) => `outpost/v1/devices/${devices[i]!.deviceId}/${leaf}`;
for (let i = 0; i < N; i++) clients[i]!.publish(topic(i, 'status'), JSON.stringify({ online: true, ts: Date.now() }), { qos: 1, retain: true });

const health = (): HealthMessage => ({
  ts: Date.now(),
  uptimeS: 100,
  cpuPercent: Math.random() * 100,
  memory: { rssBytes: 80e6, usedBytes: 1e9, totalBytes: 4e9 },
  disk: { freeBytes: 1e10, totalBytes: 3e10 },
  models: { m: { requests: 10, errors: 0, p50Ms: 1, p99Ms: 2 } },
});

// Heartbeats spread evenly over the interval; status toggles at a fixed rate.
measuring = true;
const cpu0 = cpuSeconds(relay.pid!);
const start = Date.now();
const timers: NodeJS.Timeout[] = [];
const perTick = Math.max(1, Math.round((N / HEARTBEAT_S) / 100));
let next = 0;
let heartbeatsSent = 0;
timers.push(
  setInterval(() => {
    for (let k = 0; k < perTick; k++) {
      const i = next++ % N;
      clients[i]!.publish(topic(i, 'health'), JSON.stringify(health()), { qos: 0 });
      heartbeatsSent++;
    }
  }, 10),
);
const online = new Array<boolean>(N).fill(true);
timers.push(
  setInterval(() => {
    const i = Math.floor(Math.random() * N);
    online[i] = !online[i];
    const ts = Date.now();
    statusSent.set(`${devices[i]!.deviceId}:${online[i]}`, ts);
    clients[i]!.publish(topic(i, 'status'), JSON.stringify({ online: online[i], ts }), { qos: 1, retain: true });
  }, 1000 / TOGGLES_PER_S),
);
let peak = 0;
timers.push(setInterval(() => (peak = Math.max(peak, memory(relay.pid!).rssMiB)), 500));
await new Promise((r) => setTimeout(r, SECONDS * 1000));
for (const t of timers) clearInterval(t);
measuring = false;
const elapsed = (Date.now() - start) / 1000;
const cpu = ((cpuSeconds(relay.pid!) - cpu0) / elapsed) * 100;
const mem = memory(relay.pid!);

healthDelays.sort((a, b) => a - b);
statusDelays.sort((a, b) => a - b);
const row = (name: string, xs: number[]) => `${name.padEnd(22)} ${String(xs.length).padStart(7)}  p50 ${quantile(xs, 0.5).toFixed(0).padStart(4)} ms  p99 ${quantile(xs, 0.99).toFixed(0).padStart(4)} ms  max ${quantile(xs, 1).toFixed(0).padStart(5)} ms`;
process.stdout.write(
  [
    `bench/stream: ${N} devices, heartbeat every ${HEARTBEAT_S}s (${(N / HEARTBEAT_S).toFixed(0)}/s), ${TOGGLES_PER_S} status toggles/s, ${SECONDS}s, one stream client`,
    `enroll ${N} devices over HTTP: ${enrollS.toFixed(1)} s; connect ${N} MQTT clients: ${connectS.toFixed(2)} s`,
    row('heartbeat → stream', healthDelays),
    row('status toggle → stream', statusDelays),
    `heartbeats sent ${heartbeatsSent} (${(heartbeatsSent / elapsed).toFixed(0)}/s), heartbeat events received ${healthDelays.length}; stream messages in all: ${streamMessages}`,
    `relay CPU ${cpu.toFixed(0)}% of one core; RSS ${mem.rssMiB.toFixed(0)} MiB (peak ${Math.max(peak, mem.peakMiB).toFixed(0)} MiB)`,
    '',
  ].join('\n'),
);
ws.close();
await Promise.all(clients.map((c) => c.endAsync()));
process.exit(0);
