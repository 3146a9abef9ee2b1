// outpost-relay audit list: who did what to what, when and from where, newest first (admin).

import type { Command } from 'commander';
import { examples, parsePositiveInt } from '@outpost/shared';
import type { AuditView } from '../auth/audit.js';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { print, printJson, table } from './output.js';
import { shortTime } from './tokens.js';

function outcomeCell(e: AuditView): string {
  return e.outcome === 'ok' ? 'ok' : `${e.outcome} ${e.status ?? ''}`.trim();
}

export function auditCommand(program: Command): void {
  const audit = program
    .command('audit')
    .description('the audit log: who changed what, from where (admin tokens only)')
    .addHelpText('after', examples('outpost-relay audit list --since 1h'));
  clientOptions(
    audit
      .command('list')
      .description('list audit entries, newest first')
      .option('--since <when>', 'entries from this long ago (30m, 24h, 7d) or from an ISO time (2025-01-31T12:00:00Z)')
      .option('--limit <n>', 'at most this many entries (1 to 1000)', parsePositiveInt, 100)
      .addHelpText('after', `
The relay keeps the newest 100,000 entries. Refused attempts (403) are recorded at most once
a minute per token and action.

Examples:
  outpost-relay audit list --since 1h
  outpost-relay audit list --since 2025-01-31T00:00:00Z --limit 1000 --json
`),
  ).action(async (opts: ClientOptions & { since?: string; limit: number }) => {
    const query = new URLSearchParams({ limit: String(opts.limit), ...(opts.since !== undefined ? { since: opts.since } : {}) });
    const { entries } = await relayApi(opts).request<{ entries: AuditView[] }>('GET', `/v1/audit?${query}`);
    if (opts.json) return printJson(entries);
    if (entries.length === 0) return print(opts.since ? `nothing recorded since ${opts.since}` : 'nothing recorded yet');
    print(table(['TIME', 'WHO', 'ACTION', 'TARGET', 'OUTCOME', 'FROM'], entries.map((e) => [shortTime(e.at), e.who, e.action, e.target, outcomeCell(e), e.address])));
  });
}
