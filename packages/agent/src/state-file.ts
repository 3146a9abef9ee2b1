// agent-state.json: what the running agent serves, for `outpost-agent status` to read without
// loading onnxruntime or connecting anywhere.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const STATE_FILE = 'agent-state.json';

export interface AgentStateFile {
  pid: number;
  deviceId: string;
  httpUrl: string;
  /** host:port of the KServe v2 gRPC port, when it is on. */
  grpcAddress?: string;
  connected: boolean;
  updatedAt: string;
  models: Array<{ name: string; version: number; state: string; reason?: string; serving?: { version: number } }>;
}

export function writeStateFile(dataDir: string, state: AgentStateFile): void {
  writeFileSync(join(dataDir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
}

export function readStateFile(dataDir: string): AgentStateFile | undefined {
  const file = join(dataDir, STATE_FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as AgentStateFile) : undefined;
}

export function removeStateFile(dataDir: string): void {
  rmSync(join(dataDir, STATE_FILE), { force: true });
}
