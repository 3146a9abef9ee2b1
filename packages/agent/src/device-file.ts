// device.json: the device's identity and where its relay is. Mode 0600: it holds the secret
// (and the broker password, when the broker has its own).

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface DeviceFile {
  deviceId: string;
  secret: string;
  relayUrl: string;
  mqttUrl: string;
  /** Every broker node the agent may connect to, `mqttUrl` first (a NATS cluster). */
  mqttUrls?: string[];
  /** The MQTT password when the broker has its own for this device (a NATS user JWT); else the secret. */
  mqttPassword?: string;
  /** 0 where the broker delivers the relay's messages at QoS 0 anyway (NATS); else 1. */
  mqttSubscribeQos?: 0 | 1;
  name: string;
}

export const DEVICE_FILE = 'device.json';

export function defaultAgentDir(): string {
  return process.env.OUTPOST_AGENT_DIR ?? join(homedir(), '.outpost', 'agent');
}

export class NotEnrolledError extends Error {
  constructor(dataDir: string) {
    super(`this device is not enrolled (no ${join(dataDir, DEVICE_FILE)}): run outpost-agent enroll --relay URL --token TOKEN`);
  }
}

export function readDeviceFile(dataDir: string): DeviceFile {
  const file = join(dataDir, DEVICE_FILE);
  if (!existsSync(file)) throw new NotEnrolledError(dataDir);
  const value = JSON.parse(readFileSync(file, 'utf8')) as Partial<DeviceFile>;
  for (const key of ['deviceId', 'secret', 'relayUrl', 'mqttUrl'] as const) {
    if (typeof value[key] !== 'string') throw new Error(`${file} has no "${key}": enroll again (outpost-agent enroll --force …)`);
  }
  return value as DeviceFile;
}

export function writeDeviceFile(dataDir: string, device: DeviceFile): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, DEVICE_FILE);
  writeFileSync(file, JSON.stringify(device, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}
