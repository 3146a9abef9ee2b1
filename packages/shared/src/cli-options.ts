// Option value parsers both CLIs use (commander): each throws a one-line message naming the
// bad value, which commander prints after the option's name.

import { InvalidArgumentError } from 'commander';
import { parseDataset, parseLabels, type Labels } from './units.js';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is a number from 0 to 65535.');
  return n;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('use a whole number of at least 1.');
  return n;
}

/** `--labels k=v,k2=v2`, repeatable; later values win. */
export function parseLabelsOption(value: string, previous: Labels = {}): Labels {
  try {
    return { ...previous, ...parseLabels(value) };
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** `--dataset NAME=PATH`, repeatable. */
export function collectDataset(value: string, previous: Record<string, string> = {}): Record<string, string> {
  try {
    const [name, path] = parseDataset(value);
    return { ...previous, [name]: path };
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** `500MB`, `2GiB`, `1048576`. */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError('use a size like 500MB or 2GiB.');
  return Math.round(Number(m[1]) * unit);
}
