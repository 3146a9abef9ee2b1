// A real NATS cluster on loopback for the device traffic: its config and keys made by
// `outpost-relay broker nats-config` (as a person would), each node a `nats-server` process on
// free ports, killable with SIGKILL and startable again with its JetStream store kept.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import { RELAY_BIN, runCli, tempDir } from './programs.js';
import { waitFor } from './wait.js';

export interface TestNatsNode {
  name: string;
  clientUrl: string;
  mqttUrl: string;
  monitorPort: number;
  running: boolean;
  /** The node's recent log (stderr). */
  log(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
}

export interface TestNatsCluster {
  dir: string;
  nodes: TestNatsNode[];
  /** The relay's flags for this cluster. */
  relayArgs: string[];
  credentialsFile: string;
}

async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `n` consecutive free loopback ports (nats-config counts ports up per node on one host). */
async function freeRun(n: number, taken: Set<number>): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    // Below Linux's ephemeral range (32768-60999), where outgoing connections take ports meanwhile.
    const base = 10_000 + Math.floor(Math.random() * 22_000);
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = !taken.has(base + i) && (await portFree(base + i));
    if (ok) {
      for (let i = 0; i < n; i++) taken.add(base + i);
      return base;
    }
  }
  throw new Error(`no ${n} consecutive free ports on 127.0.0.1`);
}

/** `mqttTls`: serve MQTT over TLS with this certificate (from the relay's CA, `ca issue --server`). */
export async function startNatsCluster(t: Test, nodes = 3, opts: { mqttTls?: { cert: string; key: string } } = {}): Promise<TestNatsCluster> {
  const dir = join(tempDir(t, 'nats'), 'cluster');
  const taken = new Set<number>();
  const [client, mqtt, cluster, monitor] = [await freeRun(nodes, taken), await freeRun(nodes, taken), await freeRun(nodes, taken), await freeRun(nodes, taken)];
  const made = await runCli(RELAY_BIN, ['broker', 'nats-config', '--dir', dir, '--nodes', String(nodes), '--client-port', String(client), '--mqtt-port', String(mqtt), '--cluster-port', String(cluster), '--monitor-port', String(monitor), ...(opts.mqttTls ? ['--mqtt-tls-cert', opts.mqttTls.cert, '--mqtt-tls-key', opts.mqttTls.key] : []), '--json']);
  if (made.code !== 0) throw new Error(`broker nats-config failed: ${made.stderr}`);
  const plan = JSON.parse(made.stdout) as { nodes: Array<{ name: string; clientPort: number; mqttPort: number; monitorPort: number; config: string }>; broker: string; advertiseMqttUrl: string; credentials: string };
  const list: TestNatsNode[] = plan.nodes.map((n) => {
    let proc: ChildProcess | undefined;
    let exited: Promise<unknown> = Promise.resolve();
    let log = '';
    const node: TestNatsNode = {
      name: n.name,
      clientUrl: `nats://127.0.0.1:${n.clientPort}`,
      mqttUrl: `${opts.mqttTls ? 'mqtts' : 'mqtt'}://127.0.0.1:${n.mqttPort}`,
      monitorPort: n.monitorPort,
      running: false,
      log: () => log,
      async start() {
        log = '';
        proc = spawn('nats-server', ['-c', n.config], { stdio: ['ignore', 'ignore', 'pipe'] });
        proc.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20_000)));
        exited = new Promise((r) => proc!.once('exit', r));
        node.running = true;
        void exited.then(() => (node.running = false));
      },
      async kill(signal = 'SIGKILL') {
        if (!node.running) return;
        proc!.kill(signal);
        await exited;
      },
    };
    return node;
  });
  t.teardown(async () => {
    for (const n of list) await n.kill('SIGTERM');
  });
  await Promise.all(list.map((n) => n.start()));
  // Ready when every node answers its health check with JetStream up (the MQTT streams need it).
  for (const n of list) await waitNode(n);
  return { dir, nodes: list, credentialsFile: plan.credentials, relayArgs: ['--broker', plan.broker, '--nats-credentials', plan.credentials, '--advertise-mqtt-url', plan.advertiseMqttUrl] };
}

/** Waits until the node's JetStream is healthy (its monitor's /healthz). */
export async function waitNode(n: TestNatsNode, timeoutMs = 60_000): Promise<void> {
  let last = '';
  await waitFor(`NATS ${n.name} healthy`, async () => {
    if (!n.running) throw new Error(`nats-server ${n.name} exited: ${n.log().slice(-2000)}`);
    const res = await fetch(`http://127.0.0.1:${n.monitorPort}/healthz`).catch(() => undefined);
    if (res && !res.ok) last = await res.text();
    return res?.ok || undefined;
  }, timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}: /healthz said ${last}; its log ends: ${n.log().slice(-1500)}`);
  });
}

/** Waits until the node's server answers (its monitor's /varz), whatever its streams' state. */
export async function waitServing(n: TestNatsNode, timeoutMs = 30_000): Promise<void> {
  await waitFor(`NATS ${n.name} serving`, async () => {
    if (!n.running) throw new Error(`nats-server ${n.name} exited: ${n.log().slice(-2000)}`);
    return (await fetch(`http://127.0.0.1:${n.monitorPort}/varz`).catch(() => undefined))?.ok || undefined;
  }, timeoutMs);
}
