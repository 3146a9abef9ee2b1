// A real HAProxy in front of several relays on loopback: TCP mode (TLS passes through to the
// relays, whose certificates come from one CA), round robin, and a health check every 200 ms so
// a relay that died is out of the rotation at once, as a load balancer in production would do.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import { closedPort, tempDir } from './programs.js';
import { waitFor } from './wait.js';

export interface TestHaproxy {
  port: number;
  url(scheme: string): string;
}

export async function startHaproxy(t: Test, backendPorts: number[]): Promise<TestHaproxy> {
  const dir = tempDir(t, 'haproxy');
  const port = await closedPort();
  const config = [
    'global',
    '  maxconn 1000',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    // A request that meets a dead relay before its health check does is sent to another one.
    '  retries 3',
    '  option redispatch',
    'frontend relays',
    `  bind 127.0.0.1:${port}`,
    '  default_backend relays',
    'backend relays',
    '  balance roundrobin',
    ...backendPorts.map((p, i) => `  server relay${i} 127.0.0.1:${p} check inter 200ms fall 1 rise 1`),
    '',
  ];
  writeFileSync(join(dir, 'haproxy.cfg'), config.join('\n'));
  const proc = spawn('haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exited = new Promise((r) => proc.once('exit', r));
  let gone = false;
  void exited.then(() => (gone = true));
  t.teardown(async () => {
    if (!gone) proc.kill('SIGTERM');
    await exited;
  });
  await waitFor(`HAProxy listening on ${port}`, () => {
    if (gone) throw new Error(`HAProxy exited: ${log}`);
    return new Promise<boolean | undefined>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(undefined));
    });
  }, 10_000);
  return { port, url: (scheme) => `${scheme}://127.0.0.1:${port}` };
}
