// Option value parsers: each throws a one-line message naming the bad value.

import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { parseLabels, type Labels } from '@outpost/shared';

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

export function parseLabelsOption(value: string, previous: Labels = {}): Labels {
  try {
    return { ...previous, ...parseLabels(value) };
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** `--dataset NAME=PATH`, repeatable; the path must be a folder that exists. */
export function collectDataset(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  const name = value.slice(0, eq);
  if (eq <= 0 || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new InvalidArgumentError('use NAME=PATH, e.g. --dataset images=/data/images.');
  const path = resolve(value.slice(eq + 1));
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new InvalidArgumentError(`${path} is not a folder.`);
  return { ...previous, [name]: path };
}
