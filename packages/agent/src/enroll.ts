// Enrollment: trade a one-time token for this device's id and secret, and keep them in device.json.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isErrorBody, type Labels } from '@outpost/shared';
import { DEVICE_FILE, writeDeviceFile, type DeviceFile } from './device-file.js';

export interface EnrollOptions {
  relayUrl: string;
  token: string;
  dataDir: string;
  name?: string;
  labels?: Labels;
  force?: boolean;
}

export async function enroll(opts: EnrollOptions): Promise<DeviceFile & { file: string; labels: Labels }> {
  if (!opts.force && existsSync(join(opts.dataDir, DEVICE_FILE))) {
    throw new Error(`${join(opts.dataDir, DEVICE_FILE)} exists: this device is enrolled already (pass --force to enroll again)`);
  }
  const relayUrl = opts.relayUrl.replace(/\/+$/, '');
  let res: Response;
  try {
    res = await fetch(`${relayUrl}/v1/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: opts.name, labels: opts.labels }),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    throw new Error(`cannot reach the relay at ${relayUrl} (${cause?.code ?? (err as Error).message}): check --relay`);
  }
  const body = (await res.json().catch(() => undefined)) as unknown;
  if (!res.ok) throw new Error(isErrorBody(body) ? `${body.error.code}: ${body.error.message}` : `the relay answered ${res.status}`);
  const r = body as { deviceId: string; secret: string; name: string; labels: Labels; mqttUrl: string };
  const device: DeviceFile = { deviceId: r.deviceId, secret: r.secret, relayUrl, mqttUrl: r.mqttUrl, name: r.name };
  const file = writeDeviceFile(opts.dataDir, device);
  return { ...device, file, labels: r.labels };
}
