// What several relays share, for bench/fleet --relays N: a private PostgreSQL cluster, a
// Mosquitto (devices on their own topics by its pattern ACL, as docs/architecture.md gives),
// and folders for the artifacts and the CA. Returns the flags every relay gets.

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createDatabase, startPostgres } from '../../test/helpers/postgres.js';

export interface SharedWorkspace {
  /** `--store … --mqtt-url … --advertise-mqtt-url … --artifacts-dir … --ca-dir …` */
  args: string[];
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startSharedWorkspace(dir: string): Promise<SharedWorkspace> {
  const pg = await startPostgres();
  if (!pg) throw new Error('--relays needs PostgreSQL (apt-get install -y postgresql)');
  const store = await createDatabase(pg.url, 'fleet');
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
    args: ['--store', store, '--mqtt-url', mqtt.replace('mqtt://', 'mqtt://outpost-relay:unused@'), '--advertise-mqtt-url', mqtt, '--artifacts-dir', join(dir, 'shared-artifacts'), '--ca-dir', join(dir, 'shared-ca')],
    async stop() {
      mosquitto.kill('SIGKILL');
      rmSync(broker, { recursive: true, force: true });
      await pg.stop();
    },
  };
}
