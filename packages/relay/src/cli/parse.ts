// The relay CLI's own option value parsers (the ones both CLIs use are in @outpost/shared
// cli-options.ts): each throws a one-line message naming the bad value.

import { InvalidArgumentError } from 'commander';
import { parseDurationOption, type ServingConfig } from '@outpost/shared';

export { parseDurationOption };

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('use a whole number (0 or more).');
  return n;
}

/** A duration, or `0` for none (durations themselves must be more than zero). */
export function parseDurationOrZero(value: string): number {
  return value.trim() === '0' ? 0 : parseDurationOption(value);
}

export function parseGraphOptimization(value: string): NonNullable<ServingConfig['graphOptimization']> {
  if (value === 'disabled' || value === 'basic' || value === 'extended' || value === 'all') return value;
  throw new InvalidArgumentError('use disabled, basic, extended or all.');
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `NAME` or `NAME:VERSION` (VERSION a number or `latest`). */
export function parseModelRef(ref: string): { name: string; version?: number } {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127})(?::(latest|[1-9]\d*))?$/.exec(ref);
  if (!m) throw new InvalidArgumentError(`"${ref}" is not NAME or NAME:VERSION.`);
  return { name: m[1]!, version: m[2] && m[2] !== 'latest' ? Number(m[2]) : undefined };
}

/** `N` or `N%` (a share of the deployment's devices). */
export function parseCountOrPercent(value: string): number | string {
  if (/^\d+$/.test(value)) return Number(value);
  if (/^([1-9]\d?|100)%$/.test(value)) return value;
  throw new InvalidArgumentError('use a number of devices (3) or a percentage (25%).');
}

export function parseStrategy(value: string): 'all' | 'rolling' {
  if (value === 'all' || value === 'rolling') return value;
  throw new InvalidArgumentError('use all or rolling.');
}
