// `pnpm run demo`: a relay and one agent on this machine, a sample model pushed, deployed and
// asked for one prediction, all through the public HTTP APIs. Runs until Ctrl-C.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@outpost/shared';
import { createRelay, type Relay } from '@outpost/relay';
import { createAgent, enroll } from '@outpost/agent';
import { FIXTURE_DIR } from '../test/fixtures/models.js';

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

const relay = await startRelay();
const token = relay.newAdminToken!;
say(`relay       ${relay.httpUrl} (data in ${relay.dataDir})`);

const { token: enrollToken } = await api<{ token: string }>(relay, token, 'POST', '/v1/tokens/enroll', JSON.stringify({ labels: { site: 'demo' } }));
const agentDir = join(dir, 'agent');
const device = await enroll({ relayUrl: relay.httpUrl, token: enrollToken, dataDir: agentDir, name: 'demo-device' });
const agent = await createAgent({ dataDir: agentDir, host: '127.0.0.1', port: 0, heartbeatMs: 2000, log });
say(`agent       ${agent.httpUrl} (device ${device.deviceId})`);

const model = await api<{ version: number; sha256: string }>(relay, token, 'POST', '/v1/models/linear/versions', readFileSync(join(FIXTURE_DIR, 'linear.onnx')), 'application/octet-stream');
say(`model       linear:${model.version} sha256 ${model.sha256.slice(0, 16)}…`);

let deployment = await api<{ id: string; state: string }>(relay, token, 'POST', '/v1/deployments', JSON.stringify({ model: 'linear', devices: [device.deviceId] }));
const deadline = Date.now() + 60_000;
while (deployment.state === 'in-progress' && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
  deployment = await api(relay, token, 'GET', `/v1/deployments/${deployment.id}`);
}
say(`deployment  ${deployment.id} ${deployment.state}`);
if (deployment.state !== 'succeeded') throw new Error('the deployment did not succeed');

const request = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
const res = await fetch(`${agent.httpUrl}/v2/models/linear/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
say(`inference   POST ${agent.httpUrl}/v2/models/linear/infer ${JSON.stringify(request)}`);
say(`            → ${res.status} ${await res.text()}`);
say('');
say(`try:        OUTPOST_RELAY_DIR=${relay.dataDir} npx outpost-relay devices list`);
say(`            curl ${agent.httpUrl}/v2/models/linear`);
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
