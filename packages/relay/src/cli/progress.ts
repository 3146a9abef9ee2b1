// Progress bars for long transfers, on stderr and only when it is a terminal.

import cliProgress from 'cli-progress';
import { formatBytes } from '@outpost/shared';

export interface Progress {
  update(value: number): void;
  stop(): void;
}

const SILENT: Progress = { update() {}, stop() {} };

export function byteProgress(label: string, total: number, minBytes = 1024 * 1024): Progress {
  if (!process.stderr.isTTY || total < minBytes) return SILENT;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% {done}/{size} {speed}`,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total), speed: '' });
  return {
    update(value) {
      const secs = (Date.now() - started) / 1000;
      bar.update(value, { done: formatBytes(value), speed: secs > 0 ? `${formatBytes(value / secs)}/s` : '' });
    },
    stop: () => bar.stop(),
  };
}

export function countProgress(label: string, total: number): { update(done: number, payload: Record<string, string | number>): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total} {detail}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { detail: '' });
  return { update: (done, payload) => bar.update(done, payload), stop: () => bar.stop() };
}
