// Logs are pino JSON; in a terminal they are pretty-printed by pino-pretty in a worker thread.

import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LogOptions {
  name: string;
  level?: string;
  /** Pretty-print (defaults to: stdout is a terminal). */
  pretty?: boolean;
  /** Write to this file descriptor (defaults to stdout). */
  fd?: number;
  /** Also hand every line (pino's JSON, secrets already redacted) to this (the agent's ring buffer). */
  tee?: { write(line: string): void };
  /** The lowest level the tee takes, when it should keep more than the output shows (the demo's quiet agent). */
  teeLevel?: string;
}

/** Keys whose values never reach a log line, even when a request or options object is logged whole. */
export const REDACTED_PATHS = ['secret', 'token', 'password', 'authorization', '*.secret', '*.token', '*.password', '*.authorization', 'req.headers.authorization', 'headers.authorization', '*.headers.authorization'];

export function createLogger(opts: LogOptions): Logger {
  const level = opts.level ?? process.env.OUTPOST_LOG_LEVEL ?? 'info';
  const fd = opts.fd ?? 1;
  const pretty = opts.pretty ?? (fd === 1 ? process.stdout.isTTY : process.stderr.isTTY);
  const base: LoggerOptions = { name: opts.name, level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  const out: DestinationStream = pretty
    ? pino.transport({ target: 'pino-pretty', options: { destination: fd, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } })
    : pino.destination({ fd, sync: false });
  if (!opts.tee) return pino(base, out);
  const teeLevel = opts.teeLevel ?? level;
  // The logger lets through the lower of the two levels; each stream keeps its own.
  if ((pino.levels.values[teeLevel] ?? Infinity) < (pino.levels.values[level] ?? Infinity)) base.level = teeLevel;
  return pino(base, pino.multistream([{ level: level as pino.Level, stream: out }, { level: teeLevel as pino.Level, stream: opts.tee }]));
}
