// Option value parsers both CLIs use (commander): each throws a one-line message naming the
// bad value, which commander prints after the option's name.

import { InvalidArgumentError, Option } from 'commander';
import { parseDataset, parseDuration, parseLabels, type Labels } from './units.js';

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

/** `30s`, `15m`, `2h` (a bare number is seconds), in milliseconds. */
export function parseDurationOption(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
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

const DURATION_STEPS: Array<[unit: string, ms: number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
];

/** A duration as a person writes it, in the largest unit that keeps it whole: `10m`, `30s`, `6h`, `1500ms`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of DURATION_STEPS) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

const SIZE_STEPS: Array<[unit: string, bytes: number]> = [
  ['TiB', 1024 ** 4],
  ['GiB', 1024 ** 3],
  ['MiB', 1024 ** 2],
  ['KiB', 1024],
];

/**
 * A size as a person writes it, in the largest binary unit that keeps it whole (`2 GiB`,
 * `128 KiB`, `1000 B`); parseSize reads it back. formatBytes rounds, for sizes that are measured.
 */
export function formatSize(bytes: number): string {
  for (const [unit, size] of SIZE_STEPS) if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  return `${bytes} B`;
}

/** An option taking a duration whose default --help shows as `10m`, not `600000`. */
export function durationOption(flags: string, description: string, parse: (value: string) => number, defaultMs: number): Option {
  return new Option(flags, description).argParser(parse).default(defaultMs, formatDuration(defaultMs));
}

/** An option taking a size (parseSize) whose default --help shows as `2 GiB`, not `2147483648`. */
export function sizeOption(flags: string, description: string, defaultBytes: number): Option {
  return new Option(flags, description).argParser(parseSize).default(defaultBytes, formatSize(defaultBytes));
}

/** The "Examples:" section of a command's --help (for `addHelpText('after', …)`). */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

/**
 * The relay's HTTP URL from `--relay` (or OUTPOST_RELAY_URL), without a trailing slash.
 * `host:port` means `http://host:port`, as kubectl and curl read it.
 */
export function relayUrl(text: string): string {
  const value = text.trim();
  if (/^mqtts?:\/\//i.test(value)) throw new InvalidArgumentError(`${value} is an MQTT URL: give the relay's HTTP URL, e.g. https://${value.replace(/^mqtts?:\/\/(?:[^@/]*@)?([^:/]+).*$/i, '$1')}:8080`);
  // A bare host:port is https: relays serve TLS unless started with --insecure.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`"${value}" is not a URL: give the relay's HTTP URL, e.g. https://relay.local:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError(`${value}: give the relay's http:// or https:// URL, e.g. https://${url.hostname || 'relay.local'}:${url.port || 8080}`);
  if (!url.hostname) throw new InvalidArgumentError(`"${value}" names no host: give the relay's HTTP URL, e.g. https://relay.local:8080`);
  return url.href.replace(/\/+$/, '');
}
