// Logs are pino JSON; in a terminal they are pretty-printed by pino-pretty in a worker thread.

import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LogOptions {
  name: string;
  level?: string;
  /** Pretty-print (defaults to: stdout is a terminal). */
  pretty?: boolean;
  /** Write to this file descriptor (defaults to stdout). */
  fd?: number;
}

export function createLogger(opts: LogOptions): Logger {
  const level = opts.level ?? process.env.OUTPOST_LOG_LEVEL ?? 'info';
  const fd = opts.fd ?? 1;
  const pretty = opts.pretty ?? (fd === 1 ? process.stdout.isTTY : process.stderr.isTTY);
  const base: LoggerOptions = {
    name: opts.name,
    level,
    // Credentials never reach a log line, even when a request object is logged whole.
    redact: { paths: ['secret', 'token', 'password', 'req.headers.authorization', '*.secret', '*.token'], censor: '[redacted]' },
  };
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { destination: fd, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(base, pino.destination({ fd, sync: false }));
}
