// bench/fleet: N simulated devices in a few processes against one real relay. Prints the time
// for all to connect, heartbeats per second ingested, the time from `deploy` until every device
// of a 1,000-device selector reports a 5 MB model serving, and the relay's CPU and peak RSS.
//
//   npx tsx bench/fleet/run.ts [--devices 1000] [--rollout 1000] [--workers 4] [--heartbeat 10] [--model-mb 5]

import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, memory } from '../proc-stats.js';
import { buildModel, seededRandom } from '../../test/fixtures/onnx-builder.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    rollout: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '4' },
    heartbeat: { type: 'string', default: '10' },
    'model-mb': { type: 'string', default: '5' },
    'max-downloads': { type: 'string', default: '64' },
    /** Where simulated devices keep their model caches: every device writes its own copy. */
    'cache-dir': { type: 'string', default: tmpdir() },
    /** Writes V8 CPU profiles of the relay and the simulator processes into this folder. */
    profile: { type: 'string' },
  },
});
const N = Number(values.devices);
const ROLLOUT = Math.min(N, Number(values.rollout));
const WORKERS = Number(values.workers);
const HEARTBEAT_MS = Number(values.heartbeat) * 1000;
const MODEL_MB = Number(values['model-mb']);
const RELAY_BIN = new URL('../../packages/relay/dist/cli/main.js', import.meta.url).pathname;
const WORKER = new URL('./worker.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(values['cache-dir']!, 'outpost-fleet-'));
const say = (s: string) => process.stdout.write(`${s}\n`);

const profileArgs = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
const relay = spawn(process.execPath, [...profileArgs, RELAY_BIN, 'start', '--data-dir', join(dir, 'relay'), '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0', '--max-downloads', values['max-downloads']!], {
  stdio: 'ignore',
  env: { ...process.env, OUTPOST_LOG_LEVEL: 'error' },
});
const workers: ReturnType<typeof fork>[] = [];
// SIGTERM when profiling: a process writes its profile only when it exits on its own.
const cleanup = () => {
  for (const w of workers) w.kill(values.profile ? 'SIGTERM' : 'SIGKILL');
  relay.kill(values.profile ? 'SIGTERM' : 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

async function until<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const runtime = await until('the relay', () => {
  try {
    return JSON.parse(readFileSync(join(dir, 'relay', 'relay.json'), 'utf8')) as { httpUrl: string; mqttUrl: string };
  } catch {
    return undefined;
  }
}, 30_000);
const token = readFileSync(join(dir, 'relay', 'admin.token'), 'utf8').trim();
const api = async <T>(method: string, path: string, body?: unknown, bearer = token, raw?: Buffer): Promise<T> => {
  const res = await fetch(`${runtime.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': raw ? 'application/octet-stream' : 'application/json' },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
};
const metric = async (name: string) => {
  const text = await (await fetch(`${runtime.httpUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
};

// Enroll through the real API; the first ROLLOUT devices get the label the rollout selects.
let t = performance.now();
const devices: Array<{ deviceId: string; secret: string; mqttUrl: string; relayUrl: string }> = [];
for (let i = 0; i < N; i += 100) {
  devices.push(
    ...(await Promise.all(
      Array.from({ length: Math.min(100, N - i) }, async (_, j) => {
        const labels = i + j < ROLLOUT ? { group: 'rollout' } : { group: 'rest' };
        const { token: enrollToken } = await api<{ token: string }>('POST', '/v1/tokens/enroll', { labels });
        const e = await api<{ deviceId: string; secret: string; mqttUrl: string }>('POST', '/v1/enroll', {}, enrollToken);
        return { deviceId: e.deviceId, secret: e.secret, mqttUrl: e.mqttUrl, relayUrl: runtime.httpUrl };
      }),
    )),
  );
}
say(`enrolled ${N} devices through the HTTP API in ${((performance.now() - t) / 1000).toFixed(1)} s`);

// Connect them from WORKERS processes.
const counts = new Array(WORKERS).fill(null).map(() => ({ connected: 0, serving: 0, failed: 0 }));
const relayPid = relay.pid!;
const cpuStart = cpuSeconds(relayPid);
t = performance.now();
for (let w = 0; w < WORKERS; w++) {
  const child = fork(WORKER, [], { execArgv: ['--import', 'tsx', ...profileArgs], env: { ...process.env, SIM_DIR: join(dir, `w${w}`) }, stdio: 'ignore' });
  child.on('message', (m) => (counts[w] = m as (typeof counts)[number]));
  child.send({ devices: devices.filter((_, i) => i % WORKERS === w), heartbeatMs: HEARTBEAT_MS, dir: join(dir, `w${w}`) });
  workers.push(child);
}
const sum = (k: 'connected' | 'serving' | 'failed') => counts.reduce((s, c) => s + c[k], 0);
let online = 0;
await until('every device connected', async () => {
  online = await metric('outpost_devices\\{online="true"\\}');
  return online >= N ? true : undefined;
}, 600_000, 500).catch((err: Error) => {
  throw new Error(`${err.message}: ${online} of ${N} online at the relay, simulators report ${sum('connected')} connected`);
});
const connectS = (performance.now() - t) / 1000;
say(`all ${N} devices connected and online at the relay in ${connectS.toFixed(1)} s (${WORKERS} simulator processes)`);

// Heartbeats ingested per second, measured at the relay once every device has started its beat.
await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
const in0 = await metric('outpost_mqtt_messages_in_total');
await new Promise((r) => setTimeout(r, Math.max(10_000, HEARTBEAT_MS)));
const in1 = await metric('outpost_mqtt_messages_in_total');
const hbRate = (in1 - in0) / (Math.max(10_000, HEARTBEAT_MS) / 1000);
say(`heartbeats ingested: ${hbRate.toFixed(0)}/s (expected ${(N / (HEARTBEAT_MS / 1000)).toFixed(0)}/s)`);

// A model of about MODEL_MB MB: x [batch, 1280] · W [1280, K].
const cols = Math.round((MODEL_MB * 1024 * 1024) / 4 / 1280);
const rnd = seededRandom(7);
const model = Buffer.from(
  buildModel({
    name: 'big',
    inputs: [{ name: 'x', type: 'FP32', shape: ['batch', 1280] }],
    outputs: [{ name: 'y', type: 'FP32', shape: ['batch', cols] }],
    initializers: [{ name: 'W', type: 'FP32', dims: [1280, cols], values: Array.from({ length: 1280 * cols }, () => rnd() - 0.5) }],
    nodes: [{ op: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] }],
  }),
);
writeFileSync(join(dir, 'big.onnx'), model);
await api('POST', '/v1/models/big/versions', undefined, token, model);

const cpuBefore = cpuSeconds(relayPid);
const simCpu = () => workers.reduce((s, w) => s + cpuSeconds(w.pid!), 0);
const simCpuBefore = simCpu();
t = performance.now();
const dep = await api<{ id: string }>('POST', '/v1/deployments', { model: 'big', selector: { group: 'rollout' } });
const final = await until(
  'the rollout',
  async () => {
    const d = await api<{ state: string; counts: Record<string, number> }>('GET', `/v1/deployments/${dep.id}`);
    return d.state !== 'in-progress' ? d : undefined;
  },
  600_000,
  250,
);
const rolloutS = (performance.now() - t) / 1000;
const rolloutCpu = ((cpuSeconds(relayPid) - cpuBefore) / rolloutS) * 100;
const simRolloutCpu = ((simCpu() - simCpuBefore) / rolloutS) * 100;
const mem = memory(relayPid);
say(`rollout of a ${(model.length / 1024 / 1024).toFixed(1)} MB model to ${ROLLOUT} devices: ${final.state} in ${rolloutS.toFixed(1)} s (${JSON.stringify(final.counts)}); simulators saw ${sum('serving')} serving, ${sum('failed')} failed`);
say(`relay during the rollout: CPU ${rolloutCpu.toFixed(0)}% of one core; ${((model.length * ROLLOUT) / 1024 / 1024 / rolloutS).toFixed(0)} MB/s of artifacts served`);
say(`simulators during the rollout: CPU ${simRolloutCpu.toFixed(0)}% of one core (all ${WORKERS} together; the machine has 2 cores)`);
say(`relay over the whole run: CPU ${(((cpuSeconds(relayPid) - cpuStart) / ((performance.now() - t) / 1000 + connectS + 10)) * 100).toFixed(0)}% of one core; RSS ${mem.rssMiB.toFixed(0)} MiB, peak ${mem.peakMiB.toFixed(0)} MiB; relay still answering: ${(await fetch(`${runtime.httpUrl}/v1/health`)).status === 200}`);
process.exit(0);
