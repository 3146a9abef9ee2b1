// What several relays share, for bench/fleet --relays N: a private PostgreSQL cluster, a
// NATS cluster (--broker nats) or a Mosquitto (devices on their own topics by its pattern ACL, as docs/architecture.md gives),
// and folders for the artifacts and the CA. Returns the flags every relay gets.

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createDatabase, startPostgres } from '../../test/helpers/postgres.js';

export interface SharedWorkspace {
  /** `--store … --mqtt-url … --advertise-mqtt-url … --artifacts-dir … --ca-dir …` (or `--broker nats://…`) */
  args: string[];
  /** With NATS: the nodes, to kill one. */
  natsNodes?: BenchNatsNode[];
  stop(): Promise<void>;
}

export interface BenchNatsNode {
  name: string;
  mqttUrl: string;
  kill(): Promise<void>;
}

const RELAY_BIN = new URL('../../packages/relay/dist/cli/main.js', import.meta.url).pathname;

async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A base port with `n` free ports after it, away from the others already picked. */
async function freeRun(n: number, taken: number[]): Promise<number> {
  for (;;) {
    // Below Linux's ephemeral range (32768-60999), where outgoing connections take ports meanwhile.
    const base = 10_000 + Math.floor(Math.random() * 22_000);
    if (taken.some((b) => Math.abs(b - base) < 16)) continue;
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await portFree(base + i);
    if (ok) return (taken.push(base), base);
  }
}

/** A NATS cluster made by `outpost-relay broker nats-config`, its nodes started and healthy. */
async function startNats(dir: string, nodes: number): Promise<{ args: string[]; nodes: BenchNatsNode[]; stop(): void }> {
  const taken: number[] = [];
  const ports = [await freeRun(nodes, taken), await freeRun(nodes, taken), await freeRun(nodes, taken), await freeRun(nodes, taken)];
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, [RELAY_BIN, 'broker', 'nats-config', '--dir', join(dir, 'nats'), '--nodes', String(nodes), '--client-port', String(ports[0]), '--mqtt-port', String(ports[1]), '--cluster-port', String(ports[2]), '--monitor-port', String(ports[3]), '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    p.stdout!.on('data', (d) => (text += d));
    p.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`broker nats-config exited ${code}`))));
  });
  const plan = JSON.parse(out) as { nodes: Array<{ name: string; mqttPort: number; monitorPort: number; config: string }>; broker: string; advertiseMqttUrl: string; credentials: string };
  const procs = plan.nodes.map((n) => spawn('nats-server', ['-c', n.config], { stdio: 'ignore' }));
  for (const [i, n] of plan.nodes.entries()) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (procs[i]!.exitCode !== null) throw new Error(`nats-server ${n.name} exited (apt-get install -y nats-server?)`);
      if ((await fetch(`http://127.0.0.1:${n.monitorPort}/healthz`).catch(() => undefined))?.ok) break;
      if (Date.now() > deadline) throw new Error(`nats-server ${n.name} not healthy`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    args: ['--broker', plan.broker, '--nats-credentials', plan.credentials, '--advertise-mqtt-url', plan.advertiseMqttUrl],
    nodes: plan.nodes.map((n, i) => ({
      name: n.name,
      mqttUrl: `mqtt://127.0.0.1:${n.mqttPort}`,
      async kill() {
        const p = procs[i]!;
        if (p.exitCode !== null) return;
        p.kill('SIGKILL');
        await new Promise((r) => p.once('exit', r));
      },
    })),
    stop: () => procs.forEach((p) => p.kill('SIGKILL')),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startSharedWorkspace(dir: string, kind: 'mosquitto' | 'nats' = 'mosquitto', natsNodes = 3): Promise<SharedWorkspace> {
  const pg = await startPostgres();
  if (!pg) throw new Error('--relays needs PostgreSQL (apt-get install -y postgresql)');
  const store = await createDatabase(pg.url, 'fleet');
  const shared = ['--artifacts-dir', join(dir, 'shared-artifacts'), '--ca-dir', join(dir, 'shared-ca')];
  if (kind === 'nats') {
    const nats = await startNats(dir, natsNodes);
    return {
      args: ['--store', store, ...nats.args, ...shared],
      natsNodes: nats.nodes,
      async stop() {
        nats.stop();
        await pg.stop();
      },
    };
  }
  // Its own folder under the system's temp dir: started as root, Mosquitto drops to its own
  // user before it reads the ACL, so no folder above it may be private.
  const broker = mkdtempSync(join(tmpdir(), 'outpost-bench-mosquitto-'));
  chmodSync(broker, 0o755);
  const port = await freePort();
  writeFileSync(join(broker, 'acl'), ['user outpost-relay', 'topic readwrite outpost/#', '', 'pattern readwrite outpost/v1/devices/%u/#', ''].join('\n'));
  writeFileSync(join(broker, 'mosquitto.conf'), [`listener ${port} 127.0.0.1`, 'allow_anonymous true', `acl_file ${join(broker, 'acl')}`, 'persistence false', 'max_queued_messages 10000', 'log_dest none', ''].join('\n'));
  const mosquitto = spawn('mosquitto', ['-c', join(broker, 'mosquitto.conf')], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    mosquitto.once('error', (err) => reject(new Error(`--relays needs Mosquitto (apt-get install -y mosquitto): ${err.message}`)));
    mosquitto.once('exit', (code) => reject(new Error(`Mosquitto exited (${code}) at start`)));
    const deadline = Date.now() + 10_000;
    const poll = () => {
      const s = createServer();
      // The port is taken once Mosquitto listens.
      s.once('error', () => resolve());
      s.listen(port, '127.0.0.1', () => {
        s.close();
        if (Date.now() > deadline) reject(new Error('Mosquitto did not start'));
        else setTimeout(poll, 50);
      });
    };
    poll();
  });
  const mqtt = `mqtt://127.0.0.1:${port}`;
  return {
    args: ['--store', store, '--mqtt-url', mqtt.replace('mqtt://', 'mqtt://outpost-relay:unused@'), '--advertise-mqtt-url', mqtt, ...shared],
    async stop() {
      mosquitto.kill('SIGKILL');
      rmSync(broker, { recursive: true, force: true });
      await pg.stop();
    },
  };
}
