// `pnpm run demo`: a relay and one agent on this machine; a classifier trained on the relay
// host as a job, registered, deployed to the agent and asked for a prediction, all through the
// public HTTP APIs. Runs until Ctrl-C, then removes everything it made and exits 0.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { createLogger, packBundle, type JobSummary } from '@outpost/shared';
import { createRelay, type Relay } from '@outpost/relay';
import { LogRing, createAgent, enroll, type Agent } from '@outpost/agent';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

const log = createLogger({ name: 'demo', level: process.env.OUTPOST_LOG_LEVEL ?? 'warn' });
const say = (line: string) => process.stdout.write(`${line}\n`);

// Everything the demo writes lives in this one folder, removed when it stops however it stops.
const dir = mkdtempSync(join(tmpdir(), 'outpost-demo-'));
let relay: Relay | undefined;
let agent: Agent | undefined;
let stopping: Promise<never> | undefined;

/**
 * Stops the agent and the relay, removes the demo's folder and exits with `code`. Signals that
 * come meanwhile change nothing: one Ctrl-C reaches the demo twice under `pnpm run` (from the
 * terminal and from pnpm), and a stop that takes over 10 s is cut short, the folder still removed.
 */
function stop(code: number): Promise<never> {
  stopping ??= (async () => {
    setTimeout(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    }, 10_000).unref();
    await agent?.close().catch((err: Error) => log.warn({ err }, 'stopping the agent'));
    await relay?.close().catch((err: Error) => log.warn({ err }, 'stopping the relay'));
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  })();
  return stopping;
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

/** The relay on 8080 (or OUTPOST_DEMO_PORT), or on a free port when that one is taken. */
async function startRelay(): Promise<Relay> {
  const port = Number(process.env.OUTPOST_DEMO_PORT ?? 8080);
  // Plain HTTP on loopback, so the browser opens the dashboard without a certificate warning;
  // a relay started with outpost-relay start serves TLS.
  const opts = { dataDir: join(dir, 'relay'), host: '127.0.0.1', mqttPort: 0, insecure: true, log };
  try {
    return await createRelay({ ...opts, httpPort: port });
  } catch (err) {
    // A failed start has undone itself (ports, token, data dir), so a second one starts afresh.
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    say(`port ${port} is busy; using a free one`);
    return createRelay({ ...opts, httpPort: 0 });
  }
}

/** How to run the relay CLI from where `pnpm run demo` was typed, without asking a registry. */
function relayCliCommand(): string {
  const bin = join(ROOT, 'node_modules/.bin/outpost-relay');
  const rel = relative(process.env.INIT_CWD ?? process.cwd(), bin);
  if (rel.startsWith('..') || isAbsolute(rel)) return bin;
  return `./${rel}`;
}

async function api<T>(relay: Relay, token: string, method: string, path: string, body?: string | Buffer, type = 'application/json'): Promise<T> {
  const res = await fetch(`${relay.httpUrl}${path}`, { method, body, headers: { authorization: `Bearer ${token}`, 'content-type': type } });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

/** Polls until `done` holds (or a minute passes). */
async function until<T>(get: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 60_000;
  let value = await get();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    value = await get();
  }
  return value;
}

async function demo(): Promise<void> {
  say(`files       ${dir} (removed when the demo stops)`);
  relay = await startRelay();
  const token = relay.newAdminToken!;
  say(`relay       ${relay.httpUrl} (data in ${relay.dataDir}; plain HTTP on 127.0.0.1 only: the demo runs --insecure, a real relay serves TLS)`);

  const { token: enrollToken } = await api<{ token: string }>(relay, token, 'POST', '/v1/tokens/enroll', JSON.stringify({ labels: { site: 'demo' } }));
  const agentDir = join(dir, 'agent');
  const device = await enroll({ relayUrl: relay.httpUrl, token: enrollToken, dataDir: agentDir, name: 'demo-device' });
  // Quiet in the terminal, but `devices logs demo-device` shows the agent's info lines.
  const logRing = new LogRing();
  const agentLog = createLogger({ name: 'outpost-agent', level: process.env.OUTPOST_LOG_LEVEL ?? 'warn', tee: logRing, teeLevel: 'info' });
  agent = await createAgent({ dataDir: agentDir, host: '127.0.0.1', port: 0, heartbeatMs: 2000, log: agentLog, logRing });
  say(`agent       ${agent.httpUrl} (device ${device.deviceId})`);

  // Develop → train → deploy: train the example classifier on the relay host (`local`),
  // register the model it writes, deploy it to the agent, and ask it for a prediction.
  const bundleFile = join(dir, 'bundle.tar.gz');
  await packBundle(join(ROOT, 'examples/classifier'), bundleFile);
  const bundle = await api<{ sha256: string }>(relay, token, 'POST', '/v1/bundles', readFileSync(bundleFile), 'application/octet-stream');
  rmSync(bundleFile, { force: true });
  let job = await api<JobSummary>(relay, token, 'POST', '/v1/jobs', JSON.stringify({
    bundleSha256: bundle.sha256,
    target: 'local',
    command: 'node train.js',
    registerModel: { name: 'classifier', output: 'model.onnx' },
  }));
  say(`training    ${job.id} on local: node train.js (examples/classifier)`);
  job = await until(() => api<JobSummary>(relay!, token, 'GET', `/v1/jobs/${job.id}`), (j) => !['queued', 'running'].includes(j.state));
  if (job.state !== 'succeeded' || !job.model) throw new Error(`training ${job.state}: ${job.error}`);
  say(`            ${job.state}: loss ${job.metrics.loss?.latest}, accuracy ${job.metrics.accuracy?.latest}; registered ${job.model.name}:${job.model.version}`);

  let deployment = await api<{ id: string; state: string }>(relay, token, 'POST', '/v1/deployments', JSON.stringify({ model: 'classifier', devices: [device.deviceId] }));
  deployment = await until(() => api(relay!, token, 'GET', `/v1/deployments/${deployment.id}`), (d) => d.state !== 'in-progress');
  say(`deployment  ${deployment.id} ${deployment.state}`);
  if (deployment.state !== 'succeeded') throw new Error('the deployment did not succeed');

  const request = { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [1, 1, 0, 0, 0, -1, -1, 1] }] };
  const res = await fetch(`${agent.httpUrl}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  say(`inference   POST ${agent.httpUrl}/v2/models/classifier/infer ${JSON.stringify(request)}`);
  say(`            → ${res.status} ${await res.text()}`);
  say('');
  say(`try:        OUTPOST_RELAY_DIR=${relay.dataDir} ${relayCliCommand()} jobs show ${job.id}`);
  say(`            curl ${agent.httpUrl}/v2/models/classifier`);
  say(`            open ${relay.httpUrl}/ and log in with ${token}`);
  say(`demo ready: relay at ${relay.httpUrl} (Ctrl-C to stop)`);
}

try {
  await demo();
} catch (err) {
  // Stopped by Ctrl-C halfway: the failure is that stop's doing, and it exits 0.
  if (!stopping) process.stderr.write(`error: ${(err as Error).message}\n`);
  await stop(1);
}
