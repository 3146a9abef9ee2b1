// Timers, event handlers and background work that never throw out of their callback. A throw
// inside a timer or an unhandled rejection ends a Node process; in a relay that one device's
// message can reach, that turns one bad payload into a fleet outage. Each wrapper logs the
// failure (at most once a minute per name) and carries on, as opentelemetry-js's periodic
// reader does.

import type { Logger } from 'pino';
import { LogThrottle } from './log-throttle.js';
import { isDiskFull } from './disk-full.js';

const throttle = new LogThrottle();

function report(log: Logger, what: string, err: unknown): void {
  const allowed = throttle.take(what);
  if (allowed) log.error({ err, suppressed: allowed.suppressed }, `${what} failed${isDiskFull(err) ? ': the disk is full; this is tried again as it comes up, and works once space is freed' : ''}`);
}

/** Runs `fn`, logging (not throwing) what it throws or rejects with. */
export function runGuarded(log: Logger, what: string, fn: () => unknown): void {
  try {
    const result = fn();
    if (result instanceof Promise) result.catch((err: unknown) => report(log, what, err));
  } catch (err) {
    report(log, what, err);
  }
}

/** A function that runs `fn` guarded: for event handlers and callbacks. */
export function guarded<A extends unknown[]>(log: Logger, what: string, fn: (...args: A) => unknown): (...args: A) => void {
  return (...args) => runGuarded(log, what, () => fn(...args));
}

/** `setInterval` whose callback is guarded; unref'd, so it never keeps a process alive by itself. */
export function guardedInterval(log: Logger, what: string, ms: number, fn: () => unknown): NodeJS.Timeout {
  const timer = setInterval(() => runGuarded(log, what, fn), ms);
  timer.unref();
  return timer;
}

/** `setTimeout` whose callback is guarded (unref'd). */
export function guardedTimeout(log: Logger, what: string, ms: number, fn: () => unknown): NodeJS.Timeout {
  const timer = setTimeout(() => runGuarded(log, what, fn), ms);
  timer.unref();
  return timer;
}

/** Starts a promise nobody awaits, logging its rejection instead of letting it end the process. */
export function background(log: Logger, what: string, work: Promise<unknown>): void {
  work.catch((err: unknown) => report(log, what, err));
}
