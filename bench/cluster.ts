// bench/cluster: what several relays on one PostgreSQL store cost and how fast they recover, side
// by side in one run on this machine.
// 1. Stream latency: a label change made through the API of relay A, until a fleet stream client
//    sees its `device.updated` event, on A itself and on relay B (PostgreSQL: the event goes
//    through stream_events and NOTIFY), beside one relay on SQLite (the event goes straight to
//    its stream). p50/p99 over --changes changes.
// 2. Takeover: the leader killed with SIGKILL, until the other relay logs that it leads; over
//    --rounds rounds (the killed relay is started again between rounds, and is the follower).
//
//   npx tsx bench/cluster.ts [--changes 300] [--rounds 5]
//
// Each relay runs its embedded broker here: the leader lock and the event log need only the
// shared store (device messages across relays need one external broker; see the README).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import type { StreamMessage } from '@outpost/shared';
import { quantile } from './proc-stats.js';
import { createDatabase, startPostgres } from '../test/helpers/postgres.js';

const { values } = parseArgs({ options: { changes: { type: 'string', default: '300' }, rounds: { type: 'string', default: '5' } } });
const CHANGES = Number(values.changes);
const ROUNDS = Number(values.rounds);
const RELAY_BIN = new URL('../packages/relay/dist/cli/main.js', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'outpost-bench-cluster-'));
const say = (s: string) => process.stdout.write(`${s}\n`);
const procs = new Set<ChildProcess>();

interface Relay {
  proc: ChildProcess;
  httpUrl: string;
  dataDir: string;
  /** Resolves when the relay logs `msg`. */
  logged(msg: string): Promise<number>;
}

function startRelay(dataDir: string, store?: string): Promise<Relay> {
  const proc = spawn(process.execPath, [RELAY_BIN, 'start', '--insecure', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0', ...(store ? ['--store', store] : [])], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'info' },
  });
  procs.add(proc);
  proc.once('exit', () => procs.delete(proc));
  const waiting = new Map<string, Array<(at: number) => void>>();
  let buffered = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const at = performance.now();
      try {
        const entry = JSON.parse(line) as { msg: string; httpUrl?: string };
        for (const resolve of waiting.get(entry.msg) ?? []) resolve(at);
        waiting.delete(entry.msg);
        if (entry.msg === 'relay ready') readyResolve(entry.httpUrl!);
      } catch {
        // not a log line
      }
    }
  });
  let readyResolve!: (url: string) => void;
  const ready = new Promise<string>((resolve, reject) => {
    readyResolve = resolve;
    proc.once('exit', (code) => reject(new Error(`relay exited (${code}) before it was ready`)));
  });
  const logged = (msg: string) => new Promise<number>((resolve) => waiting.set(msg, [...(waiting.get(msg) ?? []), resolve]));
  return ready.then((httpUrl) => ({ proc, httpUrl, dataDir, logged }));
}

const kill = (relay: Relay) =>
  new Promise<void>((resolve) => {
    if (relay.proc.exitCode !== null || relay.proc.signalCode !== null) return resolve();
    relay.proc.once('exit', () => resolve());
    relay.proc.kill('SIGKILL');
  });

async function api<T>(relay: Relay, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${relay.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** A device enrolled through the API (no agent: its labels are what changes). */
async function enroll(relay: Relay, token: string): Promise<string> {
  const { token: enrollToken } = await api<{ token: string }>(relay, token, 'POST', '/v1/tokens/enroll', {});
  const res = await fetch(`${relay.httpUrl}/v1/enroll`, { method: 'POST', headers: { authorization: `Bearer ${enrollToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) });
  return ((await res.json()) as { deviceId: string }).deviceId;
}

/** A stream client that tells when it sees a device.updated with `labels.n === n`. */
async function follow(relay: Relay, token: string) {
  const ws = new WebSocket(`${relay.httpUrl.replace('http', 'ws')}/v1/fleet/stream`, { headers: { authorization: `Bearer ${token}` } });
  const waiting = new Map<string, (at: number) => void>();
  ws.on('message', (data) => {
    const at = performance.now();
    const m = JSON.parse(data.toString()) as StreamMessage;
    if (m.type === 'device.updated') waiting.get(m.device.labels.n ?? '')?.(at);
  });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  return { seen: (n: string) => new Promise<number>((resolve) => waiting.set(n, resolve)), close: () => ws.close() };
}

/** Label changes through `writer`, timed until each stream client sees them. */
async function streamLatency(writer: Relay, token: string, readers: Relay[]): Promise<number[][]> {
  const deviceId = await enroll(writer, token);
  const clients = await Promise.all(readers.map((r) => follow(r, token)));
  const delays = readers.map(() => [] as number[]);
  for (let i = 0; i < CHANGES; i++) {
    const n = String(i);
    const seen = clients.map((c) => c.seen(n));
    const sent = performance.now();
    await api(writer, token, 'PATCH', `/v1/devices/${deviceId}/labels`, { labels: { n } });
    const at = await Promise.all(seen);
    at.forEach((t, j) => delays[j]!.push(t - sent));
  }
  for (const c of clients) c.close();
  return delays;
}

const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
const p50 = (xs: number[]) => quantile(sorted(xs), 0.5);
const ms = (xs: number[]) => `p50 ${p50(xs).toFixed(1)} ms, p99 ${quantile(sorted(xs), 0.99).toFixed(1)} ms`;

async function main(): Promise<void> {
  const pg = await startPostgres();
  if (!pg) throw new Error('bench/cluster needs PostgreSQL (apt-get install -y postgresql)');
  const store = await createDatabase(pg.url, 'bench');
  say(`bench/cluster: ${CHANGES} label changes, ${ROUNDS} takeovers; Node ${process.version}`);

  // 1. Stream latency.
  const solo = await startRelay(join(root, 'solo'));
  const soloToken = readFileSync(join(solo.dataDir, 'admin.token'), 'utf8').trim();
  const [soloDelays] = await streamLatency(solo, soloToken, [solo]);
  await kill(solo);
  const a = await startRelay(join(root, 'a'), store);
  const token = readFileSync(join(a.dataDir, 'admin.token'), 'utf8').trim();
  let b = await startRelay(join(root, 'b'), store);
  const [onA, onB] = await streamLatency(a, token, [a, b]);
  say('\nLabel change (API on relay A) until a stream client sees it:');
  say(`  one relay, SQLite:                ${ms(soloDelays!)}`);
  say(`  relay A's own stream, PostgreSQL: ${ms(onA!)}  (${(p50(onA!) / p50(soloDelays!)).toFixed(2)}× SQLite at p50)`);
  say(`  relay B's stream, PostgreSQL:     ${ms(onB!)}  (${(p50(onB!) / p50(soloDelays!)).toFixed(2)}× SQLite at p50)`);

  // 2. Takeover: kill whichever leads; time until the other says it leads.
  const takeovers: number[] = [];
  let leader = a;
  let follower = b;
  for (let round = 0; round < ROUNDS; round++) {
    const leads = follower.logged('this relay leads: it runs the job scheduler and the rollouts');
    const killedAt = performance.now();
    await kill(leader);
    takeovers.push((await leads) - killedAt);
    // The killed one comes back as the follower.
    const back = await startRelay(leader.dataDir, store);
    leader = follower;
    follower = back;
    if (round === 0) b = back;
  }
  say(`\nLeader killed with SIGKILL until the other relay leads (${ROUNDS} rounds): ${ms(takeovers)}, max ${Math.max(...takeovers).toFixed(0)} ms`);
  say("  (a follower waits in pg_advisory_lock: PostgreSQL hands it the lock as the killed relay's connection closes)");
  await Promise.all([leader, follower].map(kill));
  await pg.stop();
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench/cluster failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const p of procs) p.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });
