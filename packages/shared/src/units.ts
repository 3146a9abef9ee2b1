// Parsing of the small user-facing value formats the CLIs and the API share.

import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `30s`, `15m`, `2h`, `7d` (or a bare number of seconds) into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new Error(`invalid duration "${text}": use a number with a unit, like 30s, 15m or 2h`);
  const ms = Number(match[1]) * DURATION_UNITS[match[2] ?? 's']!;
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`invalid duration "${text}": it must be more than zero`);
  return Math.round(ms);
}

export type Labels = Record<string, string>;

const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$/;
const LABEL_VALUE = /^[A-Za-z0-9._:/-]{0,128}$/;

export function checkLabel(key: string, value: string): void {
  if (!LABEL_KEY.test(key)) throw new Error(`invalid label key "${key}": use letters, digits, '.', '_', '-', '/' (at most 63)`);
  if (!LABEL_VALUE.test(value)) throw new Error(`invalid label value "${value}" for "${key}": use letters, digits, '.', '_', '-', ':', '/'`);
}

/** Parses `k=v,k2=v2` (also accepts several arguments) into labels. */
export function parseLabels(...parts: string[]): Labels {
  const labels: Labels = {};
  for (const part of parts.flatMap((p) => p.split(','))) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label "${item}": use key=value`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    checkLabel(key, value);
    labels[key] = value;
  }
  return labels;
}

export function formatLabels(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** Parses `NAME=PATH` for `--dataset`; the path must be a folder that exists. */
export function parseDataset(value: string): [name: string, path: string] {
  const eq = value.indexOf('=');
  const name = value.slice(0, eq);
  if (eq <= 0 || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new Error('use NAME=PATH, e.g. --dataset images=/data/images.');
  const path = resolve(value.slice(eq + 1));
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new Error(`${path} is not a folder.`);
  return [name, path];
}

/** Closes `instance` on SIGINT or SIGTERM (once), then exits 0, or 1 if closing failed. */
export function closeOnSignals(instance: { close(): Promise<void> }): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    instance.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
