// A live fleet for the dashboard bench: one real relay on loopback (ephemeral ports, a temp data
// dir, --insecure as bench/fleet runs it), N devices enrolled through the HTTP API, and the
// fleet simulator (bench/fleet/worker.ts) forked in a few processes, every device
// heartbeating every `heartbeatMs`. The same steps as bench/fleet/run.ts, as a function that
// other benches can call (run.ts runs them at its top level, so it cannot be imported).

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SimDevice } from '../fleet/worker.js';

const RELAY_BIN = new URL('../../packages/relay/dist/cli/main.js', import.meta.url).pathname;
const WORKER = new URL('../fleet/worker.ts', import.meta.url).pathname;

export interface BenchFleetOptions {
  devices: number;
  workers: number;
  heartbeatMs: number;
  /** Appends the relay's log (level debug) to this file. */
  relayLog?: string;
  /** Told what is happening (enrolled, n of N online…). */
  say(line: string): void;
}

export interface BenchFleet {
  httpUrl: string;
  mqttUrl: string;
  dataDir: string;
  token: string;
  relayPid: number;
  workerPids: number[];
  /** A sample of /metrics by its name (a regexp source, e.g. `outpost_devices\\{online="true"\\}`). */
  metric(name: string): Promise<number>;
  /** Devices online by the relay's own count. */
  online(): Promise<number>;
  /** Kills the relay and the simulators (SIGKILL) and removes the temp dir; synchronous, for an exit handler. */
  stop(): void;
}

export async function until<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Starts the relay and the simulated fleet; resolves once every device is online at the relay.
 * `onStarted` gets the fleet as soon as the relay runs, so that the caller can stop it if
 * anything later fails (or on SIGINT).
 */
export async function startBenchFleet(opts: BenchFleetOptions, onStarted: (fleet: BenchFleet) => void): Promise<BenchFleet> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-dashboard-bench-'));
  const dataDir = join(dir, 'relay');
  const children: ChildProcess[] = [];
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const relay = spawn(process.execPath, [RELAY_BIN, 'start', '--insecure', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0'], {
    stdio: ['ignore', opts.relayLog ? openSync(opts.relayLog, 'a') : 'ignore', 'pipe'],
    env: { ...process.env, OUTPOST_LOG_LEVEL: opts.relayLog ? 'debug' : 'error' },
  });
  children.push(relay);
  // The tail of its stderr, to say why it stopped.
  let stderr = '';
  relay.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const fleet: BenchFleet = {
    httpUrl: '',
    mqttUrl: '',
    dataDir,
    token: '',
    relayPid: relay.pid!,
    workerPids: [],
    metric: async (name) => {
      const text = await (await fetch(`${fleet.httpUrl}/metrics`, { headers: { authorization: `Bearer ${fleet.token}` } })).text();
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    },
    online: () => fleet.metric('outpost_devices\\{online="true"\\}'),
    stop,
  };
  onStarted(fleet);

  const runtime = await until('the relay', () => {
    if (relay.exitCode !== null) throw new Error(`the relay exited (${relay.exitCode}) at start: ${stderr.trim() || '(nothing on stderr; --relay-log FILE)'}`);
    try {
      const r = JSON.parse(readFileSync(join(dataDir, 'relay.json'), 'utf8')) as { httpUrl: string; mqttUrl: string; pid: number };
      return r.pid === relay.pid ? r : undefined;
    } catch {
      return undefined;
    }
  }, 60_000, 20);
  fleet.httpUrl = runtime.httpUrl;
  fleet.mqttUrl = runtime.mqttUrl;
  // Made last in a first start, after relay.json.
  fleet.token = await until('the admin token', () => (existsSync(join(dataDir, 'admin.token')) ? readFileSync(join(dataDir, 'admin.token'), 'utf8').trim() : undefined), 30_000, 20);

  const api = async <T>(method: string, path: string, body: unknown, bearer: string): Promise<T> => {
    const res = await fetch(`${fleet.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  // Enroll through the real API, 100 at a time.
  let t = performance.now();
  const devices: SimDevice[] = [];
  for (let i = 0; i < opts.devices; i += 100) {
    devices.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, opts.devices - i) }, async () => {
          const { token: enrollToken } = await api<{ token: string }>('POST', '/v1/tokens/enroll', { labels: { group: 'bench' } }, fleet.token);
          const { deviceId, secret, mqttUrl } = await api<SimDevice>('POST', '/v1/enroll', {}, enrollToken);
          return { deviceId, secret, mqttUrl, relayUrl: fleet.httpUrl };
        }),
      )),
    );
  }
  opts.say(`enrolled ${opts.devices} devices through the HTTP API in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  t = performance.now();
  for (let w = 0; w < opts.workers; w++) {
    const child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, SIM_DIR: join(dir, `w${w}`) },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    children.push(child);
    fleet.workerPids.push(child.pid!);
    child.send({ devices: devices.filter((_, i) => i % opts.workers === w), heartbeatMs: opts.heartbeatMs, dir: join(dir, `w${w}`), reconnect: 'backoff' });
  }
  let online = 0;
  let said = 0;
  await until('every device online at the relay', async () => {
    for (const c of children) if (c.exitCode !== null) throw new Error(c === relay ? `the relay exited (${c.exitCode}): ${stderr.trim()}` : `a simulator process exited (${c.exitCode})`);
    online = await fleet.online();
    if (performance.now() - said > 2000) {
      said = performance.now();
      opts.say(`  ${online} of ${opts.devices} online at the relay (${((performance.now() - t) / 1000).toFixed(0)} s)`);
    }
    return online >= opts.devices ? true : undefined;
  }, Math.max(120_000, opts.devices * 30), 500).catch((err: Error) => {
    throw new Error(`${err.message}: ${online} of ${opts.devices} online`);
  });
  opts.say(`all ${opts.devices} devices online at the relay in ${((performance.now() - t) / 1000).toFixed(1)} s (${opts.workers} simulator processes, a heartbeat each every ${opts.heartbeatMs / 1000} s)`);
  // Each device starts beating at a random point of its first interval: the rate is steady
  // once one interval has passed since the simulators got their devices.
  const steady = t + opts.heartbeatMs - performance.now();
  if (steady > 0) await new Promise((r) => setTimeout(r, steady));
  return fleet;
}
