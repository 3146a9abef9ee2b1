// bench/tls-connect: what TLS costs the relay, side by side in one run. Two relays on loopback,
// one with TLS (the default) and one with --insecure; N devices enroll on each over HTTP(S)
// (with a CSR signed by the relay's CA on the TLS one), then all connect to MQTT at once (mutual
// TLS with their certificates, or their secrets in the clear). Prints, per relay: enrollment
// time per device, the time for all N to get their CONNACK, the relay's CPU seconds for the
// connects, and its RSS with every device connected.
//
//   npx tsx bench/tls-connect.ts [--devices 500] [--concurrency 50]

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { tlsConnectOptions, tlsFetch, type ClientTls } from '@outpost/shared';
import { makeCsr, newKeyPair } from '@outpost/shared/x509';
import { cpuSeconds, memory } from './proc-stats.js';

const { values } = parseArgs({ options: { devices: { type: 'string', default: '500' }, concurrency: { type: 'string', default: '50' } } });
const N = Number(values.devices);
const C = Number(values.concurrency);
const RELAY_BIN = new URL('../packages/relay/dist/cli/main.js', import.meta.url).pathname;
const say = (s: string) => process.stdout.write(`${s}\n`);
const children: ChildProcess[] = [];
const dirs: string[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function until<T>(get: () => T | undefined): Promise<T> {
  for (let i = 0; i < 600; i++) {
    try {
      const v = get();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the relay did not start');
}

async function eachBounded<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

interface Run {
  enrollMsPerDevice: number;
  connectS: number;
  cpuS: number;
  rssMiB: number;
}

async function run(insecure: boolean): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-tls-bench-'));
  dirs.push(dir);
  const relay = spawn(process.execPath, [RELAY_BIN, 'start', ...(insecure ? ['--insecure'] : []), '--data-dir', dir, '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0', '--device-rate', '1000', '--device-burst', '1000'], { stdio: 'ignore', env: { ...process.env, OUTPOST_LOG_LEVEL: 'warn' } });
  children.push(relay);
  const runtime = await until(() => JSON.parse(readFileSync(join(dir, 'relay.json'), 'utf8')) as { httpUrl: string; mqttUrl: string });
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const trust: ClientTls = insecure ? {} : { ca: readFileSync(join(dir, 'tls/ca.crt'), 'utf8') };
  const f = tlsFetch(trust);
  const post = async <T>(path: string, bearer: string, body: unknown): Promise<T> => {
    const res = await f(`${runtime.httpUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  // Keys are made before the clock starts: on a device that is its own CPU, not the relay's.
  const keys = insecure ? [] : await Promise.all(Array.from({ length: N }, () => newKeyPair()));
  const csrs = await Promise.all(keys.map((k) => makeCsr(k, 'bench')));
  const devices: Array<{ id: string; secret: string; tls: ClientTls }> = [];
  const t0 = performance.now();
  await eachBounded([...Array(N).keys()], C, async (i) => {
    const { token: enrollToken } = await post<{ token: string }>('/v1/tokens/enroll', token, {});
    const e = await post<{ deviceId: string; secret: string; certificate?: { certificate: string } }>('/v1/enroll', enrollToken.split('.')[0]!, insecure ? {} : { csr: csrs[i] });
    devices.push({ id: e.deviceId, secret: e.secret, tls: insecure ? {} : { ca: trust.ca, cert: e.certificate!.certificate, key: keys[i]!.privateKeyPem } });
  });
  const enrollMsPerDevice = (performance.now() - t0) / N;

  // Each client's TLS context (the relay CA beside the system's roots, and its certificate) is
  // built before the clock starts as well: an agent builds one per connect, tens of ms of its
  // own CPU, and here they would all be built in this one process.
  const options = devices.map((d) => ({ d, auth: insecure ? { password: d.secret } : tlsConnectOptions(d.tls) }));
  const cpu0 = cpuSeconds(relay.pid!);
  const t1 = performance.now();
  const clients: MqttClient[] = [];
  await eachBounded(options, C, async ({ d, auth }) => {
    const c = await mqtt.connectAsync(runtime.mqttUrl, { clientId: d.id, username: d.id, ...auth, reconnectPeriod: 0, keepalive: 300 });
    clients.push(c);
  });
  const connectS = (performance.now() - t1) / 1000;
  const cpuS = cpuSeconds(relay.pid!) - cpu0;
  const { rssMiB } = memory(relay.pid!);
  await Promise.all(clients.map((c) => c.endAsync(true)));
  relay.kill('SIGKILL');
  return { enrollMsPerDevice, connectS, cpuS, rssMiB };
}

say(`${N} devices, ${C} at a time, relay and clients on this machine (${(await import('node:os')).cpus().length} cores)`);
const plain = await run(true);
const tls = await run(false);
const row = (name: string, r: Run) => say(`${name.padEnd(22)} enroll ${r.enrollMsPerDevice.toFixed(2)} ms/device   all connected in ${r.connectS.toFixed(2)} s   relay CPU ${r.cpuS.toFixed(2)} s   relay RSS ${r.rssMiB.toFixed(0)} MiB`);
row('--insecure (secret)', plain);
row('TLS (mutual, cert)', tls);
say(`TLS ÷ plain: enroll ${(tls.enrollMsPerDevice / plain.enrollMsPerDevice).toFixed(2)}×, connect ${(tls.connectS / plain.connectS).toFixed(2)}×, relay CPU ${(tls.cpuS / Math.max(plain.cpuS, 0.01)).toFixed(2)}×, RSS +${(tls.rssMiB - plain.rssMiB).toFixed(0)} MiB`);
process.exit(0);
