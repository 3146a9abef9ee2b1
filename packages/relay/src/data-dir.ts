// Files in the relay's data dir that CLI commands on the relay host read: kept apart from
// relay.ts so a command like `devices list` does not load the broker, store and server.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ADMIN_TOKEN_FILE = 'admin.token';
export const RUNTIME_FILE = 'relay.json';
/** The relay CA's certificate (public), for CLI commands on this host to trust the relay. */
export const CA_CERT_FILE = 'tls/ca.crt';

/** Where the running relay listens, written on start and removed on a clean stop. */
export interface RelayRuntimeFile {
  httpUrl: string;
  mqttUrl: string;
  pid: number;
}

export function readAdminToken(dataDir: string): string | undefined {
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

export function readRuntimeFile(dataDir: string): RelayRuntimeFile | undefined {
  const file = join(dataDir, RUNTIME_FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as RelayRuntimeFile) : undefined;
}

/** Whether a process with this pid runs (another user's counts: signalling it is refused, not failed). */
export function processAlive(pid: unknown): boolean {
  if (!Number.isInteger(pid) || (pid as number) <= 0) return false;
  try {
    process.kill(pid as number, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The relay CA's certificate, when this relay serves TLS. */
export function readCaCert(dataDir: string): string | undefined {
  const file = join(dataDir, CA_CERT_FILE);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}
