// A real Mosquitto on a free loopback port, with config lines of the test's choosing; it can be
// stopped and started again on the same port (a broker restart without persistence).

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { closedPort, tempDir } from './programs.js';
import { waitFor } from './wait.js';

export interface TestMosquitto {
  url: string;
  dir: string;
  /** Stops it (SIGTERM) and starts it again: without persistence, every retained message is gone. */
  restart(): Promise<void>;
}

/** The ACL docs/architecture.md gives: the relay's user on everything, each device on its own prefix. */
export const withAclFile = (dir: string) => {
  writeFileSync(join(dir, 'acl'), ['user outpost-relay', 'topic readwrite outpost/#', '', 'pattern readwrite outpost/v1/devices/%u/#', ''].join('\n'));
  return ['allow_anonymous true', `acl_file ${join(dir, 'acl')}`];
};

export async function startMosquitto(t: Test, config: (dir: string) => string[]): Promise<TestMosquitto> {
  const dir = tempDir(t, 'mosquitto');
  chmodSync(dir, 0o755); // started as root, Mosquitto drops to its own user before reading the ACL
  const port = await closedPort();
  writeFileSync(join(dir, 'mosquitto.conf'), [`listener ${port} 127.0.0.1`, ...config(dir), 'persistence false', 'log_dest stderr', ''].join('\n'));
  let proc: ChildProcess;
  let exited: Promise<unknown>;
  const start = async () => {
    proc = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    exited = new Promise((r) => proc.once('exit', r));
    let gone = false;
    void exited.then(() => (gone = true));
    await waitFor(`Mosquitto listening on ${port}`, () => {
      if (gone) throw new Error(`Mosquitto exited: ${log}`);
      return /mosquitto version \S+ running/.test(log) ? true : undefined;
    }, 10_000);
  };
  const stop = async () => {
    proc.kill('SIGTERM');
    await exited;
  };
  t.teardown(stop);
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    async restart() {
      await stop();
      await start();
    },
  };
}
