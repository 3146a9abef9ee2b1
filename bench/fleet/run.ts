// bench/fleet: N simulated devices in a few processes against one real relay. Prints the time
// for all to connect, heartbeats per second ingested, the time from `deploy` until every device
// of a 1,000-device selector reports a 5 MB model serving, and the relay's CPU and peak RSS.
// With --storm, the relay is then killed (-9) and started again on its ports: every device
// reconnects at once. It prints the time until all are online again, the relay's peak RSS
// through it, and the fewest devices shown online over the following --hold seconds.
// With --relays 2, two relays serve one workspace (PostgreSQL, Mosquitto, shared artifacts and
// CA; devices download from either): after the rollout the leader is killed (-9), and it prints
// the time until the other leads and what that one ingests alone.
// With --broker nats, the device traffic goes through a NATS cluster (--nats-nodes, made by
// `outpost-relay broker nats-config`) and PostgreSQL; at the end a node is killed (-9) and it
// prints the time until every device is online again through the others.
//
//   npx tsx bench/fleet/run.ts [--devices 1000] [--rollout 1000] [--workers 4] [--heartbeat 10] [--model-mb 5]
//   npx tsx bench/fleet/run.ts --devices 5000 --rollout 0 --storm [--hold 60] [--reconnect fixed,backoff]
//   npx tsx bench/fleet/run.ts --relays 2 [--devices 10000] [--rollout 1000]
//   npx tsx bench/fleet/run.ts --broker nats --relays 2 [--nats-nodes 3] [--devices 20000] [--rollout 1000]

import { fork, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, memory } from '../proc-stats.js';
import { buildModel, seededRandom } from '../../test/fixtures/onnx-builder.js';
import { startSharedWorkspace } from './shared-workspace.js';
import type { SimDevice } from './worker.js';

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
    storm: { type: 'boolean', default: false },
    /** Appends the simulated agents' logs (level info) to this file. */
    'sim-log': { type: 'string' },
    /** Appends the relay's log (level debug) to this file, to see what happened. */
    'relay-log': { type: 'string' },
    hold: { type: 'string', default: '60' },
    /** How simulated devices reconnect in the storm: backoff (the agent's), fixed (as before it), or both side by side. */
    reconnect: { type: 'string', default: 'backoff' },
    /** Writes V8 CPU profiles of the relay and the simulator processes into this folder. */
    profile: { type: 'string' },
    /** Relays serving one workspace (2: PostgreSQL and Mosquitto, started here). */
    relays: { type: 'string', default: '1' },
    /** The device broker: the relay's embedded one (one relay), Mosquitto (several), or a NATS cluster. */
    broker: { type: 'string' },
    'nats-nodes': { type: 'string', default: '3' },
  },
});
const RELAYS = Number(values.relays);
const BROKER = values.broker ?? (RELAYS > 1 ? 'mosquitto' : 'embedded');
if (!['embedded', 'mosquitto', 'nats'].includes(BROKER)) throw new Error(`--broker takes embedded, mosquitto or nats (got ${BROKER})`);
if ((RELAYS > 1 || BROKER === 'nats') && values.storm) throw new Error('--storm is for one relay on its embedded broker');
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
// --insecure: this measures the fleet logic (enrollment, rollout, reconnect storms) over plain
// MQTT, comparable across runs; TLS handshakes are measured apart (bench/tls-connect.ts).
const shared = BROKER !== 'embedded' ? await startSharedWorkspace(dir, BROKER as 'mosquitto' | 'nats', Number(values['nats-nodes'])) : undefined;
const relayDir = (i: number) => join(dir, i === 0 ? 'relay' : `relay-${i}`);
const startRelay = (httpPort = '0', mqttPort = '0', i = 0) =>
  spawn(process.execPath, [...profileArgs, RELAY_BIN, 'start', '--insecure', '--data-dir', relayDir(i), '--host', '127.0.0.1', '--http-port', httpPort, '--mqtt-port', mqttPort, '--max-downloads', values['max-downloads']!, ...(shared?.args ?? [])], {
    stdio: ['ignore', values['relay-log'] ? openSync(values['relay-log'], 'a') : 'ignore', 'ignore'],
    env: { ...process.env, OUTPOST_LOG_LEVEL: values['relay-log'] ? 'debug' : 'error' },
  });
let relay = startRelay();
/** With --relays: the others, started once the first has made the workspace. */
const others: ReturnType<typeof spawn>[] = [];
const workers: ReturnType<typeof fork>[] = [];
// SIGTERM when profiling: a process writes its profile only when it exits on its own.
const cleanup = () => {
  for (const w of workers) w.kill(values.profile ? 'SIGTERM' : 'SIGKILL');
  relay.kill(values.profile ? 'SIGTERM' : 'SIGKILL');
  for (const r of others) r.kill('SIGKILL');
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

const relayUp = (pid: number, i = 0) =>
  until('the relay', () => {
    try {
      const r = JSON.parse(readFileSync(join(relayDir(i), 'relay.json'), 'utf8')) as { httpUrl: string; mqttUrl: string; pid: number };
      return r.pid === pid ? r : undefined;
    } catch {
      return undefined;
    }
  }, 60_000, 20);
const runtime = await relayUp(relay.pid!);
// Made last in a first start, after relay.json.
const token = await until('the admin token', () => (existsSync(join(dir, 'relay', 'admin.token')) ? readFileSync(join(dir, 'relay', 'admin.token'), 'utf8').trim() : undefined), 30_000, 20);
const runtimes = [runtime];
for (let i = 1; i < RELAYS; i++) {
  others.push(startRelay('0', '0', i));
  runtimes.push(await relayUp(others.at(-1)!.pid!, i));
}
const relayPids = () => [relay.pid!, ...others.map((r) => r.pid!)];
const api = async <T>(method: string, path: string, body?: unknown, bearer = token, raw?: Buffer): Promise<T> => {
  const res = await fetch(`${runtime.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': raw ? 'application/octet-stream' : 'application/json' },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
};
const metricAt = async (url: string, name: string) => {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
};
const metric = (name: string) => metricAt(runtime.httpUrl, name);
/** A counter summed over every relay that still runs. */
const metricSum = async (name: string, from = runtimes) => (await Promise.all(from.map((r) => metricAt(r.httpUrl, name)))).reduce((a, b) => a + b, 0);

// Enroll through the real API; the first ROLLOUT devices get the label the rollout selects.
let t = performance.now();
const devices: SimDevice[] = [];
for (let i = 0; i < N; i += 100) {
  devices.push(
    ...(await Promise.all(
      Array.from({ length: Math.min(100, N - i) }, async (_, j) => {
        const labels = i + j < ROLLOUT ? { group: 'rollout' } : { group: 'rest' };
        const { token: enrollToken } = await api<{ token: string }>('POST', '/v1/tokens/enroll', { labels });
        const e = await api<SimDevice>('POST', '/v1/enroll', {}, enrollToken);
        // With several relays, devices reach them in turn (as behind a load balancer).
        const { deviceId, secret, mqttUrl, mqttUrls, mqttPassword, mqttSubscribeQos } = e;
        return { deviceId, secret, mqttUrl, relayUrl: runtimes[(i + j) % runtimes.length]!.httpUrl, ...(mqttUrls ? { mqttUrls } : {}), ...(mqttPassword ? { mqttPassword } : {}), ...(mqttSubscribeQos === 0 ? { mqttSubscribeQos } : {}) };
      }),
    )),
  );
}
say(`enrolled ${N} devices through the HTTP API in ${((performance.now() - t) / 1000).toFixed(1)} s`);

// Connect them from WORKERS processes.
const POLICIES = values.reconnect!.split(',') as Array<'backoff' | 'fixed'>;
for (const p of POLICIES) if (p !== 'backoff' && p !== 'fixed') throw new Error(`--reconnect takes backoff, fixed or both (got ${p})`);
let counts = new Array(WORKERS).fill(null).map(() => ({ connected: 0, connects: 0, serving: 0, failed: 0 }));
let relayPid = relay.pid!;
const relaysCpu = () => relayPids().reduce((s, pid) => s + cpuSeconds(pid), 0);
const cpuStart = relaysCpu();
const onlineAtRelay = () => metric('outpost_devices\\{online="true"\\}');
const sum = (k: 'connected' | 'connects' | 'serving' | 'failed') => counts.reduce((s, c) => s + c[k], 0);

/** Starts the simulator processes, their devices reconnecting by `policy`; resolves when all are online. */
async function startSimulators(policy: 'backoff' | 'fixed'): Promise<void> {
  counts = counts.map(() => ({ connected: 0, connects: 0, serving: 0, failed: 0 }));
  for (let w = 0; w < WORKERS; w++) {
    const simLog = values['sim-log'] ? openSync(values['sim-log'], 'a') : 'ignore';
    const child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx', ...profileArgs],
      env: { ...process.env, SIM_DIR: join(dir, `w${w}`), ...(values['sim-log'] ? { SIM_LOG_LEVEL: 'info' } : {}) },
      stdio: ['ignore', simLog, simLog, 'ipc'],
    });
    child.on('message', (m) => (counts[w] = m as (typeof counts)[number]));
    child.send({ devices: devices.filter((_, i) => i % WORKERS === w), heartbeatMs: HEARTBEAT_MS, dir: join(dir, `w${w}`), reconnect: policy });
    workers.push(child);
  }
  let online = 0;
  await until('every device connected', async () => {
    online = await onlineAtRelay();
    return online >= N ? true : undefined;
  }, 600_000, 500).catch((err: Error) => {
    throw new Error(`${err.message}: ${online} of ${N} online at the relay, simulators report ${sum('connected')} connected`);
  });
}

async function stopSimulators(): Promise<void> {
  for (const w of workers.splice(0)) {
    w.kill('SIGKILL');
    if (w.exitCode === null && w.signalCode === null) await new Promise((r) => w.once('exit', r));
  }
  await until('every device offline', async () => ((await onlineAtRelay()) === 0 ? true : undefined), 120_000, 250);
}

t = performance.now();
await startSimulators(POLICIES[0]!);
const connectS = (performance.now() - t) / 1000;
say(`all ${N} devices connected and online at the relay in ${connectS.toFixed(1)} s (${WORKERS} simulator processes)`);

// Heartbeats ingested per second, measured at the relay once every device has started its beat.
await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
const in0 = await metricSum('outpost_mqtt_messages_in_total');
await new Promise((r) => setTimeout(r, Math.max(10_000, HEARTBEAT_MS)));
const in1 = await metricSum('outpost_mqtt_messages_in_total');
const hbRate = (in1 - in0) / (Math.max(10_000, HEARTBEAT_MS) / 1000);
say(`heartbeats ingested: ${hbRate.toFixed(0)}/s (expected ${(N / (HEARTBEAT_MS / 1000)).toFixed(0)}/s)${RELAYS > 1 ? `, by the ${RELAYS} relays together` : ''}`);

if (ROLLOUT > 0) await rollout();
if (RELAYS > 1) await takeover();
if (shared?.natsNodes) await natsNodeLoss(shared.natsNodes);
if (values.storm) {
  const results: Array<Awaited<ReturnType<typeof storm>>> = [];
  for (const [i, policy] of POLICIES.entries()) {
    if (i > 0) {
      await stopSimulators();
      await startSimulators(policy);
    }
    results.push(await storm(policy));
  }
  if (results.length === 2) {
    const [a, b] = results as [Awaited<ReturnType<typeof storm>>, Awaited<ReturnType<typeof storm>>];
    say(`side by side (${a.policy} / ${b.policy}): all online after ready ${(a.allOnlineS / b.allOnlineS).toFixed(2)}x, connects ${(a.connects / b.connects).toFixed(2)}x, peak RSS ${(a.peakMiB / b.peakMiB).toFixed(2)}x, fewest online in the hold ${a.fewest} / ${b.fewest}`);
  }
}
await shared?.stop();
process.exit(0);

async function rollout(): Promise<void> {
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

  const cpuBefore = relaysCpu();
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
  const rolloutCpu = ((relaysCpu() - cpuBefore) / rolloutS) * 100;
  const simRolloutCpu = ((simCpu() - simCpuBefore) / rolloutS) * 100;
  const mems = relayPids().map((pid) => memory(pid));
  const mem = { rssMiB: Math.max(...mems.map((m) => m.rssMiB)), peakMiB: Math.max(...mems.map((m) => m.peakMiB)) };
  const each = RELAYS > 1 ? ` (the ${RELAYS} relays together; RSS of the largest)` : '';
  say(`rollout of a ${(model.length / 1024 / 1024).toFixed(1)} MB model to ${ROLLOUT} devices: ${final.state} in ${rolloutS.toFixed(1)} s (${JSON.stringify(final.counts)}); simulators saw ${sum('serving')} serving, ${sum('failed')} failed`);
  say(`relay during the rollout: CPU ${rolloutCpu.toFixed(0)}% of one core${each}; ${((model.length * ROLLOUT) / 1024 / 1024 / rolloutS).toFixed(0)} MB/s of artifacts served`);
  say(`simulators during the rollout: CPU ${simRolloutCpu.toFixed(0)}% of one core (all ${WORKERS} together; the machine has 2 cores)`);
  say(`relay over the whole run${each}: CPU ${(((relaysCpu() - cpuStart) / ((performance.now() - t) / 1000 + connectS + 10)) * 100).toFixed(0)}% of one core; RSS ${mem.rssMiB.toFixed(0)} MiB, peak ${mem.peakMiB.toFixed(0)} MiB; relay still answering: ${(await fetch(`${runtime.httpUrl}/v1/health`)).status === 200}`);
}

/** Kills one NATS node with -9: the time until every device is online again, through the others. */
async function natsNodeLoss(nodes: NonNullable<typeof shared>['natsNodes'] & object): Promise<void> {
  const node = nodes[0]!;
  const on = devices.filter((d) => (d.mqttUrls?.[0] ?? d.mqttUrl) === node.mqttUrl).length;
  const alive = runtimes.slice(RELAYS > 1 ? 1 : 0);
  const online = () => metricAt(alive[0]!.httpUrl, 'outpost_devices\\{online="true"\\}');
  const connectsBefore = sum('connects');
  await node.kill();
  const killed = performance.now();
  // A dead node sends no wills: its devices stay online at the relay while they reconnect
  // elsewhere. Done when each of them has connected again (the simulators count connects).
  await until("the node's devices connected again", () => (sum('connects') - connectsBefore >= on ? true : undefined), 600_000, 100);
  const reconnectedS = (performance.now() - killed) / 1000;
  await until('every device online', async () => ((await online()) >= N ? true : undefined), 600_000, 250);
  say(`NATS node ${node.name} killed (-9) with ${on} devices on it: all of them connected to another node ${reconnectedS.toFixed(1)} s later (${sum('connects') - connectsBefore} connections made); ${await online()} of ${N} online at the relay`);
}

/** Kills the leader (the first relay) with -9: the time until another leads, and what it ingests alone. */
async function takeover(): Promise<void> {
  const survivors = runtimes.slice(1);
  relay.kill('SIGKILL');
  const killed = performance.now();
  let leader = -1;
  await until('another relay to lead', async () => {
    const leading = await Promise.all(survivors.map((r) => metricAt(r.httpUrl, 'outpost_relay_leading')));
    leader = leading.indexOf(1);
    return leader >= 0 ? true : undefined;
  }, 60_000, 5);
  say(`leader killed (-9): relay ${leader + 2} leads ${(performance.now() - killed).toFixed(0)} ms later (polled every 5 ms)`);
  await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
  const before = await metricSum('outpost_mqtt_messages_in_total', survivors);
  await new Promise((r) => setTimeout(r, Math.max(10_000, HEARTBEAT_MS)));
  const rate = ((await metricSum('outpost_mqtt_messages_in_total', survivors)) - before) / (Math.max(10_000, HEARTBEAT_MS) / 1000);
  say(`after the kill the survivor${survivors.length > 1 ? 's' : ''} ingest ${rate.toFixed(0)} heartbeats/s (expected ${(N / (HEARTBEAT_MS / 1000)).toFixed(0)}/s); devices online by the store: ${await metricAt(survivors[0]!.httpUrl, 'outpost_devices\\{online="true"\\}')}`);
}

async function storm(policy: 'backoff' | 'fixed'): Promise<{ policy: string; allOnlineS: number; connects: number; peakMiB: number; fewest: number }> {
  const connectsBefore = sum('connects');
  const httpPort = new URL(runtime.httpUrl).port;
  const mqttPort = new URL(runtime.mqttUrl).port;
  relay.kill('SIGKILL');
  await new Promise((r) => relay.once('exit', r));
  const killed = performance.now();
  relay = startRelay(httpPort, mqttPort);
  relayPid = relay.pid!;
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, memory(relayPid).peakMiB);
    } catch {
      // not started yet
    }
  }, 100);
  await relayUp(relayPid);
  const ready = performance.now();
  say(`[${policy}] relay killed (-9) and started again on its ports: ready in ${((ready - killed) / 1000).toFixed(1)} s`);
  let online = 0;
  await until('every device online again', async () => {
    online = await onlineAtRelay().catch(() => 0);
    return online >= N ? true : undefined;
  }, 600_000, 250).catch((err: Error) => {
    throw new Error(`${err.message}: ${online} of ${N} online at the relay`);
  });
  const allOnline = performance.now();
  const connects = sum('connects') - connectsBefore;
  say(`[${policy}] reconnect storm: all ${N} devices online again ${((allOnline - ready) / 1000).toFixed(1)} s after the relay was ready (${((allOnline - killed) / 1000).toFixed(1)} s after the kill), ${connects} connections made`);
  const holdS = Number(values.hold);
  let fewest = N;
  const holdEnd = performance.now() + holdS * 1000;
  while (performance.now() < holdEnd) {
    fewest = Math.min(fewest, await onlineAtRelay());
    await new Promise((r) => setTimeout(r, 500));
  }
  clearInterval(sampler);
  peak = Math.max(peak, memory(relayPid).peakMiB);
  say(`[${policy}] over the next ${holdS} s the fewest devices shown online was ${fewest} of ${N}; relay peak RSS through the storm ${peak.toFixed(0)} MiB, now ${memory(relayPid).rssMiB.toFixed(0)} MiB`);
  return { policy, allOnlineS: (allOnline - ready) / 1000, connects: sum('connects') - connectsBefore, peakMiB: peak, fewest };
}
