// `pnpm run demo`: a relay and one agent on this machine; a classifier trained on the relay
// host as a job, registered, deployed to the agent and asked for a prediction, all through the
// public HTTP APIs. Runs until Ctrl-C.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, packBundle, type JobSummary } from '@outpost/shared';
import { createRelay, type Relay } from '@outpost/relay';
import { createAgent, enroll } from '@outpost/agent';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

const log = createLogger({ name: 'demo', level: process.env.OUTPOST_LOG_LEVEL ?? 'warn' });
const dir = mkdtempSync(join(tmpdir(), 'outpost-demo-'));
const say = (line: string) => process.stdout.write(`${line}\n`);

async function startRelay(): Promise<Relay> {
  const port = Number(process.env.OUTPOST_DEMO_PORT ?? 8080);
  const opts = { dataDir: join(dir, 'relay'), host: '127.0.0.1', mqttPort: 0, log };
  try {
    return await createRelay({ ...opts, httpPort: port });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    say(`port ${port} is busy; using a free one`);
    return createRelay({ ...opts, httpPort: 0 });
  }
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

const relay = await startRelay();
const token = relay.newAdminToken!;
say(`relay       ${relay.httpUrl} (data in ${relay.dataDir})`);

const { token: enrollToken } = await api<{ token: string }>(relay, token, 'POST', '/v1/tokens/enroll', JSON.stringify({ labels: { site: 'demo' } }));
const agentDir = join(dir, 'agent');
const device = await enroll({ relayUrl: relay.httpUrl, token: enrollToken, dataDir: agentDir, name: 'demo-device' });
const agent = await createAgent({ dataDir: agentDir, host: '127.0.0.1', port: 0, heartbeatMs: 2000, log });
say(`agent       ${agent.httpUrl} (device ${device.deviceId})`);

// Develop → train → deploy: train the example classifier on the relay host (`local`),
// register the model it writes, deploy it to the agent, and ask it for a prediction.
const bundleDir = mkdtempSync(join(tmpdir(), 'outpost-demo-bundle-'));
const bundleFile = join(bundleDir, 'bundle.tar.gz');
await packBundle(join(ROOT, 'examples/classifier'), bundleFile);
const bundle = await api<{ sha256: string }>(relay, token, 'POST', '/v1/bundles', readFileSync(bundleFile), 'application/octet-stream');
rmSync(bundleDir, { recursive: true, force: true });
let job = await api<JobSummary>(relay, token, 'POST', '/v1/jobs', JSON.stringify({
  bundleSha256: bundle.sha256,
  target: 'local',
  command: 'node train.js',
  registerModel: { name: 'classifier', output: 'model.onnx' },
}));
say(`training    ${job.id} on local: node train.js (examples/classifier)`);
job = await until(() => api<JobSummary>(relay, token, 'GET', `/v1/jobs/${job.id}`), (j) => !['queued', 'running'].includes(j.state));
if (job.state !== 'succeeded' || !job.model) throw new Error(`training ${job.state}: ${job.error}`);
say(`            ${job.state}: loss ${job.metrics.loss?.latest}, accuracy ${job.metrics.accuracy?.latest}; registered ${job.model.name}:${job.model.version}`);

let deployment = await api<{ id: string; state: string }>(relay, token, 'POST', '/v1/deployments', JSON.stringify({ model: 'classifier', devices: [device.deviceId] }));
deployment = await until(() => api(relay, token, 'GET', `/v1/deployments/${deployment.id}`), (d) => d.state !== 'in-progress');
say(`deployment  ${deployment.id} ${deployment.state}`);
if (deployment.state !== 'succeeded') throw new Error('the deployment did not succeed');

const request = { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [1, 1, 0, 0, 0, -1, -1, 1] }] };
const res = await fetch(`${agent.httpUrl}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
say(`inference   POST ${agent.httpUrl}/v2/models/classifier/infer ${JSON.stringify(request)}`);
say(`            → ${res.status} ${await res.text()}`);
say('');
say(`try:        OUTPOST_RELAY_DIR=${relay.dataDir} npx outpost-relay jobs show ${job.id}`);
say(`            curl ${agent.httpUrl}/v2/models/classifier`);
say(`            open ${relay.httpUrl}/ and log in with ${token}`);
say(`demo ready: relay at ${relay.httpUrl} (Ctrl-C to stop)`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await agent.close();
  await relay.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
