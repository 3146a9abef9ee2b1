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

export { checkLabel, formatLabels, parseLabels, type Labels } from './labels.js';

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
