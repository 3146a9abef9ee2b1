// Starts the real programs (outpost-relay, outpost-agent) as child processes on loopback with
// ephemeral ports and temporary folders, and cleans every one of them up.

import { storeEnv } from './test-store.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { tlsConnectOptions, tlsFetch, type ClientTls, type TlsClientOptions } from '@outpost/shared';
import { trustRelay } from './trust.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RELAY_BIN = join(ROOT, 'packages/relay/dist/cli/main.js');
export const AGENT_BIN = join(ROOT, 'packages/agent/dist/cli/main.js');
export const FIXTURES = join(ROOT, 'test/fixtures/models');

export function tempDir(t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `outpost-${prefix}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a CLI to completion. */
export function runCli(bin: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCommand(process.execPath, [bin, ...args], { env: { ...process.env, ...env, OUTPOST_LOG_LEVEL: 'warn' } });
}

/** Runs any command to completion with exactly this environment (and folder). */
export function runCommand(cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface RunningProgram {
  proc: ChildProcess;
  /** Every log line so far, parsed. */
  logs: Array<Record<string, unknown>>;
  /** Everything it wrote to stderr so far (what a person reads: the admin token, errors). */
  stderr(): string;
  /** SIGKILL, no goodbye: the crash case. */
  kill(): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<void>;
}

/** Spawns a long-running program and resolves when it logs `readyMsg`. */
function startProgram(t: Test, bin: string, args: string[], readyMsg: string, timeoutMs = 30_000, env: Record<string, string> = {}): Promise<{ program: RunningProgram; ready: Record<string, unknown> }> {
  // A .js file runs with this Node.js; anything else (the packaged launcher) runs as it is.
  const [cmd, argv] = bin.endsWith('.js') ? [process.execPath, [bin, ...args]] : [bin, args];
  const proc = spawn(cmd, argv, { env: { ...process.env, OUTPOST_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const program: RunningProgram = {
    proc,
    logs,
    stderr: () => stderr,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      // A clean exit writes coverage and says goodbye; a program stuck in shutdown is killed.
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  t.teardown(() => program.stop());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin} did not log "${readyMsg}" within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    let buffered = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === readyMsg) {
            clearTimeout(timer);
            resolve({ program, ready: entry });
          }
        } catch {
          // not a log line
        }
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited (${code ?? signal}) before it was ready; stderr: ${stderr}`));
    });
  });
}

export interface TestRelay extends RunningProgram {
  httpUrl: string;
  mqttUrl: string;
  dataDir: string;
  token: string;
  /** The relay CA's PEM and its file (undefined with --insecure). */
  ca: string | undefined;
  caFile: string | undefined;
  /** fetch that trusts the relay's CA (plain fetch for an --insecure relay). */
  fetch: typeof fetch;
  /** TLS options for node's tls/https/ws/mqtt clients of this relay. */
  tls: TlsClientOptions;
  /** The environment a CLI on another host would use for this relay: URL, token and CA file. */
  env: Record<string, string>;
  /** Runs `outpost-relay ARGS` against this relay. */
  cli(...args: string[]): Promise<CliResult>;
  api<T = unknown>(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: T }>;
}

export async function startRelay(t: Test, opts: { dataDir?: string; extraArgs?: string[] } = {}): Promise<TestRelay> {
  const dataDir = opts.dataDir ?? tempDir(t, 'relay');
  const { program, ready } = await startProgram(
    t,
    RELAY_BIN,
    ['start', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0', ...(opts.extraArgs ?? [])],
    'relay ready',
    30_000,
    await storeEnv(dataDir),
  );
  const httpUrl = ready.httpUrl as string;
  const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const caFile = join(dataDir, 'tls/ca.crt');
  const ca = httpUrl.startsWith('https:') && existsSync(caFile) ? readFileSync(caFile, 'utf8') : undefined;
  const trust: ClientTls = { ca };
  const relayFetch = tlsFetch(trust);
  const env: Record<string, string> = { OUTPOST_RELAY_URL: httpUrl, OUTPOST_TOKEN: token, ...(ca ? { OUTPOST_CA_FILE: caFile } : {}) };
  trustRelay([ready.mqttUrl as string, httpUrl], tlsConnectOptions(trust));
  return {
    ...program,
    httpUrl,
    mqttUrl: ready.mqttUrl as string,
    dataDir,
    token,
    ca,
    caFile: ca ? caFile : undefined,
    fetch: relayFetch,
    tls: tlsConnectOptions(trust),
    env,
    cli: (...args) => runCli(RELAY_BIN, args, env),
    async api<T>(method: string, path: string, body?: unknown, asToken: string | null = token) {
      const headers: Record<string, string> = {};
      if (asToken) headers.authorization = `Bearer ${asToken}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await relayFetch(`${httpUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
  };
}

export interface Device {
  deviceId: string;
  secret: string;
  mqttUrl: string;
  dataDir: string;
  /** The relay's CA and the device's own key and certificate, as the agent keeps them (TLS relays). */
  tls?: ClientTls;
}

/** The device's TLS files, as options for node's tls/mqtt clients (the relay CA; its certificate when `mutual`). */
export function deviceTls(device: Device, mutual = true): TlsClientOptions {
  if (!device.tls) return {};
  return tlsConnectOptions(mutual ? device.tls : { ca: device.tls.ca });
}

/**
 * Enrolls a device through the agent CLI, as a person would on the device. `relayUrl` is the
 * address the device knows the relay by (a proxy in front of it, for faults).
 */
export async function enrollDevice(t: Test, relay: TestRelay, name: string, labels?: string, relayUrl = relay.httpUrl): Promise<Device> {
  const tok = await relay.cli('tokens', 'enroll', '--json', ...(labels ? ['--labels', labels] : []));
  if (tok.code !== 0) throw new Error(`tokens enroll failed: ${tok.stderr}`);
  const dataDir = tempDir(t, `agent-${name}`);
  const res = await runCli(AGENT_BIN, ['enroll', '--relay', relayUrl, '--token', (JSON.parse(tok.stdout) as { token: string }).token, '--name', name, '--data-dir', dataDir]);
  if (res.code !== 0) throw new Error(`agent enroll failed: ${res.stderr}`);
  const device = JSON.parse(readFileSync(join(dataDir, 'device.json'), 'utf8')) as { deviceId: string; secret: string; mqttUrl: string };
  const file = (f: string) => readFileSync(join(dataDir, f), 'utf8');
  const tls = existsSync(join(dataDir, 'ca.crt')) ? { ca: file('ca.crt'), cert: file('device.crt'), key: file('device.key') } : undefined;
  return { ...device, dataDir, ...(tls ? { tls } : {}) };
}

export interface TestAgent extends RunningProgram {
  httpUrl: string;
  /** host:port of the KServe v2 gRPC port (undefined with --grpc-port off). */
  grpcAddress: string | undefined;
  deviceId: string;
  infer<T = unknown>(model: string, body: unknown): Promise<{ status: number; body: T }>;
}

export async function startAgent(t: Test, device: Device, extraArgs: string[] = [], bin = AGENT_BIN, env: Record<string, string> = {}): Promise<TestAgent> {
  const { program, ready } = await startProgram(
    t,
    bin,
    ['start', '--data-dir', device.dataDir, '--host', '127.0.0.1', '--port', '0', '--grpc-port', '0', '--heartbeat', '1', ...extraArgs],
    'agent ready',
    30_000,
    env,
  );
  const httpUrl = ready.httpUrl as string;
  return {
    ...program,
    httpUrl,
    grpcAddress: ready.grpcAddress as string | undefined,
    deviceId: device.deviceId,
    async infer<T>(model: string, body: unknown) {
      const res = await fetch(`${httpUrl}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as T };
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
