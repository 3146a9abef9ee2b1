// outpost-relay devices logs ID [--follow] [--lines N] [--json]: the agent's recent log lines,
// asked of the device through the relay (GET /v1/devices/{id}/logs). --follow asks again every
// second for the lines after the last one printed, and waits through the device (or the relay)
// going away, saying so once, until Ctrl-C.

import { InvalidArgumentError, type Command } from 'commander';
import { MAX_LOGS_REQUEST_LINES, type AgentLogLine } from '@outpost/shared';
import { relayApi, type ClientOptions, type RelayApi } from './client.js';
import { clientOptions } from './options.js';
import { CliError, RelayUnreachableError, note, print } from './output.js';

const POLL_MS = 1000;
/** Refusals a follower waits out: the device or the relay is away for now. */
const PASSING = new Set(['OUTPOST_ERR_DEVICE_OFFLINE', 'OUTPOST_ERR_DEVICE_TIMEOUT', 'OUTPOST_ERR_BUSY']);

export function parseLineCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LOGS_REQUEST_LINES) throw new InvalidArgumentError(`use a whole number from 1 to ${MAX_LOGS_REQUEST_LINES}.`);
  return n;
}

const fieldText = (v: string | number | boolean | null): string => (typeof v === 'string' && v !== '' && !/[\s"=]/.test(v) ? v : JSON.stringify(v));

/** `2026-12-01T12:00:00.123Z INFO  model serving model=linear version=1`. */
export function formatLogLine(line: AgentLogLine): string {
  const fields = Object.entries(line.fields ?? {}).map(([k, v]) => ` ${k}=${fieldText(v)}`).join('');
  return `${new Date(line.ts).toISOString()} ${line.level.toUpperCase().padEnd(5)} ${line.msg}${fields}`;
}

function fetchLines(api: RelayApi, id: string, query: { after?: number; limit: number }): Promise<{ lines: AgentLogLine[] }> {
  const qs = new URLSearchParams({ limit: String(query.limit), ...(query.after !== undefined ? { after: String(query.after) } : {}) });
  return api.request('GET', `/v1/devices/${encodeURIComponent(id)}/logs?${qs}`);
}

async function follow(api: RelayApi, id: string, after: number, write: (lines: AgentLogLine[]) => number | undefined): Promise<never> {
  let away: string | undefined;
  for (;;) {
    let full = false;
    try {
      const { lines } = await fetchLines(api, id, { after, limit: MAX_LOGS_REQUEST_LINES });
      if (away) note(`device ${id} answers again`);
      away = undefined;
      after = write(lines) ?? after;
      full = lines.length === MAX_LOGS_REQUEST_LINES;
    } catch (err) {
      const passing = err instanceof RelayUnreachableError || (err instanceof CliError && err.code !== undefined && PASSING.has(err.code));
      if (!passing) throw err;
      const why = err instanceof RelayUnreachableError ? 'the relay is unreachable' : err.code === 'OUTPOST_ERR_DEVICE_OFFLINE' ? `device ${id} is offline` : `device ${id} does not answer`;
      if (away !== why) note(`${why}; following again when it is back (Ctrl-C to stop)`);
      away = why;
    }
    // A full page means more lines wait: ask again at once.
    if (!full) await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export function deviceLogsCommand(devices: Command): void {
  clientOptions(
    devices
      .command('logs')
      .argument('<id>', 'device id')
      .option('--follow', 'keep printing new lines as the agent logs them, until Ctrl-C')
      .option('--lines <n>', `how many of the newest lines to print first (1-${MAX_LOGS_REQUEST_LINES})`, parseLineCount, 100)
      .description("print the agent's recent log lines (kept in memory on the device; it must be online)")
      .addHelpText('after', `
The agent keeps its last ${MAX_LOGS_REQUEST_LINES} lines in memory, secrets redacted; older ones (and those of an
offline device) are where its output goes: journalctl -u outpost-agent, or its stdout.

Examples:
  outpost-relay devices logs dev_3f2a9c1b7d4e
  outpost-relay devices logs dev_3f2a9c1b7d4e --follow --lines 20
  outpost-relay devices logs dev_3f2a9c1b7d4e --json | jq -r 'select(.level == "error") | .msg'`),
  ).action(async (id: string, opts: ClientOptions & { follow?: boolean; lines: number }) => {
    const api = relayApi(opts);
    // --json: one JSON object per line (JSON lines), so a follower's output can be piped as it comes.
    const write = (lines: AgentLogLine[]): number | undefined => {
      for (const line of lines) print(opts.json ? JSON.stringify(line) : formatLogLine(line));
      return lines.at(-1)?.seq;
    };
    const { lines } = await fetchLines(api, id, { limit: opts.lines });
    const last = write(lines);
    if (!opts.follow) return;
    // Ctrl-C is how a follow ends: not a failure.
    process.once('SIGINT', () => process.exit(0));
    await follow(api, id, last ?? 0, write);
  });
}
