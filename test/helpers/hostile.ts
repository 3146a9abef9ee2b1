// What every hostile test checks after its attack: the relay and the other devices are still
// up and right. Plus small readers of a process's memory and the relay's metrics.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { FIXTURES, enrollDevice, startAgent, startRelay, type Device, type TestAgent, type TestRelay } from './programs.js';
import { waitFor } from './wait.js';

/** Resident memory of a process, in MiB (Linux). */
export function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

/** One sample of a relay metric (the sum of its series matching `labels`, e.g. `quota="rate"`). */
export async function relayMetric(relay: TestRelay, name: string, labels = ''): Promise<number> {
  const text = await (await relay.fetch(`${relay.httpUrl}/metrics`, { headers: { authorization: `Bearer ${relay.token}` } })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

interface DeviceView {
  online: boolean;
  health: { ts: number } | null;
}

/** The relay answers, the agent serves `model`, and its next heartbeat reaches the relay. */
export async function fleetStillWorks(t: Test, relay: TestRelay, agent: TestAgent, model: string, body: unknown): Promise<void> {
  const health = await relay.api<{ status: string }>('GET', '/v1/health', undefined, null);
  t.equal(health.body.status, 'ok', 'the relay is up');
  const res = await agent.infer(model, body);
  t.equal(res.status, 200, 'the other device still serves');
  const before = (await relay.api<DeviceView>('GET', `/v1/devices/${agent.deviceId}`)).body.health?.ts ?? 0;
  await waitFor('a fresh heartbeat from the other device', async () => {
    const d = (await relay.api<DeviceView>('GET', `/v1/devices/${agent.deviceId}`)).body;
    return d.online && (d.health?.ts ?? 0) > before;
  });
  t.pass('the other device still reports');
  t.equal(relay.proc.exitCode, null, 'the relay process never exited');
}

export const LINEAR_REQUEST = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };

/** A relay with one device serving the `linear` fixture: the bystander every attack must leave alone. */
export async function relayWithBystander(t: Test, relayArgs: string[] = [], agentArgs: string[] = []): Promise<{ relay: TestRelay; agent: TestAgent; device: Device }> {
  const relay = await startRelay(t, { extraArgs: relayArgs });
  const device = await enrollDevice(t, relay, 'bystander');
  const agent = await startAgent(t, device, agentArgs);
  const push = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  t.equal(push.code, 0, push.stderr);
  const deploy = await relay.cli('deploy', 'linear', '--device', device.deviceId, '--wait');
  t.equal(deploy.code, 0, deploy.stderr);
  return { relay, agent, device };
}
